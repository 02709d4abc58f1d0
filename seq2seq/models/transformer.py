"""A pre-norm Transformer layer with rotary positions and normalised queries and keys.

Why these parts rather than `nn.TransformerEncoderLayer` with added sinusoidal positions: an RNN
decoder attends to the source by content, so what helps it is memory that says what surrounds each
word (relative positions), not where the word sits; rotary positions put that into every attention
score, and normalised queries and keys keep the first scores from peaking on arbitrary positions.
What each part bought, and what was tried and not kept, is measured in benchmarks/README.md ("How the
attention encoder came to learn").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seq2seq.errors import InputError
from seq2seq.ops.dropout import Dropout


def rotary_angles(length: int, head_size: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """(length, head_size / 2) cosines and sines of the rotary angles (Su et al., 2021, RoFormer).

    Position p turns the i-th pair of a head's features by p * 10000^(-2i / head_size), so the dot
    product of a query at p and a key at p' depends on their offset p - p' only.
    """
    half = head_size // 2
    frequency = torch.exp(
        torch.arange(half, device=device, dtype=torch.float32) * (-math.log(10000.0) / half)
    )
    angle = torch.arange(length, device=device, dtype=torch.float32)[:, None] * frequency[None, :]
    return angle.cos(), angle.sin()


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x (..., S, Dh) -> x with each (i, i + Dh/2) feature pair turned by its position's angle."""
    first, second = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([first * cos - second * sin, second * cos + first * sin], dim=-1)


class RotaryTransformerLayer(nn.Module):
    """x + attention(norm(x)), then x + feed-forward(norm(x)): a pre-norm layer.

    Queries and keys are layer-normalised per head before the rotation (QK-norm, Dehghani et al.,
    2023): attention logits cannot grow without bound, which kept training going at a rate where the
    plain layer collapsed (benchmarks/README.md, "How the attention encoder came to learn").

    Args:
        size: model width (d_model).
        num_heads: attention heads; size / num_heads must be even (rotation works on pairs).
        feedforward_size: hidden size of the feed-forward block.
        dropout: on attention weights, after each block and inside the feed-forward block.
    """

    def __init__(self, size: int, num_heads: int, feedforward_size: int, dropout: float) -> None:
        super().__init__()
        if size % num_heads or (size // num_heads) % 2:
            raise InputError(
                f"encoder.hidden_size ({size}) must split into encoder.num_heads ({num_heads}) heads of an even "
                f"size (rotary positions turn pairs of features); e.g. hidden_size=256 with num_heads=4 or 8"
            )
        self.num_heads, self.head_size = num_heads, size // num_heads
        self.attention_norm, self.feedforward_norm = nn.LayerNorm(size), nn.LayerNorm(size)
        self.query_norm, self.key_norm = nn.LayerNorm(self.head_size), nn.LayerNorm(self.head_size)
        self.qkv = nn.Linear(size, 3 * size)
        self.out = nn.Linear(size, size)
        self.feedforward = nn.Sequential(
            nn.Linear(size, feedforward_size),
            nn.ReLU(),
            Dropout(dropout),
            nn.Linear(feedforward_size, size),
        )
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor, keep: Tensor | None, angles: tuple[Tensor, Tensor]) -> Tensor:
        """x (B, S, D), keep (B, S) True at keys that may be attended (None: all) -> (B, S, D)."""
        batch, length, size = x.shape
        qkv = self.qkv(self.attention_norm(x)).view(batch, length, 3, self.num_heads, self.head_size)
        query, key, value = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, S, Dh)
        query = rotate(self.query_norm(query), *angles)
        key = rotate(self.key_norm(key), *angles)
        mask = None if keep is None else keep[:, None, None, :]  # (B, 1, 1, S)
        dropout = self.dropout.p if self.training else 0.0
        attended = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout)
        x = x + self.dropout(self.out(attended.transpose(1, 2).reshape(batch, length, size)))
        return x + self.dropout(self.feedforward(self.feedforward_norm(x)))
