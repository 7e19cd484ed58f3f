"""Does the batch checker agree with the real compiler run one process per file? A corpus and a judge.

Corpus (deterministic for a seed): real code, plus mutated copies of it.
    python      functions and methods (methods keep their indentation: the `auto` dedent rule is exercised)
                from the running interpreter's standard library.
    java        methods with their Javadoc from the JDK's `lib/src.zip` (java.base): half as bare members,
                half as compilation units (`import java.util.*; import java.io.*;` + `public class Main`).
    javascript  function declarations with their JSDoc, and whole small files, from the npm packages
                lodash, async and validator (`npm pack`, cached); offline: from npm's own install.
    c           whole example programs and their functions from /usr/share/doc/*/examples and numpy's
                distutils checks (prefixed with common libc headers when cut out of a file).
    cpp         HumanEval-X C++ declarations + canonical solutions.
    Java and JavaScript also take HumanEval-X solutions (whole units that compile; data under
    /work/shared/data/humaneval-x), so the `valid` side is well represented after mutation.
Mutations (one per mutated copy, at a random place): delete one bracket/separator token, rename one
identifier use to an undefined name, replace a number with a string (a type error where types exist),
duplicate one line (redeclarations). Roughly 40% of items are left unmutated.

Judge: the same text, written to a file and given to the real tool, one process per file:
`python -c ast.parse` / `python -m py_compile`; `javac` (parse level: `-XDshould-stop.ifError=PARSE
-XDshould-stop.ifNoError=PARSE`); `node --check` on .cjs, then .mjs, then the class-member wrapping;
`gcc`/`g++ -fsyntax-only` with the checker's flags. Each side applies the documented `unit` rule.
"""

from __future__ import annotations

import ast
import gzip
import io
import json
import os
import random
import re
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import textwrap
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from codetune.evaluation.syntax.c_family import C_FLAGS, CXX_FLAGS
from codetune.evaluation.syntax.java import cache_root

NPM_PACKAGES = ("lodash@4.17.21", "async@3.2.6", "validator@13.15.35")
JAVA_IMPORTS = "import java.util.*;\nimport java.io.*;\n\n"
C_HEADERS = "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n\n"


@dataclass
class Item:
    id: str
    code: str
    origin: str
    mutation: str = "none"
    unit: str = "auto"


@dataclass
class Verdict:
    status: str
    line: int | None = None
    message: str = ""


@dataclass
class Report:
    language: str
    level: str
    n: int = 0
    agree: int = 0
    line_agree: int = 0
    invalid_both: int = 0
    counts: dict = field(default_factory=dict)
    disagreements: list = field(default_factory=list)
    line_mismatches: list = field(default_factory=list)


# -- corpus ------------------------------------------------------------------------------------------------
_TOKEN = re.compile(r"[A-Za-z_]\w*|\d+(?:\.\d+)?|[()\[\]{};,:]")
# Words a rename must not touch (keywords and common library names of the five languages).
_KEYWORD_TEXT = """
abstract and as assert async await auto boolean break byte case catch char class const continue def default
del delete do double elif else enum export extends extern false final finally float for from function global
goto if implements import in instanceof int interface is lambda let long native new nonlocal not null or
package pass private protected public raise register return short signed sizeof static struct super switch
synchronized this throw throws transient true try typedef typeof union unsigned var void volatile while with
yield None True False self std include define string vector
"""
_KEYWORDS = frozenset(_KEYWORD_TEXT.split())


def mutate(code: str, kind: str, rng: random.Random) -> str | None:
    tokens = [m for m in _TOKEN.finditer(code)]
    if kind == "delete_token":
        picks = [m for m in tokens if m.group() in "()[]{};,:"]
        if not picks:
            return None
        m = rng.choice(picks)
        return code[: m.start()] + code[m.end() :]
    if kind == "rename_ident":
        picks = [m for m in tokens if m.group()[0].isalpha() and m.group() not in _KEYWORDS and len(m.group()) > 1]
        picks = [m for m in picks if code[max(0, m.start() - 1)] != "."]  # not a member access
        if not picks:
            return None
        m = rng.choice(picks[len(picks) // 3 :] or picks)  # uses are more common past the signature
        return code[: m.start()] + "undefinedName_q" + code[m.end() :]
    if kind == "number_to_string":
        picks = [m for m in tokens if m.group()[0].isdigit()]
        if not picks:
            return None
        m = rng.choice(picks)
        return code[: m.start()] + '"s"' + code[m.end() :]
    if kind == "dup_line":
        lines = code.split("\n")
        cands = [i for i, ln in enumerate(lines) if ln.strip() and not ln.strip().startswith(("*", "/", "#"))]
        if len(cands) < 3:
            return None
        i = rng.choice(cands[1:-1])
        return "\n".join(lines[: i + 1] + [lines[i]] + lines[i + 1 :])
    raise ValueError(kind)


MUTATIONS = ("delete_token", "rename_ident", "number_to_string", "dup_line")


def _with_mutations(base: list[Item], n: int, rng: random.Random) -> list[Item]:
    rng.shuffle(base)
    items: list[Item] = []
    for k, item in enumerate(base):
        if len(items) >= n:
            break
        if k % 5 < 2:
            items.append(item)
            continue
        kind = MUTATIONS[k % len(MUTATIONS)]
        code = mutate(item.code, kind, rng)
        if code is not None and code != item.code:
            items.append(Item(f"{item.id}~{kind}", code, item.origin, kind, item.unit))
    return items


def _python_base(rng: random.Random, limit: int) -> list[Item]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.glob("*.py"))
    rng.shuffle(files)
    out: list[Item] = []
    for path in files:
        try:
            src = path.read_text(encoding="utf-8")
            tree = ast.parse(src)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        lines = src.splitlines()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno < 60:
                start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
                code = "\n".join(lines[start - 1 : node.end_lineno]) + "\n"
                out.append(Item(f"{path.name}:{node.lineno}", code, f"stdlib/{path.name}"))
        if len(out) >= limit:
            break
    return out


def _ts_parser(module):
    from tree_sitter import Language, Parser

    return Parser(Language(module.language()))


def _with_doc(node, src: bytes, comment_types=("block_comment", "comment")) -> str:
    start = node.start_byte
    prev = node.prev_sibling
    if prev is not None and prev.type in comment_types and src[prev.start_byte : prev.start_byte + 3] == b"/**":
        start = prev.start_byte
    line_start = src.rfind(b"\n", 0, start) + 1
    text = src[line_start : node.end_byte].decode("utf-8", "replace")
    return textwrap.dedent(text)


def java_src_zip() -> Path | None:
    import shutil

    javac = shutil.which("javac")
    cands = [Path(javac).resolve().parent.parent / "lib" / "src.zip"] if javac else []
    cands += [Path("/usr/lib/jvm/openjdk-17/lib/src.zip")]
    return next((p for p in cands if p.is_file()), None)


def _java_base(rng: random.Random, limit: int) -> list[Item]:
    import tree_sitter_java

    zpath = java_src_zip()
    if zpath is None:
        raise FileNotFoundError("no JDK src.zip; install it with: apt-get install openjdk-17-source")
    parser = _ts_parser(tree_sitter_java)
    out: list[Item] = []
    with zipfile.ZipFile(zpath) as zf:
        names = sorted(n for n in zf.namelist() if n.startswith("java.base/java/") and n.endswith(".java"))
        rng.shuffle(names)
        for name in names:
            src = zf.read(name)
            tree = parser.parse(src)
            stack = [tree.root_node]
            while stack:
                node = stack.pop()
                stack.extend(node.children)
                if node.type == "method_declaration" and node.child_by_field_name("body") is not None:
                    code = _with_doc(node, src)
                    if code.count("\n") < 50:
                        out.append(Item(f"{name}:{node.start_point[0] + 1}", code, name.split("/", 1)[1]))
            if len(out) >= limit:
                break
    # Half are checked as members (the auto rule wraps them), half as whole units built around them.
    for k, item in enumerate(out):
        if k % 2:
            body = textwrap.indent(item.code, "    ")
            item.code = f"{JAVA_IMPORTS}public class Main {{\n{body}}}\n"
            item.id += "#unit"
            item.unit = "whole"
        else:
            item.unit = "member"
    # HumanEval-X solutions are whole units that compile: a third of the items, so `valid` is well tested.
    extra = humaneval_x("java")
    rng.shuffle(extra)
    return out + extra[: len(out) // 2]


def npm_tarballs() -> list[Path]:
    """The npm packages' tarballs, fetched once with `npm pack` into the cache."""
    target = cache_root() / "syntax" / "npm"
    target.mkdir(parents=True, exist_ok=True)
    if len(list(target.glob("*.tgz"))) < len(NPM_PACKAGES):
        subprocess.run(
            ["npm", "pack", "--silent", *NPM_PACKAGES], cwd=target, check=True, capture_output=True, timeout=300
        )
    return sorted(target.glob("*.tgz"))


def npm_install_dir() -> Path | None:
    """npm's own installed sources (no download needed): `.../node_modules/npm`."""
    import shutil

    npm = shutil.which("npm")
    if npm is None:
        return None
    root = Path(npm).resolve().parent.parent
    return root if (root / "package.json").is_file() else None


def _js_base(rng: random.Random, limit: int, offline: bool = False) -> list[Item]:
    import tree_sitter_javascript

    parser = _ts_parser(tree_sitter_javascript)
    out: list[Item] = []
    files = []
    if offline:
        # npm's own installed sources: no network needed (the tests use these).
        root = npm_install_dir()
        if root is None:
            raise FileNotFoundError("npm is not installed; it is the offline JavaScript corpus")
        for path in sorted(root.rglob("*.js")):
            if ".min." not in path.name:
                files.append((f"npm/{path.relative_to(root)}", path.read_bytes()))
    else:
        for tgz in npm_tarballs():
            with tarfile.open(tgz) as tf:
                for m in tf.getmembers():
                    if m.isfile() and m.name.endswith(".js") and ".min." not in m.name:
                        files.append((f"{tgz.stem}/{m.name}", tf.extractfile(m).read()))
    rng.shuffle(files)
    for name, src in files:
        if len(src) < 6000:
            out.append(Item(f"{name}#file", src.decode("utf-8", "replace"), name))
        for node in parser.parse(src).root_node.children:
            if node.type == "function_declaration" and node.end_point[0] - node.start_point[0] < 50:
                out.append(Item(f"{name}:{node.start_point[0] + 1}", _with_doc(node, src, ("comment",)), name))
        if len(out) >= limit:
            break
    extra = humaneval_x("js")
    rng.shuffle(extra)
    return out + extra[: len(out) // 4]


def _c_base(rng: random.Random, limit: int) -> list[Item]:
    import tree_sitter_c

    parser = _ts_parser(tree_sitter_c)
    roots = sorted(Path("/usr/share/doc").glob("*/examples/*.c"))
    try:
        import numpy

        roots += sorted((Path(numpy.__file__).parent / "distutils" / "checks").glob("*.c"))
    except ImportError:
        pass
    out: list[Item] = []
    rng.shuffle(roots)
    for path in roots:
        src = path.read_bytes()
        name = f"{path.parent.parent.name}/{path.name}"
        if len(src) < 12000:
            out.append(Item(f"{name}#file", src.decode("utf-8", "replace"), name))
        funcs = [n for n in parser.parse(src).root_node.children if n.type == "function_definition"]
        # A function cut out of a file keeps the file's preamble (includes, macros, types) before it.
        preamble = src[: funcs[0].start_byte].decode("utf-8", "replace") if funcs else C_HEADERS
        for node in funcs:
            if node.end_point[0] - node.start_point[0] < 50:
                out.append(
                    Item(f"{name}:{node.start_point[0] + 1}", preamble + _with_doc(node, src, ("comment",)), name)
                )
        if len(out) >= limit:
            break
    return out


HUMANEVAL_X = Path("/work/shared/data/humaneval-x")


def humaneval_x(language: str, unit: str = "whole") -> list[Item]:
    """HumanEval-X declarations + canonical solutions (whole units); empty when the data is not here."""
    path = HUMANEVAL_X / f"humaneval_{language}.jsonl.gz"
    if not path.is_file():
        return []
    with gzip.open(path, "rt") as f:
        recs = [json.loads(line) for line in f]
    return [
        Item(r["task_id"], r["declaration"] + r["canonical_solution"], f"humaneval-x/{language}", unit=unit)
        for r in recs
    ]


def _cpp_base(rng: random.Random, limit: int) -> list[Item]:
    out = humaneval_x("cpp")
    if not out:
        raise FileNotFoundError(f"{HUMANEVAL_X}/humaneval_cpp.jsonl.gz not found")
    rng.shuffle(out)
    return out[:limit]


_BASES = {"python": _python_base, "java": _java_base, "javascript": _js_base, "c": _c_base, "cpp": _cpp_base}


def build_corpus(language: str, n: int, seed: int = 0, *, offline: bool = False) -> list[Item]:
    """About `n` items of real code for `language`, ~60% of them mutated; deterministic for `seed`.

    `offline=True` takes JavaScript from npm's own installed sources instead of fetching npm packages.
    """
    rng = random.Random(f"{language}-{seed}")
    if language == "javascript":
        return _with_mutations(_js_base(rng, 3 * n, offline), n, rng)
    return _with_mutations(_BASES[language](rng, 3 * n), n, rng)


# -- the judge: one process per file ----------------------------------------------------------------------
def _run(argv: list[str], cwd: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    return subprocess.run(
        argv, cwd=cwd, check=False, capture_output=True, text=True, errors="replace", timeout=timeout, env=env
    )


def _first_line(pattern: str, text: str) -> int | None:
    m = re.search(pattern, text)
    return int(m.group(1)) if m else None


def _python_ref(code: str, level: str, tmp: str) -> Verdict:
    def once(text: str) -> subprocess.CompletedProcess:
        Path(tmp, "snippet.py").write_text(text, encoding="utf-8")
        if level == "parse":
            argv = [
                sys.executable,
                "-c",
                "import ast,sys; ast.parse(open(sys.argv[1], encoding='utf-8').read())",
                "snippet.py",
            ]
        else:
            argv = [sys.executable, "-m", "py_compile", "snippet.py"]
        return _run(argv, tmp)

    out = once(code)
    if out.returncode and "IndentationError" in out.stderr and textwrap.dedent(code) != code:
        out = once(textwrap.dedent(code))  # the documented `auto` rule
    if out.returncode == 0:
        return Verdict("valid")
    # The SyntaxError's own location is the last `File "...", line N` (its message may name other lines).
    # py_compile prints IndentationErrors as "Sorry: IndentationError: ... (snippet.py, line N)".
    lines = re.findall(r'File "[^"]*", line (\d+)|\(snippet\.py, line (\d+)\)', out.stderr)
    line = int(next(g for g in lines[-1] if g)) if lines else None
    return Verdict("invalid", line, out.stderr.strip().splitlines()[-1])


def _java_ref(code: str, level: str, tmp: str, unit: str) -> Verdict:
    member = unit != "whole"  # the item's true form; the checker has to find it with `auto`
    text = "class Main { " + code + "\n}\n" if member else code
    m = (
        None
        if member
        else re.search(r"public\s+(?:final\s+|abstract\s+)*(?:class|interface|enum|record)\s+(\w+)", code)
    )
    name = m.group(1) if m else "Main"
    Path(tmp, f"{name}.java").write_text(text, encoding="utf-8")
    argv = ["javac", "-proc:none", "-Xlint:none", "-nowarn", "-implicit:none", "-d", "classes"]
    if level == "parse":
        argv += ["-XDshould-stop.ifError=PARSE", "-XDshould-stop.ifNoError=PARSE"]
    out = _run(argv + [f"{name}.java"], tmp)
    if out.returncode == 0 and "error:" not in out.stderr:
        return Verdict("valid")
    return Verdict("invalid", _first_line(rf"{name}\.java:(\d+): error", out.stderr), out.stderr[:300])


def _js_ref(code: str, level: str, tmp: str) -> Verdict:
    best = None
    for fname, text in (
        ("snippet.cjs", code),
        ("snippet.mjs", code),
        ("member.cjs", "class Main { " + code + "\n}"),
    ):
        Path(tmp, fname).write_text(text, encoding="utf-8")
        out = _run(["node", "--check", fname], tmp)
        if out.returncode == 0:
            return Verdict("valid")
        v = Verdict("invalid", _first_line(rf"{re.escape(fname)}:(\d+)", out.stderr), out.stderr[:300])
        if best is None or (v.line or 0) > (best.line or 0):
            best = v
    return best


def _c_ref(code: str, level: str, tmp: str, language: str) -> Verdict:
    fname = "snippet.c" if language == "c" else "snippet.cpp"
    Path(tmp, fname).write_text(code, encoding="utf-8")
    argv = ["gcc", "-fsyntax-only", *C_FLAGS] if language == "c" else ["g++", "-fsyntax-only", *CXX_FLAGS]
    out = _run(argv + [fname], tmp)
    if out.returncode == 0:
        return Verdict("valid")
    return Verdict(
        "invalid", _first_line(rf"{fname}:(\d+):(?:\d+:)? (?:fatal )?error", out.stderr), out.stderr[:300]
    )


def reference_check(language: str, level: str, item: Item) -> Verdict:
    """The real toolchain's verdict on one item, in a fresh process (and a fresh directory)."""
    with tempfile.TemporaryDirectory(prefix="codetune-ref-") as tmp:
        if language == "python":
            return _python_ref(item.code, level, tmp)
        if language == "java":
            return _java_ref(item.code, level, tmp, item.unit)
        if language == "javascript":
            return _js_ref(item.code, level, tmp)
        return _c_ref(item.code, level, tmp, language)


def compare(language: str, level: str, items: list[Item], *, jobs: int = 2) -> Report:
    """Run the batch checker and the one-process-per-file judge over `items`; count agreement."""
    from codetune.evaluation.syntax import check_snippets

    ours = check_snippets(language, [it.code for it in items], level)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        refs = list(pool.map(lambda it: reference_check(language, level, it), items))
    rep = Report(language, level, n=len(items))
    for it, a, b in zip(items, ours, refs):
        rep.counts[b.status] = rep.counts.get(b.status, 0) + 1
        if a.status == b.status:
            rep.agree += 1
            if a.status == "invalid":
                rep.invalid_both += 1
                rep.line_agree += a.line == b.line
                if a.line != b.line:
                    rep.line_mismatches.append(
                        {
                            "snippet_lines": it.code.count("\n") + 1,
                            "id": it.id,
                            "mutation": it.mutation,
                            "ours": a.to_dict(),
                            "reference": {"line": b.line, "message": b.message},
                        }
                    )
        else:
            rep.disagreements.append(
                {
                    "id": it.id,
                    "mutation": it.mutation,
                    "ours": a.to_dict(),
                    "reference": {"status": b.status, "line": b.line, "message": b.message},
                }
            )
    return rep


def levels_for(language: str) -> tuple[str, ...]:
    """Levels whose reference is the real compiler: gcc has no parse-only mode, tree-sitter is no compiler."""
    return ("compile",) if language in ("c", "cpp") else ("parse", "compile")


def dump_items(items: list[Item]) -> str:
    buf = io.StringIO()
    for it in items:
        buf.write(json.dumps({"id": it.id, "code": it.code, "origin": it.origin, "mutation": it.mutation}) + "\n")
    return buf.getvalue()
