"""Docstring -> body pairs from Python source with `ast`.

prompt = decorators + signature + docstring (through the docstring's last line, newline included);
target = the rest of the body. The whole function is shifted left so its `def` starts at column 0.
"""

from __future__ import annotations

import ast
import os
import sysconfig
import warnings
from collections.abc import Iterator
from pathlib import Path

from codetune.data.records import CodeSample, sample_id

# Directories never mined from a stdlib: tests, third-party packages, and Python-2 era fixtures.
_SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "lib2to3"}


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _python_files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for fn in sorted(filenames):
            if fn.endswith(".py") and not fn.startswith("test_"):
                yield Path(dirpath) / fn


def _shift_left(lines: list[str], indent: int) -> list[str]:
    """Remove `indent` leading characters where they are whitespace (string contents stay intact)."""
    out = []
    for line in lines:
        head = line[:indent]
        out.append(line[indent:] if head.strip() == "" else line.lstrip())
    return out


def _split_function(node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]) -> tuple[str, str] | None:
    body = node.body
    doc = body[0]
    if not (
        isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str)
    ):
        return None
    if len(body) < 2:
        return None  # docstring only: nothing to generate
    first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
    doc_end = doc.end_lineno
    rest_start = body[1].lineno
    if rest_start <= doc_end or node.end_lineno is None:
        return None  # statement on the docstring's line: no clean split
    indent = len(lines[node.lineno - 1]) - len(lines[node.lineno - 1].lstrip())
    prompt_lines = _shift_left(lines[first - 1 : doc_end], indent)
    target_lines = _shift_left(lines[doc_end : node.end_lineno], indent)
    prompt = "\n".join(prompt_lines) + "\n"
    target = "\n".join(target_lines).rstrip() + "\n"
    if not target.strip():
        return None
    return prompt, target


def extract_python(source: Path) -> Iterator[CodeSample]:
    """Yield a CodeSample for every documented function with a body in the file or tree `source`."""
    from codetune.data.complexity import measure_complexity

    root = Path(source)
    for path in _python_files(root):
        try:
            text = path.read_text(encoding="utf-8")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # invalid escape sequences in old files
                tree = ast.parse(text)
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue
        lines = text.splitlines()
        rel = str(path.relative_to(root)) if root.is_dir() else path.name
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            split = _split_function(node, lines)
            if split is None:
                continue
            prompt, target = split
            first = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            yield CodeSample(
                id=sample_id("python", target),
                language="python",
                prompt=prompt,
                target=target,
                source=rel,
                line=first,
                name=node.name,
                complexity=measure_complexity(prompt + target, "python"),
            )
