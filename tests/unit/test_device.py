import os


def test_onednn_cache_capped_unless_the_user_chose(monkeypatch):
    from codetune.device import ONEDNN_CACHE_DEFAULT, ONEDNN_CACHE_ENV, limit_onednn_cache

    monkeypatch.delenv(ONEDNN_CACHE_ENV, raising=False)
    assert limit_onednn_cache() == ONEDNN_CACHE_DEFAULT
    assert os.environ[ONEDNN_CACHE_ENV] == ONEDNN_CACHE_DEFAULT
    monkeypatch.setenv(ONEDNN_CACHE_ENV, "512")
    assert limit_onednn_cache() == "512"


def test_onednn_cache_cap_bounds_memory_in_a_fresh_process():
    """The cap takes effect when set as codetune sets it: memory growth over 500 matmul shapes in a fresh
    process, under codetune's cap vs oneDNN's own default of 1024 entries (set by hand: a user's choice wins)."""
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
    growth = {}
    for mode, value in (("onednn default", "1024"), ("codetune cap", None)):
        env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
        if value:
            env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = value
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        growth[mode] = float(out.stdout.split()[-1])
    # measured here: ~365 MB vs ~250 MB
    assert growth["codetune cap"] < growth["onednn default"] - 50, growth
