"""How the decoder's first recurrent state is made: `zeros`, `learned` or `bridge`.

Each initialiser is built with the decoder's shape and maps the encoder's (B, D) final summary to
the (num_layers, B, H) initial hidden state, plus a cell state for LSTMs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class StateInit(nn.Module):
    """Base: knows the decoder's layers, hidden size and whether it carries a cell state (LSTM).

    Args:
        encoder_size: size of the encoder's final summary (both directions for bidirectional RNNs).
        hidden_size: decoder hidden size.
        num_layers: decoder layers.
        num_states: 2 for an LSTM (h, c), 1 otherwise.
    """

    def __init__(self, encoder_size: int, hidden_size: int, num_layers: int, num_states: int) -> None:
        super().__init__()
        self.hidden_size, self.num_layers, self.num_states = hidden_size, num_layers, num_states

    def split(self, flat: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """(B, S*L*H) -> (L, B, H), or an (h, c) pair of them for an LSTM."""
        states = flat.view(flat.size(0), self.num_states, self.num_layers, self.hidden_size).permute(
            1, 2, 0, 3
        )
        return (
            (states[0].contiguous(), states[1].contiguous())
            if self.num_states == 2
            else states[0].contiguous()
        )


class ZeroInit(StateInit):
    """All-zero initial state, the RNN default."""

    def forward(self, final: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        return self.split(
            final.new_zeros(final.size(0), self.num_states * self.num_layers * self.hidden_size)
        )


class LearnedInit(StateInit):
    """One trained initial state shared by every sentence."""

    def __init__(self, encoder_size: int, hidden_size: int, num_layers: int, num_states: int) -> None:
        super().__init__(encoder_size, hidden_size, num_layers, num_states)
        self.state = nn.Parameter(torch.zeros(num_states * num_layers * hidden_size))

    def forward(self, final: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        return self.split(self.state.to(final.dtype).expand(final.size(0), -1))


class BridgeInit(StateInit):
    """tanh(W final + b) from the encoder's true final states (JoeyNMT's and Nematus' bridge)."""

    def __init__(self, encoder_size: int, hidden_size: int, num_layers: int, num_states: int) -> None:
        super().__init__(encoder_size, hidden_size, num_layers, num_states)
        self.proj = nn.Linear(encoder_size, num_states * num_layers * hidden_size)

    def forward(self, final: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        return self.split(torch.tanh(self.proj(final)))
