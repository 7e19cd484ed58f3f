"""The Ray executor (`executor=ray`): the grid's unfinished cells as Ray tasks, over the same ledger.

The driver (the `codetune run` process) keeps codetune's ledger as the local executor does: it holds each
cell's lock, skips a finished cell (its metrics.json exists), and rewrites results.csv as each cell
finishes. A cell is two tasks joined by the files of its run directory:

    model task      train, generate, score, the benchmark's samples     ray.num_cpus, ray.num_gpus
    execution task  the benchmark's programs in the sandbox, metrics.json  ray.exec_num_cpus, no GPU

so the sandboxed execution runs on CPU-only workers while a GPU worker trains the next cell. Ray reruns a
task whose worker or node died (`ray.max_retries`); the rerun resumes from the files (the training
checkpoint, the partial generations, the verdicts appended so far), as a rerun of `codetune run` does.

Requirement: OUT is a directory every node reaches at the same path (a shared file system). The driver
checks it before anything runs: a file it writes there must be read by a task on every node, and a file
each node writes must be seen by the driver.
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codetune.errors import CodetuneError
from codetune.rundir import run_lock, try_lock

if TYPE_CHECKING:
    from codetune.config import ExperimentConfig, RayConfig, RunSpec
    from codetune.experiments.runner import Runner

SHARED_HINT = (
    "put --out on a file system every Ray node mounts at the same path (NFS, CephFS, ...) and rerun; "
    "see README 'Running on a cluster'"
)
PROBE_PREFIX = ".codetune-shared-probe-"
PROBE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Job:
    """What a task needs to rebuild the driver's Runner in its worker process."""

    exp: ExperimentConfig
    out_root: str
    threads: int  # torch threads where `threads` is unset: the task's CPU share
    tracking_uri: str | None  # where MLflow writes, resolved by the driver


def run_on_ray(runner: Runner) -> tuple[int, int]:
    """Run the unfinished cells of `runner`'s grid on Ray; returns how many cells another process held
    and how many ran.

    Connects to `ray.address` (or starts Ray on this machine), checks that every node shares the
    experiment directory, submits each cell's two tasks and waits for them, writing the tables as each
    cell finishes. A cell that fails does not stop the others; the first failing cell's error (in grid
    order) is raised at the end.
    """
    settings = runner.exp.base.ray
    ray = import_ray(local_only=not settings.address)
    started = connect(ray, settings.address, runner.log)
    try:
        check_shared_dir(ray, runner.exp_dir)
        return _run_cells(ray, runner, settings)
    finally:
        if started:
            ray.shutdown()


def import_ray(local_only: bool = False) -> Any:
    """Import ray (a CodetuneError naming the install when it is missing).

    local_only: the Ray this process starts serves this machine alone, so it listens on 127.0.0.1 (Ray
    otherwise binds the machine's outward address, open to other hosts). Both settings are read when
    ray is first imported.
    """
    # Every line a task logs reaches the driver, not one per kind ("[repeated 3x across cluster]").
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    if local_only:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise CodetuneError(
            "executor=ray needs the package ray",
            "install it with: pip install 'ray>=2.40' (or use --executor local)",
        ) from None
    return ray


def connect(ray: Any, address: str | None, log: Any) -> bool:
    """Join the cluster at `address` (None: start Ray on this machine); False when this process was
    already connected (the caller then leaves the connection open)."""
    if ray.is_initialized():
        return False
    if address and address not in ("auto", "local"):
        _check_reachable(address)
    kwargs: dict[str, Any] = {"address": address, "log_to_driver": True}
    if not address:
        kwargs["include_dashboard"] = False
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a Ray instance on this machine"
        raise CodetuneError(
            f"cannot reach {where}: {_first_line(exc)}",
            "start one with `ray start --head` and pass the address it prints as --ray-address",
        ) from None
    resources = ray.cluster_resources()
    log(
        f"ray: {len([n for n in ray.nodes() if n['Alive']])} node(s), {resources.get('CPU', 0):g} CPU, "
        f"{resources.get('GPU', 0):g} GPU ({address or 'started on this machine'})"
    )
    return True


def _check_reachable(address: str) -> None:
    """A wrong HOST:PORT fails here at once, not after Ray's minute of retries."""
    import socket

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise CodetuneError(f"--ray-address {address!r} is not HOST:PORT", "e.g. --ray-address 10.0.0.5:6379")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise CodetuneError(
            f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}",
            "start its head with `ray start --head --port PORT` and pass HOST:PORT as --ray-address",
        ) from None


# ------------------------------------------------------------------------------------ shared directory


def check_shared_dir(ray: Any, exp_dir: Path) -> None:
    """Raise a CodetuneError (one line) unless a task on every live node reads a file the driver wrote in
    `exp_dir` and writes one the driver then sees there."""
    token = uuid.uuid4().hex
    probe = Path(exp_dir) / f"{PROBE_PREFIX}{token}"
    probe.write_text(token)
    nodes = [n for n in ray.nodes() if n["Alive"]]
    probe_task = ray.remote(_probe_task)
    refs = {}
    for node in nodes:
        strategy = _pin(node["NodeID"])
        opts = {"num_cpus": 0, "max_retries": 0, "scheduling_strategy": strategy, "name": "codetune:probe"}
        refs[(node["NodeID"], node["NodeManagerAddress"])] = probe_task.options(**opts).remote(str(probe), token)
    problems = []
    try:
        for (node_id, ip), ref in refs.items():
            try:
                reason = ray.get(ref, timeout=PROBE_TIMEOUT_S)
            except Exception as exc:  # the task could not run there: a missing codetune, a timeout
                reason = f"the check failed ({type(exc).__name__}: {_first_line(exc)})"
            if not reason and not (probe.parent / f"{probe.name}-{node_id}").is_file():
                reason = "the file it wrote there is not in this directory"
            if reason:
                problems.append(f"node {ip} ({node_id[:8]}): {reason}")
    finally:
        for leftover in probe.parent.glob(f"{probe.name}*"):
            leftover.unlink(missing_ok=True)
    if problems:
        raise CodetuneError(
            f"output directory {exp_dir} is not shared by every Ray node ({'; '.join(problems)})", SHARED_HINT
        )


def _pin(node_id: str) -> Any:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id, soft=False)


def _probe_task(path: str, token: str) -> str:
    """On one node: read the driver's file, write one of this node's; "" when both work, else why not."""
    import ray

    p = Path(path)
    try:
        seen = p.read_text()
    except OSError as exc:
        return f"cannot read {p} ({exc.strerror or exc})"
    if seen != token:
        return f"{p.parent} there is another directory"
    node_id = ray.get_runtime_context().get_node_id()
    try:
        (p.parent / f"{p.name}-{node_id}").write_text(token)
    except OSError as exc:
        return f"cannot write in {p.parent} ({exc.strerror or exc})"
    return ""


# ---------------------------------------------------------------------------------------------- cells


def _run_cells(ray: Any, runner: Runner, settings: RayConfig) -> tuple[int, int]:
    """Submit each unfinished cell this process could lock (held until the end), then gather them as
    they finish; (cells another process held, cells run)."""
    from codetune.experiments.runner import HELD, benchmark_key, headline

    num_gpus = settings.num_gpus
    if num_gpus is None:
        num_gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0
    model_task, exec_task = ray.remote(_model_task), ray.remote(_execute_task)
    model_opts = {"num_cpus": settings.num_cpus, "num_gpus": num_gpus, "max_retries": settings.max_retries}
    exec_opts = {"num_cpus": settings.exec_num_cpus, "num_gpus": 0, "max_retries": settings.max_retries}
    job = ray.put(Job(runner.exp, str(runner.exp_dir.parent), max(1, int(settings.num_cpus)), runner.tracking_uri))
    benches: dict[tuple, Any] = {}
    held = ran = 0
    pending: dict[Any, tuple[RunSpec, str]] = {}
    with contextlib.ExitStack() as locks:
        for spec, head in runner.heads():
            if not locks.enter_context(try_lock(run_lock(runner.exp_dir, spec.dirname))):
                held += 1
                runner.log(f"{head}: {HELD}")
                continue
            if not runner.needs_run(spec, head):
                continue
            key = benchmark_key(spec.config)
            if key not in benches:  # each benchmark goes to the object store once
                benches[key] = ray.put(runner.benchmark_for(spec.config))
            bench = benches[key]
            handoff = model_task.options(name=f"model:{spec.dirname}", **model_opts).remote(job, spec, bench)
            done = exec_task.options(name=f"execute:{spec.dirname}", **exec_opts).remote(job, spec, bench, handoff)
            pending[done] = (spec, head)
            runner.log(
                f"{head}: submitted ({settings.num_cpus:g} CPU, {num_gpus:g} GPU) -> {runner.run_dir(spec).path}"
            )
        failures: dict[str, BaseException] = {}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            spec, head = pending.pop(ready[0])
            try:
                metrics = ray.get(ready[0])
            except Exception as exc:
                failure = _as_failure(ray, exc, spec, settings.max_retries)
                runner.log(f"{head}: failed: {_first_line(failure)}")
                failures[spec.run_id] = failure
                continue
            ran += 1
            runner.log(f"{head}: {headline(metrics)}")
            runner.write_tables()
    if failures:  # the first in grid order, whichever failed first
        raise next(failures[s.run_id] for s in runner.specs if s.run_id in failures)
    return held, ran


def _as_failure(ray: Any, exc: BaseException, spec: RunSpec, retries: int) -> BaseException:
    """What a task's failure is raised as: a CodetuneError raised in the task keeps its message and hint
    (one error line); a worker or node that kept dying says so in one; anything else (a bug) stays the
    task's error, with its traceback."""
    cause = getattr(exc, "cause", None)
    if isinstance(exc, CodetuneError) or isinstance(cause, CodetuneError):
        err = cause if isinstance(cause, CodetuneError) else exc
        return CodetuneError(f"run {spec.label}: {err.message}", err.hint)
    if isinstance(exc, ray.exceptions.RayTaskError):
        return exc
    return CodetuneError(
        f"run {spec.label} stopped on the Ray cluster after {retries} retries ({type(exc).__name__}: "
        f"{_first_line(exc)})",
        "rerun the same command: the run resumes from its files",
    )


# ------------------------------------------------------------------------------------- in the workers

_RUNNERS: dict[tuple[str, str], Runner] = {}


def _worker_runner(job: Job) -> Runner:
    """This worker process's Runner for the job: kept between tasks, so a worker that runs several cells
    loads the base model once (as the local executor does)."""
    from codetune.experiments.runner import Runner

    key = (job.out_root, job.exp.model_dump_json())
    if key not in _RUNNERS:
        _RUNNERS.clear()  # one experiment's models at a time
        runner = Runner(job.exp, Path(job.out_root), progress=False, log=_worker_log)
        runner.default_threads = job.threads
        runner.tracking_uri = job.tracking_uri
        _RUNNERS[key] = runner
    return _RUNNERS[key]


def _worker_log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)  # Ray forwards it to the driver, prefixed with the task's name


def _model_task(job: Job, spec: RunSpec, bench: Any) -> dict:
    from codetune.training.checkpoint import STATE

    runner = _worker_runner(job)
    runner.use_benchmark(spec.config, bench)
    # device=auto: the GPU Ray gave this task (it sets CUDA_VISIBLE_DEVICES to it), else the CPU, even on
    # a node whose other GPUs are visible but belong to other tasks.
    runner.auto_device = "cuda" if _on_gpu() else "cpu"

    state = "resuming from its checkpoint" if (runner.run_dir(spec).checkpoint / STATE).is_file() else "starting"
    runner.log(f"{spec.label}: model stage {state} on {_where()}")
    try:
        return runner.model_stage(spec)
    finally:
        if runner.auto_device == "cuda":
            runner.release_models()  # GPU memory is not shared between worker processes


def _execute_task(job: Job, spec: RunSpec, bench: Any, handoff: dict) -> dict:
    runner = _worker_runner(job)
    runner.use_benchmark(spec.config, bench)
    runner.log(f"{spec.label}: execution stage on {_where()}")
    return runner.execute_stage(spec, handoff)


def _where() -> str:
    import socket

    return f"{socket.gethostname()} (pid {os.getpid()})"


def _on_gpu() -> bool:
    import ray

    return bool(ray.get_runtime_context().get_accelerator_ids().get("GPU"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
