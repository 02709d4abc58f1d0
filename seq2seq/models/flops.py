"""How many matrix-multiply FLOPs a teacher-forced step spends, and how many of them at pad positions.

Estimated from the shapes each layer runs, not measured: a layer's dense products cost twice its
weight matrices' size per position it runs at, attention twice its width per (query, key) pair for
the scores and again for the context. Counts are of the forward pass; the backward pass runs the same
products on the same positions about twice over, so the pad share is the same. Each module reports its
own share (`flops` methods), so a new encoder or attention says what it runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn


@dataclass(frozen=True)
class Flops:
    """Matrix-multiply FLOPs computed, and the part of them at pad positions."""

    total: float = 0.0
    pad: float = 0.0

    def __add__(self, other: Flops) -> Flops:
        return Flops(self.total + other.total, self.pad + other.pad)

    @property
    def pad_fraction(self) -> float:
        return self.pad / self.total if self.total else 0.0

    @classmethod
    def at(cls, each: float, computed: Tensor | float, real: Tensor | float) -> Flops:
        """`each` FLOPs at every one of `computed` positions (or pairs), of which `real` are not pads."""
        computed, real = float(computed), float(real)
        return cls(each * computed, each * (computed - real))


def dense_flops(*modules: nn.Module) -> int:
    """FLOPs per position of the modules' weight matrices (embedding tables are looked up, not multiplied)."""
    return 2 * sum(
        parameter.numel()
        for module in modules
        for sub in module.modules()
        if not isinstance(sub, nn.Embedding)
        for parameter in sub.parameters(recurse=False)
        if parameter.dim() == 2
    )


def pairs(lengths_q: Tensor, steps_q: int, lengths_k: Tensor, steps_k: int) -> tuple[int, int]:
    """(query, key) pairs attention computes over padded (B, Tq) x (B, S), and the real ones."""
    return lengths_q.numel() * steps_q * steps_k, int((lengths_q * lengths_k).sum())
