"""A recurrent decoder with attention over the encoder memory (Luong-style, optional input feeding)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seq2seq.models.attention import Attention
from seq2seq.models.encoder_output import EncoderOutput
from seq2seq.models.state_init import StateInit
from seq2seq.ops.cells import CELLS
from seq2seq.ops.precision import rnn_input

RNNState = Tensor | tuple[Tensor, Tensor]


@dataclass
class DecoderState:
    """What the decoder carries from one step to the next.

    Attributes:
        rnn: (L, B, H) hidden state, or an (h, c) pair for an LSTM.
        feed: (B, H) previous attentional output for input feeding, or None.
    """

    rnn: RNNState
    feed: Tensor | None

    def select(self, index: Tensor) -> DecoderState:
        """Keeps the batch rows in `index` (B',) in that order: how beams follow their parents."""
        rnn = (
            tuple(s.index_select(1, index) for s in self.rnn)
            if isinstance(self.rnn, tuple)
            else self.rnn.index_select(1, index)
        )
        return DecoderState(rnn, None if self.feed is None else self.feed.index_select(0, index))


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
            raise ValueError(
                "a decoder RNN cannot be bidirectional: set bidirectional=false in the decoder config"
            )
        self.init = init(memory_size, hidden_size, self.rnn.num_layers, 2 if self.rnn.mode == "LSTM" else 1)
        self.attention = (
            attention(query_size=hidden_size, key_size=memory_size) if attention is not None else None
        )
        self.combine = nn.Linear(
            hidden_size + (memory_size if self.attention is not None else 0), hidden_size
        )
        self.dropout = nn.Dropout(dropout)
        self.output_size = hidden_size

    def initial_state(self, encoded: EncoderOutput) -> DecoderState:
        batch = encoded.final.size(0)
        feed = encoded.final.new_zeros(batch, self.output_size) if self.input_feeding else None
        return DecoderState(self.init(encoded.final), feed)

    def _attend(self, hidden: Tensor, encoded: EncoderOutput) -> tuple[Tensor, Tensor | None]:
        """(B, T, H) RNN outputs -> (B, T, H) attentional outputs and (B, T, S) weights."""
        if self.attention is None:
            return self.dropout(torch.tanh(self.combine(hidden))), None
        context, weights = self.attention(hidden, encoded.memory, encoded.key_mask)
        return self.dropout(torch.tanh(self.combine(torch.cat([hidden, context], dim=-1)))), weights

    def forward(self, embedded: Tensor, encoded: EncoderOutput) -> Tensor:
        """Teacher-forced decoding: embedded (B, T, E) targets -> (B, T, H) outputs."""
        state = self.initial_state(encoded)
        if not self.input_feeding:
            hidden, _ = self.rnn(rnn_input(self.dropout(embedded)), state.rnn)  # (B, T, H)
            return self._attend(hidden, encoded)[0]
        # Input feeding: the embedding's share of the first layer's input projection is computed for
        # all steps at once; only the fed-back output's share runs step by step.
        outputs = []
        # unbind: no per-step zero-filled grads
        for gates_t in self._embedding_gates(self.dropout(embedded)).unbind(1):
            out, state, _ = self._step_from_gates(gates_t, state, encoded)
            outputs.append(out)
        return torch.stack(outputs, dim=1)

    def _embedding_gates(self, x: Tensor) -> Tensor:
        """(..., E) embedded targets -> their part of the first RNN layer's input projection, bias included."""
        return F.linear(
            x, self.rnn.weight_ih_l0[:, : x.size(-1)], self.rnn.bias_ih_l0 if self.rnn.bias else None
        )

    def _rnn_step(self, gates_in: Tensor, feed: Tensor | None, state: RNNState) -> tuple[Tensor, RNNState]:
        """One time step of every RNN layer -> top hidden (B, H) and the new state.

        Runs PyTorch's cell equations on the module's own weights: for a single time step this is
        cheaper than a call of the fused oneDNN kernel, whose per-call cost showed in the profile
        (benchmarks/README.md).

        Args:
            gates_in: (B, G) the embedded input's share of the first layer's input projection.
            feed: (B, H) the previous attentional output when input feeding, else None.
            state: the RNN state before the step.
        """
        h_all, c_all = state if isinstance(state, tuple) else (state, None)
        cell = CELLS[self.rnn.mode]
        hs, cs = [], []
        below = gates_in  # the layer input: replaced by each layer's (dropped-out) output for the next
        for layer in range(self.rnn.num_layers):
            w_ih, w_hh = getattr(self.rnn, f"weight_ih_l{layer}"), getattr(self.rnn, f"weight_hh_l{layer}")
            b_ih, b_hh = (
                getattr(self.rnn, f"bias_ih_l{layer}", None),
                getattr(self.rnn, f"bias_hh_l{layer}", None),
            )
            if layer == 0:
                gates_x = (
                    gates_in
                    if feed is None
                    else gates_in + F.linear(feed, w_ih[:, w_ih.size(1) - feed.size(-1) :])
                )
            else:
                gates_x = F.linear(below, w_ih, b_ih)
            h, c = cell(
                gates_x,
                F.linear(h_all[layer], w_hh, b_hh),
                h_all[layer],
                None if c_all is None else c_all[layer],
            )
            hs.append(h)
            cs.append(c)
            below = F.dropout(h, self.rnn.dropout, self.training)  # between layers, as nn.LSTM/nn.GRU do
        h_new = torch.stack(hs)
        return h, (h_new, torch.stack(cs)) if c_all is not None else h_new

    def step(
        self, embedded: Tensor, state: DecoderState, encoded: EncoderOutput
    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """One step: embedded (B, E) -> output (B, H), new state, attention weights (B, S) or None."""
        return self._step_from_gates(self._embedding_gates(self.dropout(embedded)), state, encoded)

    def _step_from_gates(
        self, gates_in: Tensor, state: DecoderState, encoded: EncoderOutput
    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """`step` after the embedding's input projection: RNN step, attention, next state."""
        hidden, rnn_state = self._rnn_step(gates_in, state.feed, state.rnn)
        out, weights = self._attend(hidden.unsqueeze(1), encoded)
        out = out.squeeze(1)
        return (
            out,
            DecoderState(rnn_state, out if self.input_feeding else None),
            None if weights is None else weights.squeeze(1),
        )
