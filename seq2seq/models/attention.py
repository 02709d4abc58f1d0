"""Attention over the encoder memory: a score function plus a pad-safe masked softmax."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn

from seq2seq.errors import InputError
from seq2seq.models.flops import Flops, dense_flops, pairs


def masked_softmax(scores: Tensor, key_mask: Tensor | None) -> Tensor:
    """Softmax over the last axis that gives masked keys exactly zero weight.

    Masked scores are set to the dtype's minimum (never -1e10, which overflows in fp16), and a
    row with no real key gets all-zero weights instead of NaN.

    Args:
        scores: (B, Tq, S) raw scores.
        key_mask: (B, S) bool, True at keys that may be attended; None attends to all.
    """
    if key_mask is None:
        return torch.softmax(scores, dim=-1)
    keep = key_mask.unsqueeze(1)  # (B, 1, S)
    weights = torch.softmax(scores.masked_fill(~keep, torch.finfo(scores.dtype).min), dim=-1)
    return weights * keep


class Attention(nn.Module, ABC):
    """Maps decoder queries to context vectors over the encoder memory.

    Args:
        query_size: decoder hidden size.
        key_size: encoder memory size.
    """

    key_proj: nn.Module  # the keys' projection, applied once per key (subclasses set it)

    def __init__(self, query_size: int, key_size: int) -> None:
        super().__init__()
        self.query_size, self.key_size = query_size, key_size

    @property
    def query_flops(self) -> int:
        """Matrix-multiply FLOPs per query outside the scores."""
        return 0

    @property
    def pair_flops(self) -> int:
        """Matrix-multiply FLOPs per (query, key) pair: the score, and the key's share of the context."""
        return 2 * (self.query_size + self.key_size)

    def flops(self, lengths_q: Tensor, steps_q: int, lengths_k: Tensor, steps_k: int) -> Flops:
        """FLOPs over (B, steps_q) padded queries and (B, steps_k) padded keys (seq2seq/models/flops.py)."""
        queries = Flops.at(self.query_flops, lengths_q.numel() * steps_q, lengths_q.sum())
        keys = Flops.at(dense_flops(self.key_proj), lengths_k.numel() * steps_k, lengths_k.sum())
        return queries + keys + Flops.at(self.pair_flops, *pairs(lengths_q, steps_q, lengths_k, steps_k))

    @abstractmethod
    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        """(B, Tq, Hq) queries, (B, S, Hk) keys -> (B, Tq, S) unnormalised scores."""

    def prepare(self, keys: Tensor) -> Tensor:
        """The keys' side of the score, for a loop of steps over the same keys to compute once."""
        return keys

    def score_prepared(self, query: Tensor, prepared: Tensor) -> Tensor:
        """`score` from `prepare(keys)`: the same scores, up to float rounding."""
        return self.score(query, prepared)

    def forward(
        self, query: Tensor, keys: Tensor, key_mask: Tensor | None, prepared: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Returns context (B, Tq, Hk) and attention weights (B, Tq, S); `prepared` is `prepare(keys)`
        when the caller computed it once for many steps."""
        scores = self.score(query, keys) if prepared is None else self.score_prepared(query, prepared)
        weights = masked_softmax(scores, key_mask)
        return torch.bmm(weights, keys), weights


class LuongAttention(Attention):
    """Multiplicative attention (Luong et al., 2015): `general` q^T W k, or `dot` q^T k.

    With `scaled`, the scores are divided by sqrt(key_size), as in the Transformer's scaled dot-product
    attention (Vaswani et al., 2017). Over a LayerNorm-ed memory (unit variance per feature, as the
    attention encoder gives it) an unscaled `dot` score spreads as widely as the query's norm, so the
    first attention can peak on arbitrary positions; with the scale, the attention encoder's early
    learning stopped depending on the seed (benchmarks/README.md, "The attention recipe across seeds").
    """

    def __init__(self, query_size: int, key_size: int, score: str = "general", scaled: bool = False) -> None:
        super().__init__(query_size, key_size)
        self.scale = key_size**-0.5 if scaled else None
        if score not in ("general", "dot"):
            raise InputError(f"LuongAttention score must be 'general' or 'dot', got {score!r}")
        if score == "dot" and query_size != key_size:
            raise InputError(
                f"dot attention (decoder/attention=dot) needs decoder.hidden_size ({query_size}) equal to the "
                f"encoder's memory size ({key_size}): set decoder.hidden_size={key_size}, or pick "
                f"decoder/attention=luong, which learns a projection between the two"
            )
        self.key_proj = nn.Linear(key_size, query_size, bias=False) if score == "general" else nn.Identity()

    def _scaled(self, query: Tensor) -> Tensor:
        # The query side is the smaller: (B, Tq, Hq) against the (B, S, Hk) keys.
        return query if self.scale is None else query * self.scale

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        query = self._scaled(query)
        if isinstance(self.key_proj, nn.Identity):
            return torch.bmm(query, keys.transpose(1, 2))
        # q^T (W k) computed as (q^T W) k: the query side is projected, so a decoding step costs
        # (B, Hq) x (Hq, Hk) instead of re-projecting every key, (B, S, Hk) x (Hk, Hq), at every step.
        return torch.bmm(torch.matmul(query, self.key_proj.weight), keys.transpose(1, 2))

    def prepare(self, keys: Tensor) -> Tensor:
        # (W k)^T for every key at once, (B, Hq, S) (for `dot`, the keys transposed): a step then costs
        # one batched product, and the weight's gradient is one product for the batch, not one per step.
        return self.key_proj(keys).transpose(1, 2)

    def score_prepared(self, query: Tensor, prepared: Tensor) -> Tensor:
        return torch.bmm(self._scaled(query), prepared)


class BahdanauAttention(Attention):
    """Additive attention (Bahdanau et al., 2015): v^T tanh(W_q q + W_k k)."""

    def __init__(self, query_size: int, key_size: int, attention_size: int | None = None) -> None:
        super().__init__(query_size, key_size)
        size = attention_size or query_size
        self.query_proj = nn.Linear(query_size, size, bias=False)
        self.key_proj = nn.Linear(key_size, size, bias=False)
        self.energy = nn.Linear(size, 1, bias=False)

    @property
    def query_flops(self) -> int:
        return dense_flops(self.query_proj)

    @property
    def pair_flops(self) -> int:
        return dense_flops(self.energy) + 2 * self.key_size

    def score(self, query: Tensor, keys: Tensor) -> Tensor:
        return self.score_prepared(query, self.prepare(keys))

    def prepare(self, keys: Tensor) -> Tensor:
        return self.key_proj(keys)  # (B, S, A): once per batch in the decoder's step loop

    def score_prepared(self, query: Tensor, prepared: Tensor) -> Tensor:
        hidden = torch.tanh(self.query_proj(query).unsqueeze(2) + prepared.unsqueeze(1))  # (B, Tq, S, A)
        return self.energy(hidden).squeeze(-1)
