"""Shared fixtures: a tiny random causal LM with a tiny tokenizer (no network), and a tiny source tree."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

TINY_CODE = '''
def add(a, b):
    """Return the sum of a and b."""
    return a + b


def clamp(x, lo, hi):
    """Clamp x into the closed interval [lo, hi]."""
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


class Stack:
    """A list-backed stack."""

    def __init__(self):
        """Make an empty stack."""
        self.items = []

    def push(self, item):
        """Put item on top."""
        self.items.append(item)

    @property
    def size(self):
        """How many items are stacked."""
        return len(self.items)
'''


def make_source_tree(root: Path, n_modules: int = 12) -> Path:
    """A package of small documented functions: n_modules files x 4 distinct functions each."""
    root.mkdir(parents=True, exist_ok=True)
    for m in range(n_modules):
        funcs = []
        for k in range(4):
            funcs.append(
                textwrap.dedent(
                    f'''
                    def f{m}_{k}(x, y={k}):
                        """Combine x and y (variant {m}.{k})."""
                        total = x * {m + 1} + y
                        for i in range({k + 1}):
                            total += i
                        return total
                    '''
                )
            )
        (root / f"mod{m}.py").write_text("\n".join(funcs))
    return root


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    """A byte-level BPE tokenizer trained on a little code, saved as a fast HF tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny_tok")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [TINY_CODE] * 5 + [make_source_tree.__doc__ or ""]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_tokenizer_dir, tmp_path_factory) -> Path:
    """A 2-layer, 32-dim random Llama saved with the tiny tokenizer: a valid local model directory."""
    import shutil

    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny_model")
    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.eos_token_id,
    )
    LlamaForCausalLM(cfg).save_pretrained(out)
    for f in Path(tiny_tokenizer_dir).iterdir():
        shutil.copy(f, out / f.name)
    return out


@pytest.fixture()
def source_tree(tmp_path) -> Path:
    return make_source_tree(tmp_path / "pkg")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Each test gets its own codetune cache so corpora and models never leak between tests."""
    monkeypatch.setenv("CODETUNE_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def make_tree():
    """The tiny-source-tree builder, for fixtures with a wider scope than `source_tree`."""
    return make_source_tree


TINY_TASKS = [
    ("add", "a, b", "Return the sum of a and b.", "    return a + b\n", "assert candidate(2, 3) == 5"),
    (
        "clamp",
        "x, lo, hi",
        "Clamp x into [lo, hi].",
        "    return max(lo, min(x, hi))\n",
        "assert candidate(5, 0, 3) == 3",
    ),
    ("double", "x", "Twice x.", "    return 2 * x\n", "assert candidate(4) == 8"),
]


def write_tiny_benchmark(path: Path) -> Path:
    """A HumanEval-format file of three short Python tasks (prompt, canonical solution, test, entry point)."""
    import json

    lines = []
    for i, (name, args, doc, body, check) in enumerate(TINY_TASKS):
        lines.append(
            json.dumps(
                {
                    "task_id": f"HumanEval/{i}",
                    "prompt": f'def {name}({args}):\n    """{doc}"""\n',
                    "canonical_solution": body,
                    "test": f"def check(candidate):\n    {check}\n",
                    "entry_point": name,
                }
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_benchmark(tmp_path_factory) -> Path:
    """Three HumanEval-format Python tasks in a file: a benchmark small enough for end-to-end runs."""
    return write_tiny_benchmark(tmp_path_factory.mktemp("bench") / "tiny_humaneval.jsonl")


@pytest.fixture(scope="session")
def tiny_adapter_dirs(tiny_model_dir, tmp_path_factory) -> dict[str, Path]:
    """Two LoRA adapters on the tiny model, "a" (r=4) and "b" (r=8), saved with `save_pretrained`.

    Their weights are random and non-zero (`init_lora_weights=False`, each from its own seed), so each
    changes the model's outputs, and differently: a test can tell base, "a" and "b" apart.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("tiny_adapters")
    dirs = {}
    for seed, (name, r) in enumerate([("a", 4), ("b", 8)], start=1):
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)  # fresh: peft wraps the base in place
        torch.manual_seed(seed)
        cfg = LoraConfig(
            r=r,
            lora_alpha=2 * r,
            lora_dropout=0.0,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
            init_lora_weights=False,
            task_type="CAUSAL_LM",
        )
        get_peft_model(base, cfg).save_pretrained(out / name)
        dirs[name] = out / name
    return dirs


CHROMIUM = "/usr/bin/chromium"  # Debian's package: never `playwright install`, which downloads browsers
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture()
def headless_chromium():
    """A function that starts headless Chromium under playwright: `with headless_chromium() as browser:`.
    Skips where chromium is not installed, except in CI, which must have it."""
    import contextlib
    import os
    import shutil

    if not (os.path.exists(CHROMIUM) and shutil.which("chromium")):
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI: apt-get install -y chromium")
        pytest.skip("chromium is not installed (apt-get install -y chromium); this test runs in CI")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the `test` extra)")

    @contextlib.contextmanager
    def launch():
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                yield browser
            finally:
                browser.close()

    launch.sync_api = sync_api
    return launch


def build_code_samples(n: int, body: Callable[[int], str] | None = None, stem: str = "add") -> list:
    """n Python functions as CodeSamples: `def {stem}{i}(a):` with a one-line docstring prompt; the target is
    `body(i)` (default: one `return a + i` line). Ids follow the target, as the corpus makes them."""
    from codetune.data.records import CodeSample, sample_id

    out = []
    for i in range(n):
        target = body(i) if body is not None else f"    return a + {i}\n"
        prompt = f'def {stem}{i}(a):\n    """{stem.capitalize()} {i}."""\n'
        out.append(CodeSample(sample_id("python", target), "python", prompt, target, "x.py", 1, f"{stem}{i}"))
    return out


@pytest.fixture(scope="session")
def code_samples() -> Callable[..., list]:
    """`build_code_samples`: tiny CodeSamples for training and FIM tests."""
    return build_code_samples
