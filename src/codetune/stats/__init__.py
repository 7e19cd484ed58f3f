"""Statistics of evaluation results, with the test item as the unit of resampling.

A leaf: it imports nothing from codetune but `codetune.errors`, so evaluation (run-time intervals) and
reporting (comparisons) share one implementation.

- `bootstrap`: percentile bootstrap of per-item values or of any corpus metric; spread over seeds.
- `corpus`: the same bootstrap from additive per-item statistics (BLEU, CodeBLEU, pass rates), fast.
- `paired`: paired bootstrap, sign-flip permutation test, exact McNemar.
- `power`: items needed for a difference, minimum detectable effect.
"""
