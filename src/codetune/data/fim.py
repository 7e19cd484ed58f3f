"""Which training examples become fill-in-the-middle, and where each is cut (`data.fim_*`).

Each example decides on its own, from a generator seeded by the run's seed and the example's id, so a
run repeats, a resumed run replays the same examples, and the decision does not depend on which other
examples are in the set. The draws are made in a fixed order (FIM or not, then the layout, then the
cut points), whatever the rate: at a higher rate the FIM examples are a superset of those at a lower one,
cut at the same points, in
every mode.

The cut points are two uniform random positions in the example's target (its body), so the prefix always
holds the whole prompt:

    prefix = prompt + body[:i]    middle = body[i:j]    suffix = body[j:]
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from codetune.data.records import CodeSample


@dataclass(frozen=True)
class FimSplit:
    """One training example as FIM: the three pieces and the layout (`fim.fim_ids` mode)."""

    prefix: str
    middle: str
    suffix: str
    mode: str  # "psm" | "spm"


def cut_points(body: str, split: str) -> list[int]:
    """The positions a body may be cut at: every character offset ('char'), or every line start plus the
    end ('line')."""
    if split == "char":
        return list(range(len(body) + 1))
    if split == "line":
        starts = [0] + [k + 1 for k, ch in enumerate(body) if ch == "\n"]
        return sorted(set(starts) | {len(body)})
    raise ValueError(f"unknown FIM split {split!r}; choose char or line")


def fim_split(sample: CodeSample, *, seed: int, rate: float, mode: str, split: str) -> FimSplit | None:
    """`sample` as a FIM example, or None when it stays left-to-right (probability 1 - rate).

    mode: "psm", "spm" or "both" (each FIM example one of the two with probability 1/2).
    split: "char" (cut at two random character offsets) or "line" (at two random line boundaries).
    """
    # A str seed is hashed with SHA-512 by `random`: the same generator in every process.
    if mode not in ("psm", "spm", "both"):
        raise ValueError(f"unknown FIM mode {mode!r}; choose psm, spm or both")
    rng = random.Random(f"fim:{seed}:{sample.id}")
    if not rng.random() < rate:
        return None
    coin = rng.random()  # drawn in every mode, so the cut points below do not depend on it
    layout = ("psm" if coin < 0.5 else "spm") if mode == "both" else mode
    points = cut_points(sample.target, split)
    i, j = sorted((rng.choice(points), rng.choice(points)))
    body = sample.target
    return FimSplit(prefix=sample.prompt + body[:i], middle=body[i:j], suffix=body[j:], mode=layout)
