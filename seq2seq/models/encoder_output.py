"""What every encoder hands the decoder."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class EncoderOutput:
    """Encoder results for a batch.

    Attributes:
        memory: (B, S, D) per-position states that attention reads.
        final: (B, D) one summary vector per sentence, used to initialise the decoder.
        key_mask: (B, S) bool mask for attention over `memory` (True = attend), or None to attend to
            every position, as the padding strategy decides.
    """

    memory: Tensor
    final: Tensor
    key_mask: Tensor | None

    def repeat(self, times: int) -> EncoderOutput:
        """Each sentence `times` times in a row, (B, ...) -> (B*times, ...): one copy per beam."""
        mask = None if self.key_mask is None else self.key_mask.repeat_interleave(times, dim=0)
        return EncoderOutput(
            self.memory.repeat_interleave(times, dim=0), self.final.repeat_interleave(times, dim=0), mask
        )

    def select(self, index: Tensor) -> EncoderOutput:
        """Keeps the batch rows in `index` (B',) in that order: how search drops sentences that are done."""
        mask = None if self.key_mask is None else self.key_mask.index_select(0, index)
        return EncoderOutput(self.memory.index_select(0, index), self.final.index_select(0, index), mask)
