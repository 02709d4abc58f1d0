"""Token-level losses normalised by the number of counted target tokens.

The losses take logits either at every target position, (B, T, V), or only at the positions their
mask counts, (N, V) in row-major order: what `Seq2Seq.forward(batch, positions=mask)` computes, so that
the output layer, the largest on a real vocabulary, spends nothing on pads.

The label-smoothed cross-entropy is one autograd function of our own (`SmoothedCrossEntropy`):
`F.cross_entropy` builds it from log-softmax, a gather and a mean, whose backward passes fill,
add and read (N, V) tensors several times over, and on a real vocabulary those passes show in a
training step's profile (benchmarks/README.md). Ours keeps the softmax's numerator exp(x - max),
which the forward pass computes for the log-sum-exp anyway, in place of the logits (the same
memory), so that the backward pass makes the gradient in one pass over it and a scatter.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable


class SmoothedCrossEntropy(torch.autograd.Function):
    """Per-row cross-entropy against a label-smoothed target, as `F.cross_entropy(..., label_smoothing)`.

    loss_n = logsumexp(x_n) - (1 - eps) x_n[t_n] - eps * mean(x_n): the target keeps 1 - eps of the
    probability and eps is spread evenly over the vocabulary (the target included), as in PyTorch.
    Its gradient is softmax(x_n) - (1 - eps) onehot(t_n) - eps / V.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, logits: Tensor, targets: Tensor, eps: float) -> Tensor:
        x = at_least_fp32(logits)
        top = x.amax(dim=1, keepdim=True)  # (N, 1)
        shifted = (x - top).exp_()  # (N, V) exp(x - max): the softmax's numerator, kept for the backward
        total = shifted.sum(dim=1, keepdim=True)  # (N, 1)
        lse = (top + total.log()).squeeze(1)
        losses = lse - (1.0 - eps) * x.gather(1, targets.unsqueeze(1)).squeeze(1)
        if eps:
            losses = losses - eps * x.mean(dim=1)
        ctx.save_for_backward(shifted.to(logits.dtype), total, targets)
        ctx.eps = eps
        return losses

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor, None, None]:
        shifted, total, targets = ctx.saved_tensors
        eps, scale = ctx.eps, grad.unsqueeze(1)  # (N, 1)
        # grad * softmax - grad * eps / V in one pass over the saved numerator: one new (N, V) tensor.
        smoothing = scale * (-eps / shifted.size(1))
        result = torch.addcmul(smoothing, at_least_fp32(shifted), scale / total)
        result.scatter_add_(1, targets.unsqueeze(1), scale * -(1.0 - eps))
        return result.to(shifted.dtype), None, None


def at_least_fp32(x: Tensor) -> Tensor:
    """fp16 and bf16 logits in fp32, where their softmax is computed; fp32 and fp64 as they are."""
    return x.float() if x.element_size() < 4 else x


def token_nll(logits: Tensor, targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """(..., V) logits, (...) targets -> (...) per-token cross-entropy, computed in fp32 at least."""
    flat = SmoothedCrossEntropy.apply(
        logits.reshape(-1, logits.size(-1)), targets.reshape(-1), float(label_smoothing)
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
