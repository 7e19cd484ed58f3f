"""Runner of a CPU-time comparison: program A against program B on the same inputs, in one sandbox run.

Used by `efficiency`. Copied into the sandbox as the program's script (stdlib only, no codetune imports)
next to:
- ct_a.py, ct_b.py: the two programs (A: prompt + completion; B: prompt + canonical solution, or A again
  for the noise measurement), each exec'd in a process of its own, forked from this one before either is
  loaded, so neither can reach the other's memory, builtins or timers;
- ct_plus_runner.py: `_plus_runner`'s source, exec'd here for its typed-input decoder and result records;
- ct_inputs.json: the argument lists, in `_plus_runner`'s type-preserving form;
- ct_config.json: {"entry_point", "repeats", "min_time_s", "pin", "first_limit_s" (seconds B's first call
  may take), "limit_factor" and "min_limit_s" (A's first call may take max(min_limit_s, limit_factor x B's)),
  "copy_budget" (argument sizes' sum a batch of copies may hold), "max_loops"}.

What happens, per input: B's first call, then A's (both on a fresh copy of the arguments; their results
are kept as `_plus_runner` records, so trusted code can check that A agrees with B); then each side's loop
count is calibrated so one timing lasts >= min_time_s. Then `repeats` rounds over the inputs, A then B
in even rounds and B then A in odd ones (ABBA: drift over the run and any cost of going first land on both
sides alike); one timing is the CPU time of `loops` calls
(user + system, of the calling thread: `time.thread_time`), divided by `loops`. The thread's clock, not
the process's: inside the sandbox here the process-wide clock (CLOCK_PROCESS_CPUTIME_ID) advances only in
steps of ~1.7 ms while the thread's is exact (benchmarks/RESULTS.md, efficiency_bench), and a HumanEval
solution computes in the calling thread. The process clock is recorded beside it (`process_times`), so
CPU spent in other threads shows up as a difference. Each call
gets its own copy of the arguments when they hold anything mutable (a solution that sorts its input in
place must not get sorted input on the next call), made before the clock starts (at C speed for flat
lists, dicts and sets), in batches bounded by `copy_budget`; the loop's own cost (well under a microsecond
a call) is in both sides' timings. The garbage collector is off while a batch runs and collects between
batches (as `timeit` does). Last, a memory pass: each call once more under `tracemalloc`, whose peak above
the level before the call (the result included, the argument copy not) is the call's peak memory.

Only one side runs at a time: each child has a process group of its own, stopped (SIGSTOP) whenever it is
not answering a request, so no thread or process A leaves running can take CPU from B's timings. With
`pin`, this process and both children are pinned to one core (the highest the process may use): no
migration between cores lands in a timing.

Writes ct_perf.json: {"status": "ok" | "timeout" | "error", "who": "a" | "b" | null (which side went
wrong), "input": its index or null, "detail": one line, "pinned": the core or null, "a": SIDE, "b": SIDE},
SIDE = {"records": [first call's record per input], "loops": [...], "times": [[seconds per call, one per
repeat] per input], "peak_bytes": [...]}, cut short where the run stopped.

Not a security boundary: A could misreport its own time by in-process tricks (the clock runs in its own
process); what the sandbox bounds is what it can do to the machine, and B's figures come from a process
A cannot touch.
"""

# ruff: noqa: S102, BLE001 (exec of the solutions is the point; any exception of theirs is data)

import copy
import gc
import json
import math
import os
import select
import signal
import time
import tracemalloc

_HELPERS = {}  # _plus_runner's functions, exec'd from ct_plus_runner.py


class _Stop(Exception):
    """A side timed out or raised: ends the measurement with what was gathered."""

    def __init__(self, status, who, index, detail):
        super().__init__(detail)
        self.status, self.who, self.index, self.detail = status, who, index, detail


def _mutable(x):
    if isinstance(x, (list, dict, set, bytearray)):
        return True
    if isinstance(x, tuple):
        return any(_mutable(v) for v in x)
    return False


def _copier(x):
    """A function copying values shaped as `x` is (its containers anew, immutable leaves shared), chosen
    once per input: every copy is of the same original, so its shape holds for all. C-speed copies for the
    common shapes (a flat list, dict or set; a list of flat lists), `copy.deepcopy` for the rest."""
    if not _mutable(x):
        return None
    t = type(x)
    if t in (list, set, dict):
        leaves = list(x.values()) if t is dict else x
        if not any(_mutable(v) for v in leaves):
            return t
        if t is list and all(type(v) is list and not any(_mutable(e) for e in v) for v in x):
            return lambda v: [e[:] for e in v]
    return copy.deepcopy


def _fresh(args, copiers):
    return [a if c is None else c(a) for a, c in zip(args, copiers)]


def _size(x):
    if isinstance(x, (str, bytes, bytearray)):
        return len(x) + 1
    if isinstance(x, dict):
        return 1 + sum(_size(k) + _size(v) for k, v in x.items())
    if isinstance(x, (list, tuple, set, frozenset)):
        return 1 + sum(_size(v) for v in x)
    return 1


# ------------------------------------------------------------------------------------------ the child


def _timed(fn, args, loops, budget, copiers):
    """CPU seconds of one call of fn(*args) over `loops` calls, by the thread's clock and the process's
    (see the module docstring)."""
    thread, process = time.thread_time, time.process_time
    mutable = any(c is not None for c in copiers)
    batch = max(1, min(loops, budget // _size(args))) if mutable else loops
    total = total_p = 0.0
    left = loops
    while left > 0:
        n = min(batch, left)
        calls = [_fresh(args, copiers) for _ in range(n)] if mutable else [args] * n
        gc.collect()
        p0, t0 = process(), thread()
        for a in calls:
            fn(*a)
        total += thread() - t0
        total_p += process() - p0
        del calls
        left -= n
    return total / loops, total_p / loops


def _first(fn, args, copiers):
    a = _fresh(args, copiers)
    t0 = time.thread_time()
    result = fn(*a)
    return _HELPERS["_record"](result, time.thread_time() - t0)


def _peak(fn, args, copiers):
    a = _fresh(args, copiers)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = fn(*a)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    del result
    return peak


def _serve(path, entry, inputs, budget, rfd, wfd):
    """The child's life: load the program, then answer the parent's requests (one JSON line each)."""
    os.setpgid(0, 0)  # its own process group: paused and killed with every thread and child it starts
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    # Only its own two pipes stay open: the other side's pipes (inherited when it was forked first) and
    # the parent's files are not this program's to use.
    os.closerange(3, min(rfd, wfd))
    os.closerange(min(rfd, wfd) + 1, max(rfd, wfd))
    os.closerange(max(rfd, wfd) + 1, 1 << 16)
    reader, writer = os.fdopen(rfd, "r"), os.fdopen(wfd, "w")

    def reply(body):
        writer.write(json.dumps(body) + "\n")
        writer.flush()

    try:
        with open(path, encoding="utf-8") as f:
            src = f.read()
        namespace = {}
        exec(compile(src, path, "exec", dont_inherit=True), namespace)
        fn = namespace[entry]
    except BaseException as exc:
        reply({"error": f"loading: {type(exc).__name__}: {exc}"[:300]})
        os._exit(0)
    gc.disable()
    copiers = [[_copier(a) for a in args] for args in inputs]
    reply({"ok": True})
    for line in reader:
        req = json.loads(line)
        args, how = inputs[req["i"]], copiers[req["i"]]
        try:
            if req["op"] == "first":
                reply({"rec": _first(fn, args, how)})
            elif req["op"] == "time":
                t, p = _timed(fn, args, req["loops"], budget, how)
                reply({"t": t, "p": p})
            else:
                reply({"peak": _peak(fn, args, how)})
        except BaseException as exc:
            reply({"error": f"{type(exc).__name__}: {exc}"[:300]})
    os._exit(0)


# ----------------------------------------------------------------------------------------- the parent


class _Side:
    """A forked child running one program, and what it answered."""

    def __init__(self, name, path, entry, inputs, budget):
        self.name = name
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(requests_w)
            os.close(replies_r)
            try:
                _serve(path, entry, inputs, budget, requests_r, replies_w)
            finally:
                os._exit(0)
        os.close(requests_r)
        os.close(replies_w)
        try:
            os.setpgid(pid, pid)  # also here: whichever of the two runs first
        except OSError:
            pass
        self.pid = pid
        self.out = os.fdopen(requests_w, "w")
        self.inp = replies_r
        self.buf = b""
        self.body = {
            "records": [],
            "loops": [],
            "times": [[] for _ in inputs],
            "process_times": [[] for _ in inputs],
        }
        self.body["peak_bytes"] = []

    def ask(self, req, limit_s, index):
        """The child's answer to `req`; _Stop when it does not answer within `limit_s` or raised."""
        self._signal(signal.SIGCONT)
        if req is not None:
            self.out.write(json.dumps(req) + "\n")
            self.out.flush()
        deadline = time.monotonic() + limit_s
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            ready = select.select([self.inp], [], [], max(0.0, left))[0] if left > 0 else []
            if not ready:
                self.kill()
                raise _Stop("timeout", self.name, index, f"no answer within {limit_s:.3g} s")
            chunk = os.read(self.inp, 1 << 20)
            if not chunk:
                raise _Stop("error", self.name, index, "the process ended (killed, or it exited)")
            self.buf += chunk
        self._signal(signal.SIGSTOP)  # nothing of it runs while the other side is timed
        line, self.buf = self.buf.split(b"\n", 1)
        body = json.loads(line)
        if "error" in body:
            raise _Stop("error", self.name, index, body["error"])
        return body

    def _signal(self, sig):
        try:
            os.killpg(self.pid, sig)
        except OSError:
            pass

    def kill(self):
        self._signal(signal.SIGKILL)
        try:
            os.kill(self.pid, signal.SIGKILL)
        except OSError:
            pass


def _loops(side, i, first_s, cfg):
    """Calls per timing so that one timing lasts >= min_time_s: estimated from the first call, then once
    from a timing of that many calls (the first call is often slower: cold caches)."""
    target, cap = cfg["min_time_s"], cfg["max_loops"]
    loops = min(cap, max(1, math.ceil(target / max(first_s, 1e-7))))
    if loops > 1:
        per_call = side.ask({"op": "time", "i": i, "loops": loops}, _limit(loops * first_s), i)["t"]
        loops = min(cap, max(1, math.ceil(1.2 * target / max(per_call, 1e-9))))
    return loops


def _limit(expected_s):
    return 20.0 * expected_s + 5.0


def _measure(a, b, n, cfg):
    for i in range(n):
        rb = b.ask({"op": "first", "i": i}, cfg["first_limit_s"], i)["rec"]
        b.body["records"].append(rb)
        limit = max(cfg["min_limit_s"], cfg["limit_factor"] * rb["t"])
        ra = a.ask({"op": "first", "i": i}, limit, i)["rec"]
        a.body["records"].append(ra)
        for side, rec in ((a, ra), (b, rb)):
            side.body["loops"].append(_loops(side, i, rec["t"], cfg))
    for r in range(cfg["repeats"]):
        for i in range(n):
            for side in (a, b) if r % 2 == 0 else (b, a):  # ABBA: an order effect lands on both sides
                loops = side.body["loops"][i]
                per_call = side.body["times"][i][-1] if side.body["times"][i] else side.body["records"][i]["t"]
                got = side.ask({"op": "time", "i": i, "loops": loops}, _limit(loops * per_call), i)
                side.body["times"][i].append(got["t"])
                side.body["process_times"][i].append(got["p"])
    for i in range(n):
        for side in (a, b):
            expected = max(side.body["times"][i])
            side.body["peak_bytes"].append(side.ask({"op": "mem", "i": i}, _limit(10 * expected), i)["peak"])


def _pin(cfg):
    if not cfg.get("pin") or not hasattr(os, "sched_setaffinity"):
        return None
    try:
        cpu = max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
    except OSError:
        return None
    return cpu


def main():
    with open("ct_plus_runner.py", encoding="utf-8") as f:
        exec(compile(f.read(), "ct_plus_runner.py", "exec"), _HELPERS)
    with open("ct_config.json", encoding="utf-8") as f:
        cfg = json.load(f)
    with open("ct_inputs.json", encoding="utf-8") as f:
        inputs = [_HELPERS["_untyped"](args) for args in json.load(f)]
    out = {"status": "ok", "who": None, "input": None, "detail": "", "pinned": _pin(cfg)}
    a = b = None
    try:
        b = _Side("b", "ct_b.py", cfg["entry_point"], inputs, cfg["copy_budget"])
        b.ask(None, cfg["first_limit_s"], None)
        a = _Side("a", "ct_a.py", cfg["entry_point"], inputs, cfg["copy_budget"])
        a.ask(None, cfg["first_limit_s"], None)
        _measure(a, b, len(inputs), cfg)
    except _Stop as stop:
        out.update(status=stop.status, who=stop.who, input=stop.index, detail=stop.detail)
    finally:
        for side in (a, b):
            if side is not None:
                side.kill()
                out[side.name] = side.body
    tmp = "ct_perf.json.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(out, f)
    os.replace(tmp, "ct_perf.json")


if __name__ == "__main__":
    main()
