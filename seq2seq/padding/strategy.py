"""Padding strategies: one small object decides how pads are treated in the encoder, attention and loss.

Encoders, decoders and the loss call the strategy and never ask which one it is. Each class says in
its docstring whether a sentence gets the same result alone as inside any right-padded batch;
tests/unit/padding/test_strategies.py holds each claim (and each documented exception) to account.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor, nn

from seq2seq.ops.precision import rnn_input
from seq2seq.padding.fused import (
    packed_positions,
    run_exact_rnn,
    run_exact_shifted,
    run_packed_rnn,
    run_starts,
)
from seq2seq.padding.recurrence import run_reset_rnn


def last_layer_final(h_n: Tensor, rnn: nn.RNNBase) -> Tensor:
    """(L*D, B, H) final hidden states -> (B, D*H) of the last layer, directions concatenated."""
    directions = 2 if rnn.bidirectional else 1
    last = h_n.view(rnn.num_layers, directions, h_n.size(1), h_n.size(2))[-1]  # (D, B, H)
    return last.transpose(0, 1).reshape(h_n.size(1), -1)


def hidden_of(state: Tensor | tuple[Tensor, Tensor]) -> Tensor:
    """h_n of a GRU/RNN state or of an LSTM's (h_n, c_n)."""
    return state[0] if isinstance(state, tuple) else state


def lengths_mask(lengths: Tensor, max_len: int) -> Tensor:
    """(B,) lengths -> (B, max_len) bool, True at real positions (right padding)."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths.to(torch.long)[:, None]


class PaddingStrategy(ABC):
    """How pads are handled. Subclasses implement `run_rnn`; masking hooks default to "mask pads"."""

    exact: ClassVar[bool] = False
    """Whether a sentence gets the same encoder states, scores and translation alone or inside any
    padded batch, for every encoder (the claim the tests hold each exact strategy to)."""

    @abstractmethod
    def run_rnn(self, rnn: nn.RNNBase, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Runs a batch-first RNN over right-padded input.

        Args:
            rnn: the encoder's `nn.LSTM`/`nn.GRU`/`nn.RNN` (batch_first=True).
            x: (B, T, E) embedded input.
            lengths: (B,) true lengths.

        Returns:
            outputs: (B, T, D*H) last-layer outputs.
            final: (B, D*H) the sentence summary handed to the decoder: last-layer final hidden state,
                both directions concatenated.
        """

    def rnn_positions(self, lengths: Tensor, steps: int) -> int:
        """How many (row, step) positions `run_rnn` runs each layer and direction at, pads included
        (for the FLOP estimate, seq2seq/models/flops.py): by default the whole padded (B, steps) batch."""
        return lengths.numel() * steps

    def key_padding_mask(self, mask: Tensor) -> Tensor | None:
        """(B, S) True-at-real mask -> the mask attention applies to keys (None: attend to everything)."""
        return mask

    def loss_mask(self, tgt_mask: Tensor) -> Tensor:
        """(B, T) True-at-real mask -> the positions the training loss counts."""
        return tgt_mask

    def pool(self, memory: Tensor, mask: Tensor) -> Tensor:
        """(B, S, D) memory -> (B, D) mean over the positions the strategy lets count."""
        weights = mask.unsqueeze(-1).to(memory.dtype)
        return (memory * weights).sum(1) / weights.sum(1).clamp_min(1.0)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class NaiveStrategy(PaddingStrategy):
    """The textbook mistake, kept as the baseline: pads are tokens like any other.

    The RNN runs over the pads and its final state is read after the last padded step, attention
    attends to pads, and the loss trains the model to predict pads.
    """

    def run_rnn(self, rnn: nn.RNNBase, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        outputs, state = rnn(rnn_input(x))
        return outputs, last_layer_final(hidden_of(state), rnn)

    def key_padding_mask(self, mask: Tensor) -> Tensor | None:
        return None

    def loss_mask(self, tgt_mask: Tensor) -> Tensor:
        return torch.ones_like(tgt_mask)

    def pool(self, memory: Tensor, mask: Tensor) -> Tensor:
        return memory.mean(1)


class MaskingStrategy(PaddingStrategy):
    """The RNN runs over the padded tensor on the fused kernels; everything downstream ignores the pads.

    The forward direction reads each sentence, then its pads, which no real position reads. The
    backward direction of a bidirectional RNN reads each sentence reversed within its own length, so
    its pads come last too (`fused.py`). Exact for every encoder, layer count and direction, at the
    cost of running the RNN over the pads. `MaskingOutputsStrategy` keeps the inexact form as a baseline.
    """

    exact = True

    def run_rnn(self, rnn: nn.RNNBase, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        return run_exact_rnn(rnn, x, lengths)


class MaskingOutputsStrategy(PaddingStrategy):
    """Baseline: masks the padded RNN's outputs and final state, but the backward direction reads pads.

    What `masking` did before it became exact, kept so that the harm it does stays reproducible
    (benchmarks/padding_lab.py). The forward direction's final state is gathered at each sentence's
    true last step, so a unidirectional RNN is exact. A bidirectional RNN's backward direction starts
    at the last padded position and reads the pads before the sentence: its states differ from those
    of the sentence alone at every position (asserted by the tests).
    """

    def run_rnn(self, rnn: nn.RNNBase, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        outputs, _ = rnn(rnn_input(x))  # (B, T, D*H)
        hidden = rnn.hidden_size
        last = (lengths.to(x.device) - 1).clamp_min(0)
        forward_final = outputs[torch.arange(x.size(0), device=x.device), last, :hidden]
        finals = [forward_final] + ([outputs[:, 0, hidden:]] if rnn.bidirectional else [])
        mask = lengths_mask(lengths.to(x.device), x.size(1))
        return outputs * mask.unsqueeze(-1), torch.cat(finals, dim=-1)


class PackingStrategy(PaddingStrategy):
    """The RNN skips the pads' steps in both directions wherever that pays: the batch runs in time
    pieces cut where sentences end, each on the fused kernels, and neighbouring pieces merge where a
    cut would save less than a kernel call costs (`fused.run_packed_rnn`). Exact, the same states as
    `masking`; on a length-bucketed batch about as fast, on a batch of mixed lengths faster."""

    exact = True

    def rnn_positions(self, lengths: Tensor, steps: int) -> int:
        return packed_positions(lengths)

    def run_rnn(self, rnn: nn.RNNBase, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        return run_packed_rnn(rnn, x, lengths)


class StateResetStrategy(PaddingStrategy):
    """The recurrent state moves only at real tokens and is carried unchanged through pads.

    Every sequence starts from the initial state in both directions, so the result is exact for
    right and left padding alike. Uses the RNN module's own weights, so models trained with any
    strategy can be run with this one. Which path runs:

    - right padding (`run_rnn`), and any mask whose real tokens form one run per row (left padding,
      pads on both sides; `run_masked`): the fused kernels of `fused.py`, each row shifted to start
      at position 0 — the same states, since a state carried through pads after the sentence is
      never read and pads before it leave the initial state unchanged;
    - a mask with holes inside a row: the Python step loop of `recurrence.py`.
    """

    exact = True

    def run_rnn(self, rnn: nn.RNNBase, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        return run_exact_rnn(rnn, x, lengths)

    @staticmethod
    def run_masked(rnn: nn.RNNBase, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Like `run_rnn`, for any (B, T) mask of real positions: left padding and holes included."""
        starts = run_starts(mask)
        if starts is None:
            return run_reset_rnn(rnn, x, mask)
        return run_exact_shifted(rnn, x, mask, starts)
