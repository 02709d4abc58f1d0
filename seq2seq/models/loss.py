"""Token-level losses normalised by the number of counted target tokens.

The losses take logits either at every target position, (B, T, V), or only at the positions their
mask counts, (N, V) in row-major order: what `Seq2Seq.forward(batch, positions=mask)` computes, so that
the output layer, the largest on a real vocabulary, spends nothing on pads.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def token_nll(logits: Tensor, targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """(..., V) logits, (...) targets -> (...) per-token cross-entropy, computed in fp32."""
    flat = F.cross_entropy(
        logits.reshape(-1, logits.size(-1)).float(),
        targets.reshape(-1),
        reduction="none",
        label_smoothing=label_smoothing,
    )
    return flat.view_as(targets)


def counted_logits(logits: Tensor, mask: Tensor) -> Tensor:
    """(B, T, V) or already gathered (N, V) logits -> (N, V) at the N True positions of `mask`."""
    return logits[mask] if logits.dim() == 3 else logits


def masked_cross_entropy(
    logits: Tensor, targets: Tensor, mask: Tensor, label_smoothing: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Summed cross-entropy over the positions `mask` counts, and how many those are.

    The caller divides the sum by the token count of the whole effective batch, so that long and
    short batches weigh each token equally.

    Args:
        logits: (B, T, V), or (N, V) at the N positions `mask` counts.
        targets: (B, T) target ids.
        mask: (B, T) bool, positions that count.
        label_smoothing: share of probability mass spread over the vocabulary.

    Returns:
        (loss sum, token count), both 0-dim tensors.
    """
    losses = token_nll(counted_logits(logits, mask), targets[mask], label_smoothing)  # (N,)
    return losses.sum(), mask.sum()


def sentence_nll(logits: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """(B,) summed negative log-likelihood of each target sentence over its real tokens, in float64.

    `logits` as in `masked_cross_entropy`; `mask` marks the real target tokens. The sum runs in
    float64: a long sentence's score reaches hundreds of nats, where float32's own rounding of the sum
    (about 6e-5 per step at 600) would differ with the batch shape by more than the model's does.
    """
    losses = token_nll(counted_logits(logits, mask), targets[mask]).double()  # (N,)
    return losses.new_zeros(mask.shape).masked_scatter(mask, losses).sum(dim=1)
