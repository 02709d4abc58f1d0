"""The typed batch every model and strategy consumes, and the collate function that builds it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from seq2seq.data.vocab import BOS_ID, EOS_ID, PAD_ID


@dataclass
class Batch:
    """A right-padded batch of sentence pairs.

    Attributes:
        src: (B, S) source ids ending in eos, padded with pad_id.
        src_lengths: (B,) int64 true source lengths (eos included).
        src_mask: (B, S) bool, True at real source tokens.
        tgt_in: (B, T) decoder input: bos + target ids, padded.
        tgt_out: (B, T) decoder output: target ids + eos, padded.
        tgt_lengths: (B,) int64 true target lengths (eos included).
        indices: (B,) int64 position of each pair in its dataset, to restore order after bucketing.
    """

    src: Tensor
    src_lengths: Tensor
    src_mask: Tensor
    tgt_in: Tensor
    tgt_out: Tensor
    tgt_lengths: Tensor
    indices: Tensor

    def to(self, device: torch.device | str) -> Batch:
        """The same batch with every tensor on `device`."""
        return Batch(**{name: value.to(device) for name, value in vars(self).items()})

    @property
    def tgt_mask(self) -> Tensor:
        """(B, T) bool, True at real target positions."""
        return self.tgt_out != PAD_ID

    def __len__(self) -> int:
        return self.src.size(0)

    @property
    def num_tgt_tokens(self) -> int:
        """Real target tokens: what throughput and the loss are normalised by."""
        return int(self.tgt_lengths.sum())

    @property
    def num_slots(self) -> int:
        """Padded size: source and target positions together, pads included."""
        return self.src.numel() + self.tgt_out.numel()

    @property
    def num_real_tokens(self) -> int:
        """Real source and target tokens together."""
        return int(self.src_lengths.sum()) + self.num_tgt_tokens

    @property
    def pad_fraction(self) -> float:
        """Pad tokens / all tokens, source and target together."""
        return 1.0 - self.num_real_tokens / self.num_slots if self.num_slots else 0.0


def padded(rows: list[list[int]]) -> Tensor:
    """(B, max length) int64 tensor of `rows`, right-padded with PAD_ID, built in one call."""
    width = max(map(len, rows), default=0)
    return torch.tensor([row + [PAD_ID] * (width - len(row)) for row in rows], dtype=torch.long)


def collate(pairs: list[tuple[int, list[int], list[int]]]) -> Batch:
    """Pads `(index, src_ids, tgt_ids)` triples into a `Batch`; adds eos to sources and bos/eos to targets.

    Rows are padded as Python lists and converted once: one tensor per sentence and `pad_sequence`
    cost three times as much (benchmarks/README.md, profile of the training step).
    """
    indices = torch.tensor([index for index, _, _ in pairs], dtype=torch.long)
    src = padded([s + [EOS_ID] for _, s, _ in pairs])
    return Batch(
        src=src,
        src_lengths=torch.tensor([len(s) + 1 for _, s, _ in pairs], dtype=torch.long),
        src_mask=src != PAD_ID,
        tgt_in=padded([[BOS_ID] + t for _, _, t in pairs]),
        tgt_out=padded([t + [EOS_ID] for _, _, t in pairs]),
        tgt_lengths=torch.tensor([len(t) + 1 for _, _, t in pairs], dtype=torch.long),
        indices=indices,
    )
