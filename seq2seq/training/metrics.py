"""Corpus-level translation metrics."""

from __future__ import annotations

import sacrebleu


def corpus_bleu(hypotheses: list[str], references: list[str]) -> float:
    """sacreBLEU corpus BLEU (default 13a tokenisation) of detokenized text."""
    return sacrebleu.corpus_bleu(hypotheses, [references]).score


def exact_match(hypotheses: list[str], references: list[str]) -> float:
    """Share of hypotheses identical to their reference (surrounding spaces ignored), in percent."""
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses for {len(references)} references: one each, line for line"
        )
    if not references:
        return 0.0
    return (
        100.0
        * sum(h.strip() == r.strip() for h, r in zip(hypotheses, references, strict=True))
        / len(references)
    )
