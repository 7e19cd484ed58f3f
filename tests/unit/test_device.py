import os


def test_matmul_caches_capped_unless_the_user_chose(monkeypatch):
    from codetune.device import (
        CACHE_CAPS,
        IDEEP_CACHE_ENV,
        ONEDNN_CACHE_DEFAULT,
        ONEDNN_CACHE_ENV,
        limit_onednn_cache,
    )

    assert set(CACHE_CAPS) == {ONEDNN_CACHE_ENV, IDEEP_CACHE_ENV}
    for name in CACHE_CAPS:
        monkeypatch.delenv(name, raising=False)
    assert limit_onednn_cache() == {ONEDNN_CACHE_ENV: ONEDNN_CACHE_DEFAULT, IDEEP_CACHE_ENV: ONEDNN_CACHE_DEFAULT}
    assert os.environ[ONEDNN_CACHE_ENV] == os.environ[IDEEP_CACHE_ENV] == ONEDNN_CACHE_DEFAULT
    monkeypatch.setenv(ONEDNN_CACHE_ENV, "512")
    monkeypatch.setenv(IDEEP_CACHE_ENV, "32")
    assert limit_onednn_cache() == {ONEDNN_CACHE_ENV: "512", IDEEP_CACHE_ENV: "32"}


def _growth_mb(env_caps: dict[str, str | None]) -> float:
    """Resident memory growth over 500 bf16 matmul shapes in a fresh process that starts as codetune's
    entry points do (set_threads first); env_caps: cache variables to set by hand (None: left to codetune)."""
    import subprocess
    import sys

    code = (
        "import os\n"
        "from codetune.device import set_threads\n"
        "set_threads(1)\n"
        "import torch\n"
        "def rss(): return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE')\n"
        "w = torch.randn(1536, 576, dtype=torch.bfloat16)\n"
        "torch.randn(8, 576, dtype=torch.bfloat16) @ w.t()\n"
        "before = rss()\n"
        "for m in range(64, 564): torch.randn(m, 576, dtype=torch.bfloat16) @ w.t()\n"
        "print((rss() - before) / 2**20)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in env_caps}
    env.update({k: v for k, v in env_caps.items() if v is not None})
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return float(out.stdout.split()[-1])


def test_cache_caps_bound_memory_in_a_fresh_process():
    """Each cap takes effect when set as codetune sets it: growth under codetune's caps against the libraries'
    own default of 1024 entries for one cache or the other (set by hand: a user's choice wins)."""
    import pytest

    from codetune.device import IDEEP_CACHE_ENV, ONEDNN_CACHE_ENV, bf16_fast

    if not bf16_fast("cpu"):
        # Without native bf16 (AVX-512 BF16 / AMX) torch's CPU bf16 matmuls do not go through oneDNN
        # primitives, so neither cache fills and there is no growth for the caps to bound.
        pytest.skip("this CPU has no native bf16 matmuls: the primitive caches stay empty")

    capped = _growth_mb({ONEDNN_CACHE_ENV: None, IDEEP_CACHE_ENV: None})
    onednn_open = _growth_mb({ONEDNN_CACHE_ENV: "1024", IDEEP_CACHE_ENV: None})
    ideep_open = _growth_mb({ONEDNN_CACHE_ENV: None, IDEEP_CACHE_ENV: "1024"})
    # codetune's caps must save at least 50 MB over the 500 shapes against either cache left open.
    assert capped < onednn_open - 50, (capped, onednn_open)
    assert capped < ideep_open - 50, (capped, ideep_open)
