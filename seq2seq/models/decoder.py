"""A recurrent decoder with attention over the encoder memory (Luong-style, optional input feeding)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seq2seq.errors import InputError
from seq2seq.models.attention import Attention
from seq2seq.models.encoder_output import EncoderOutput
from seq2seq.models.flops import Flops, dense_flops
from seq2seq.models.state_init import StateInit
from seq2seq.ops.cells import CELLS
from seq2seq.ops.dropout import Dropout, dropout
from seq2seq.ops.precision import rnn_input

RNNState = Tensor | tuple[Tensor, Tensor]


@dataclass
class DecoderState:
    """What the decoder carries from one step to the next.

    Attributes:
        h: (B, H) hidden state of each RNN layer, bottom first.
        c: (B, H) memory cell of each layer for an LSTM, else None.
        feed: (B, H) previous attentional output for input feeding, or None.
    """

    h: tuple[Tensor, ...]
    c: tuple[Tensor, ...] | None
    feed: Tensor | None

    @classmethod
    def from_rnn(cls, rnn: RNNState, feed: Tensor | None) -> DecoderState:
        """From an `nn.LSTM`/`nn.GRU` state: (L, B, H), or an (h, c) pair of them."""
        h, c = rnn if isinstance(rnn, tuple) else (rnn, None)
        return cls(h.unbind(0), None if c is None else c.unbind(0), feed)

    @property
    def rnn(self) -> RNNState:
        """The state as an `nn.LSTM`/`nn.GRU` call takes it."""
        h = torch.stack(self.h)
        return h if self.c is None else (h, torch.stack(self.c))

    @classmethod
    def cat(cls, states: list[DecoderState]) -> DecoderState:
        """The rows of `states` one after another, in one batch."""

        def rows(tensors: list[tuple[Tensor, ...] | None]) -> tuple[Tensor, ...] | None:
            return (
                None
                if tensors[0] is None
                else tuple(torch.cat(layer) for layer in zip(*tensors, strict=True))
            )

        feeds = [state.feed for state in states]
        return cls(
            rows([state.h for state in states]),
            rows([state.c for state in states]),
            None if feeds[0] is None else torch.cat(feeds),
        )

    def select(self, index: Tensor) -> DecoderState:
        """Keeps the batch rows in `index` (B',) in that order: how beams follow their parents."""

        def rows(tensors: tuple[Tensor, ...] | None) -> tuple[Tensor, ...] | None:
            return None if tensors is None else tuple(t.index_select(0, index) for t in tensors)

        return DecoderState(
            rows(self.h), rows(self.c), None if self.feed is None else self.feed.index_select(0, index)
        )


@dataclass
class StepWeights:
    """The weights a decoder step multiplies with, as views taken once per loop over the steps.

    A view taken inside the loop (a slice, a transpose) would give every step its own, and the
    backward pass a zero-filled weight-sized gradient per step to scatter each one's into.

    Attributes:
        feed: (H, G) the fed-back output's share of the first layer's input weight, transposed, or None.
        ih: per layer, its (In, G) input weight transposed and bias (None for the first layer, whose
            input projection `_embedding_gates` computes for all steps before the loop).
        hh: per layer, its (H, G) recurrent weight transposed and bias.
    """

    feed: Tensor | None
    ih: list[tuple[Tensor, Tensor | None] | None]
    hh: list[tuple[Tensor, Tensor | None]]


class RecurrentDecoder(nn.Module):
    """RNN decoder: h_t = RNN([y_{t-1}; feed], h_{t-1}), c_t = attend(h_t), out_t = tanh(W [h_t; c_t]).

    Without input feeding the whole target is run through the RNN in one call during training,
    which is much faster than a step loop; with it, the previous output feeds the next step.

    Args:
        rnn: builds the RNN from (input_size, hidden_size, batch_first): an `nn.LSTM`/`nn.GRU` partial.
        input_size: target embedding size.
        hidden_size: decoder hidden size (also the size of its outputs).
        memory_size: encoder memory size.
        init: builds the initial-state module from (encoder_size, hidden_size, num_layers, num_states).
        attention: builds the attention from (query_size, key_size); None decodes from the initial state alone.
        input_feeding: feed the previous attentional output into the next step (Luong et al., 2015).
        dropout: dropout on the embedded input and on the outputs.
    """

    def __init__(
        self,
        rnn: Callable[..., nn.RNNBase],
        input_size: int,
        hidden_size: int,
        memory_size: int,
        init: Callable[..., StateInit],
        attention: Callable[..., Attention] | None = None,
        input_feeding: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.input_feeding = input_feeding
        self.rnn = rnn(
            input_size=input_size + (hidden_size if input_feeding else 0),
            hidden_size=hidden_size,
            batch_first=True,
        )
        if self.rnn.bidirectional:
            raise InputError(
                "a decoder RNN cannot be bidirectional: set bidirectional=false in the decoder config"
            )
        self.init = init(memory_size, hidden_size, self.rnn.num_layers, 2 if self.rnn.mode == "LSTM" else 1)
        self.attention = (
            attention(query_size=hidden_size, key_size=memory_size) if attention is not None else None
        )
        self.combine = nn.Linear(
            hidden_size + (memory_size if self.attention is not None else 0), hidden_size
        )
        self.dropout = Dropout(dropout)
        self.output_size = hidden_size

    def flops(self, lengths: Tensor, steps: int, src_lengths: Tensor, src_steps: int) -> Flops:
        """Teacher-forced FLOPs over (B, steps) padded targets attending to (B, src_steps) padded sources."""
        found = Flops.at(dense_flops(self.rnn, self.combine), lengths.numel() * steps, lengths.sum())
        if self.attention is None:
            return found
        return found + self.attention.flops(lengths, steps, src_lengths, src_steps)

    def initial_state(self, encoded: EncoderOutput) -> DecoderState:
        batch = encoded.final.size(0)
        feed = encoded.final.new_zeros(batch, self.output_size) if self.input_feeding else None
        return DecoderState.from_rnn(self.init(encoded.final), feed)

    def forward(self, embedded: Tensor, encoded: EncoderOutput) -> Tensor:
        """Teacher-forced decoding: embedded (B, T, E) targets -> (B, T, H) outputs."""
        state = self.initial_state(encoded)
        if not self.input_feeding:
            hidden, _ = self.rnn(rnn_input(self.dropout(embedded)), state.rnn)  # (B, T, H)
            return self._attend(hidden, encoded)[0]
        # Input feeding: what does not depend on the previous step is computed once for all steps (the
        # embedding's share of the first layer's input projection, the keys' side of the attention
        # scores, the weights' views); only the rest runs step by step.
        weights = self._step_weights()
        prepared = None if self.attention is None else self.attention.prepare(encoded.memory)
        outputs = []
        # unbind: no per-step zero-filled grads
        for gates_t in self._embedding_gates(self.dropout(embedded)).unbind(1):
            out, state, _ = self._step_from_gates(gates_t, state, encoded, weights, prepared)
            outputs.append(out)
        return torch.stack(outputs, dim=1)

    def _attend(
        self, hidden: Tensor, encoded: EncoderOutput, prepared: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """(B, T, H) RNN outputs -> (B, T, H) attentional outputs and (B, T, S) weights."""
        if self.attention is None:
            return self.dropout(torch.tanh(self.combine(hidden))), None
        context, weights = self.attention(hidden, encoded.memory, encoded.key_mask, prepared)
        return self.dropout(torch.tanh(self.combine(torch.cat([hidden, context], dim=-1)))), weights

    def _embedding_gates(self, x: Tensor) -> Tensor:
        """(..., E) embedded targets -> their part of the first RNN layer's input projection, bias included."""
        return F.linear(
            x, self.rnn.weight_ih_l0[:, : x.size(-1)], self.rnn.bias_ih_l0 if self.rnn.bias else None
        )

    def _step_weights(self) -> StepWeights:
        rnn = self.rnn

        def weight(kind: str, layer: int) -> tuple[Tensor, Tensor | None]:
            return getattr(rnn, f"weight_{kind}_l{layer}").t(), getattr(rnn, f"bias_{kind}_l{layer}", None)

        w_ih0 = rnn.weight_ih_l0
        return StepWeights(
            feed=w_ih0[:, w_ih0.size(1) - self.output_size :].t() if self.input_feeding else None,
            ih=[None] + [weight("ih", layer) for layer in range(1, rnn.num_layers)],
            hh=[weight("hh", layer) for layer in range(rnn.num_layers)],
        )

    def _rnn_step(
        self, gates_in: Tensor, state: DecoderState, weights: StepWeights
    ) -> tuple[tuple[Tensor, ...], tuple[Tensor, ...] | None]:
        """One time step of every RNN layer -> the new hidden state and memory cell of each layer.

        Runs PyTorch's cell equations on the module's own weights: for a single time step this is
        cheaper than a call of the fused oneDNN kernel, whose per-call cost showed in the profile
        (benchmarks/README.md).

        Args:
            gates_in: (B, G) the embedded input's share of the first layer's input projection.
            state: the state before the step (its `feed` is the first layer's second input).
            weights: `_step_weights()`.
        """
        cell = CELLS[self.rnn.mode]
        hs, cs = [], []
        below = gates_in  # the layer input: each layer's (dropped-out) output for the next
        for layer, (ih, hh) in enumerate(zip(weights.ih, weights.hh, strict=True)):
            if ih is not None:
                gates_x = _affine(below, *ih)
            elif weights.feed is not None:
                gates_x = torch.addmm(gates_in, state.feed, weights.feed)
            else:
                gates_x = gates_in
            c = None if state.c is None else state.c[layer]
            h, c = cell(gates_x, _affine(state.h[layer], *hh), state.h[layer], c)
            hs.append(h)
            cs.append(c)
            below = dropout(h, self.rnn.dropout, self.training)  # between layers, as nn.LSTM/nn.GRU do
        return tuple(hs), None if state.c is None else tuple(cs)

    def step(
        self, embedded: Tensor, state: DecoderState, encoded: EncoderOutput
    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """One step: embedded (B, E) -> output (B, H), new state, attention weights (B, S) or None."""
        gates = self._embedding_gates(self.dropout(embedded))
        return self._step_from_gates(gates, state, encoded, self._step_weights(), None)

    def _step_from_gates(
        self,
        gates_in: Tensor,
        state: DecoderState,
        encoded: EncoderOutput,
        weights: StepWeights,
        prepared: Tensor | None,
    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """`step` after the embedding's input projection: RNN step, attention, next state."""
        h, c = self._rnn_step(gates_in, state, weights)
        out, attention = self._attend(h[-1].unsqueeze(1), encoded, prepared)
        out = out.squeeze(1)
        return (
            out,
            DecoderState(h, c, out if self.input_feeding else None),
            None if attention is None else attention.squeeze(1),
        )


def _affine(x: Tensor, weight_t: Tensor, bias: Tensor | None) -> Tensor:
    """x W^T + b from the transposed weight, as one fused product-and-add."""
    return x @ weight_t if bias is None else torch.addmm(bias, x, weight_t)
