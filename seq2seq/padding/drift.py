"""Drift: how far an encoder's outputs for a sentence move when it is encoded inside a padded batch.

The measure behind the exactness claims: each sentence is encoded alone (no pads) and in its batch,
and the largest difference is taken over its real positions and over its final state. An exact
strategy keeps both at float rounding; the tests bound them and `benchmarks/drift.py` tabulates them.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from seq2seq.padding.strategy import lengths_mask


class Drift(NamedTuple):
    """Largest |in the batch - alone| over the outputs at real positions, and over the final states."""

    memory: float
    final: float


@torch.no_grad()
def batch_drift(encoder: nn.Module, x: Tensor, lengths: Tensor) -> Drift:
    """The drift of `encoder` (called as `encoder(x, lengths, mask)`) over the padded batch `x` of `lengths`."""
    together = encoder(x, lengths, lengths_mask(lengths, x.size(1)))
    memory = final = 0.0
    for i, n in enumerate(lengths.tolist()):
        alone = encoder(x[i : i + 1, :n], lengths[i : i + 1], torch.ones(1, n, dtype=torch.bool))
        memory = max(memory, (together.memory[i, :n] - alone.memory[0]).abs().max().item())
        final = max(final, (together.final[i] - alone.final[0]).abs().max().item())
    return Drift(memory, final)
