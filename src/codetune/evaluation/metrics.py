"""Text-overlap metrics as pure functions. Syntax validity lives in codetune.evaluation.syntax."""

from __future__ import annotations


def corpus_bleu(hypotheses: list[str], references: list[str], tokenize: str = "13a") -> float:
    """Corpus BLEU (0-100) with sacrebleu: one reference per hypothesis, default smoothing (exp).

    Args:
        hypotheses: generated function bodies.
        references: reference bodies, aligned with `hypotheses`.
        tokenize: sacrebleu tokenizer; '13a' (the WMT default) splits punctuation from words.
    """
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError("hypotheses and references differ in length")
    if not hypotheses:
        return float("nan")
    return float(sacrebleu.corpus_bleu(hypotheses, [references], tokenize=tokenize).score)


def sentence_bleu(hypothesis: str, reference: str, tokenize: str = "13a") -> float:
    """Per-sample BLEU (0-100) with sacrebleu's default sentence smoothing ('exp')."""
    import sacrebleu

    return float(sacrebleu.sentence_bleu(hypothesis, [reference], tokenize=tokenize).score)


def rate(passed: int, total: int) -> float | None:
    """Percentage, or None when nothing was measured."""
    return 100.0 * passed / total if total else None
