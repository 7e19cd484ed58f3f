"""Write measured figures into benchmarks/RESULTS.md, one section per benchmark script.

Figures belong here, not in source comments where they go stale: each benchmark script calls
`record(...)` with what it measured, and its section is replaced whole (the others are kept), stamped
with the date, the machine and the command that produced it.

    from results_md import record
    record("perf", "| run | tok/s |\n|---|---|\n| codetune | 598 |", argv=sys.argv)
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import re
import shlex
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
_HEADER = (
    "# Measured figures\n\n"
    "Written by the benchmark scripts in this folder (`benchmarks/results_md.py`); do not edit by hand:\n"
    "rerun the command a section names to refresh it. The machine's speed drifts (up to 2x within an hour\n"
    "on the 2-core development machine), so compare figures measured in one run, alternating A and B.\n"
)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """One line naming the machine: cores, CPU model, Python and torch versions."""
    try:
        import torch

        torch_v = f", torch {torch.__version__}"
    except ImportError:
        torch_v = ""
    return f"{os.cpu_count()} cores, {_cpu()}, Python {platform.python_version()}{torch_v}"


def record(section: str, body: str, argv: list[str] | None = None, path: Path | None = None) -> Path:
    """Replace section `## <section>` of RESULTS.md with `body`, stamped with date, machine and command."""
    path = Path(path or RESULTS)
    text = path.read_text(encoding="utf-8") if path.is_file() else _HEADER
    cmd = " ".join(shlex.quote(a) for a in (argv or [])) or "(not given)"
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    block = f"## {section}\n\n_Measured {stamp} on {machine()}._  \n_Command:_ `{cmd}`\n\n{body.strip()}\n\n"
    pattern = re.compile(rf"^## {re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + block
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def record_printed(section: str, script: str, lines: list[str], argv: list[str], path: str | None = None) -> Path:
    """A benchmark's printed report, as printed, as its section (`script` and `argv` name the command)."""
    body = "```text\n" + "\n".join(lines) + "\n```"
    return record(section, body, argv=[script, *argv], path=Path(path) if path else None)
