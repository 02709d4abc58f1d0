"""Dropout whose CPU mask is a uniform draw compared with p.

PyTorch's CPU dropout draws its mask with `bernoulli_`, which on a 2-core CPU costs more than the
draw of a uniform tensor and a comparison: about twice the time, forward and backward, at the sizes
of a training step, and it showed among the top operators of a Tatoeba step's profile
(benchmarks/README.md, "Profile", gives the side-by-side figures and the machine).
The masks follow the same distribution: each element is kept with probability 1 - p and scaled by
1 / (1 - p). On the GPU PyTorch's fused dropout kernel is used as it is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """`F.dropout(x, p, training)`, with the CPU mask drawn as `rand >= p` (in float32, whatever x's dtype)."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or not 0.0 <= p < 1.0:
        return F.dropout(x, p, True)  # the GPU's fused kernel; F.dropout also owns p == 1 and bad p
    keep = (torch.rand(x.shape, device=x.device) >= p).to(x.dtype).mul_(1.0 / (1.0 - p))
    return x * keep


class Dropout(nn.Dropout):
    """`nn.Dropout` through `dropout` (same arguments, no state, so checkpoints do not change)."""

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)
