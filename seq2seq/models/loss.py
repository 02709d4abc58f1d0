"""Token-level losses normalised by the number of counted target tokens."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def token_nll(logits: Tensor, targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """(B, T, V) logits, (B, T) targets -> (B, T) per-token cross-entropy."""
    flat = F.cross_entropy(
        logits.flatten(0, 1).float(), targets.flatten(), reduction="none", label_smoothing=label_smoothing
    )
    return flat.view_as(targets)


def masked_cross_entropy(
    logits: Tensor, targets: Tensor, mask: Tensor, label_smoothing: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Summed cross-entropy over the positions `mask` counts, and how many those are.

    The caller divides the sum by the token count of the whole effective batch, so that long and
    short batches weigh each token equally.

    Args:
        logits: (B, T, V).
        targets: (B, T) target ids.
        mask: (B, T) bool, positions that count.
        label_smoothing: share of probability mass spread over the vocabulary.

    Returns:
        (loss sum, token count), both 0-dim tensors.
    """
    losses = token_nll(logits, targets, label_smoothing) * mask
    return losses.sum(), mask.sum()


def sentence_nll(logits: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """(B,) summed negative log-likelihood of each target sentence over its real tokens."""
    return (token_nll(logits, targets) * mask).sum(dim=1)
