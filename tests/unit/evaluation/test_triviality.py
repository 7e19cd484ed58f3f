"""Stub detection: the listed trivial bodies are flagged, real code (HumanEval-X solutions) is not."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from codetune.errors import ConfigError
from codetune.evaluation.triviality import is_trivial_body

TRIVIAL = [
    ("python", ""),
    ("python", "    pass\n"),
    ("python", "    ...\n"),
    ("python", '    """Return the answer."""\n'),
    ("python", '    """Doc."""\n    pass\n'),
    ("python", "    # TODO\n"),
    ("python", "    return\n"),
    ("python", "    return None\n"),
    ("python", "    return 0\n"),
    ("python", "    return ''\n"),
    ("python", "    return []\n"),
    ("python", "    return {}\n"),
    ("python", "    return False\n"),
    ("python", "    return list()\n"),
    ("python", "    raise NotImplementedError\n"),
    ("python", "    raise NotImplementedError('later')\n"),
    ("python", 'def f(x: int) -> int:\n    """Doc."""\n    return None\n'),
    ("python", "import math\n\ndef f(x):\n    pass\n\ndef g(y):\n    return 0\n"),
    ("java", "        return 0;\n    }\n}"),
    ("java", "        return null;\n    }\n}\n"),
    ("java", '        return "";\n    }\n}'),
    ("java", "        return false;\n    }\n}"),
    ("java", "        return new ArrayList<>();\n    }\n}"),
    ("java", "        return new int[0];\n    }\n}"),
    ("java", "        return Collections.emptyList();\n    }\n}"),
    ("java", "        throw new UnsupportedOperationException();\n    }\n}"),
    ("java", '        throw new UnsupportedOperationException("todo");\n    }\n}'),
    ("java", '        throw new RuntimeException("Not implemented yet");\n    }\n}'),
    ("java", "        // TODO\n    }\n}"),
    (
        "java",
        (
            "import java.util.*;\nclass Solution {\n    public List<Integer> f(int n) {\n"
            "        return new ArrayList<>();\n    }\n}"
        ),
    ),
    ("javascript", "  return null;\n}\n"),
    ("javascript", "  return undefined;\n}"),
    ("javascript", "  return [];\n}"),
    ("javascript", "  return false;\n}"),
    ("javascript", "  throw new Error('not implemented');\n}"),
    ("javascript", "const f = (x) => {\n  return 0;\n}"),
    ("javascript", "const f = (x) => null"),
    ("javascript", "function f(x) {\n  // nothing yet\n}"),
    ("c", "    return 0;\n}"),
    ("c", "    return NULL;\n}"),
    ("c", "    return;\n}"),
    ("c", "#include <stdio.h>\nint f(int *a, int n) {\n    return 0;\n}"),
    ("cpp", "    return {};\n}"),
    ("cpp", "    return nullptr;\n}"),
    ("cpp", "    return std::vector<int>();\n}"),
    ("cpp", '    throw std::logic_error("not implemented");\n}'),
    ("cpp", "#include <vector>\nstd::vector<int> f(int n) {\n    return {};\n}"),
]

NOT_TRIVIAL = [
    ("python", "    return x + 1\n"),
    ("python", "    return True\n"),  # can be the right answer
    ("python", "    return 1\n"),
    ("python", "    if x:\n        return None\n    return x\n"),
    ("python", "    raise ValueError('bad input')\n"),
    ("python", "def f(x):\n    def g():\n        pass\n    return g\n"),
    ("python", "def f(x):\n    pass\n\ndef g(y):\n    return y * 2\n"),  # a function that works
    ("python", "    return (\n"),  # does not parse: broken, not a stub
    ("java", "        int x = n * 2;\n        return x;\n    }\n}"),
    ("java", "        return 1;\n    }\n}"),
    ("java", '        throw new IllegalArgumentException("n < 0");\n    }\n}'),
    ("java", "        return new ArrayList<>(items);\n    }\n}"),
    ("javascript", "  return x.map((y) => y * 2);\n}\n"),
    ("javascript", "  const g = () => null;\n  return g() || x;\n}"),
    ("javascript", "const f = (x) => x * 2"),
    ("c", "    return a[0];\n}"),
    ("c", "    int s = 0;\n    return s;\n}"),
    ("cpp", "    return n * 2;\n}"),
    ("cpp", "    return std::vector<int>(n, 0);\n}"),
    ("cpp", '    throw std::out_of_range("index");\n}'),
]


@pytest.mark.parametrize("language,code", TRIVIAL)
def test_trivial_bodies_are_flagged(language, code):
    assert is_trivial_body(code, language) is True


@pytest.mark.parametrize("language,code", NOT_TRIVIAL)
def test_working_or_broken_bodies_are_not_flagged(language, code):
    assert is_trivial_body(code, language) is False


HUMANEVAL_X = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "humaneval-x"


@pytest.mark.skipif(not HUMANEVAL_X.is_dir(), reason="HumanEval-X data not present (../shared/data/humaneval-x)")
@pytest.mark.parametrize(
    "language,stem", [("python", "python"), ("java", "java"), ("javascript", "js"), ("cpp", "cpp")]
)
def test_no_canonical_solution_is_trivial(language, stem):
    with gzip.open(HUMANEVAL_X / f"humaneval_{stem}.jsonl.gz", "rt") as fh:
        rows = [json.loads(line) for line in fh]
    flagged = [
        r["task_id"]
        for r in rows
        if is_trivial_body(r["canonical_solution"], language)
        or is_trivial_body(r["declaration"] + r["canonical_solution"], language)
    ]
    assert flagged == []


def test_unsupported_language_raises_config_error():
    with pytest.raises(ConfigError, match="does not support language 'go'"):
        is_trivial_body("return nil", "go")
