"""Where codetune caches converted models and downloaded corpora."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """`$CODETUNE_CACHE`, else `$XDG_CACHE_HOME/codetune`, else `~/.cache/codetune` (created)."""
    root = os.environ.get("CODETUNE_CACHE")
    if root:
        path = Path(root)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        path = (Path(xdg) if xdg else Path.home() / ".cache") / "codetune"
    path.mkdir(parents=True, exist_ok=True)
    return path
