"""PyTorch's RNN cell equations as functions of precomputed projections.

The `state_reset` strategy's step loop (seq2seq/padding/recurrence.py) and the decoder's
step-by-step RNN (seq2seq/models/decoder.py) both run these on a module's own weights.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# A cell maps (input projection x W_ih + b_ih, hidden projection h W_hh + b_hh, h, c) to the new
# (hidden, cell) pair. Every tensor is (D, B, ...): directions first.
Cell = Callable[[Tensor, Tensor, Tensor, Tensor | None], tuple[Tensor, Tensor | None]]


def lstm_cell(gates_x: Tensor, gates_h: Tensor, h: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor]:
    # Seven operators, not eleven: one sigmoid over all four gates (g's is unused) and a fused
    # multiply-add. Run once per time step, each operator's fixed cost shows (benchmarks/README.md).
    gates = gates_x + gates_h
    i, f, _, o = torch.sigmoid(gates).chunk(4, dim=-1)  # PyTorch's gate order: i, f, g, o
    c = torch.addcmul(f * c, i, torch.tanh(gates.chunk(4, dim=-1)[2]))
    return o * torch.tanh(c), c


def gru_cell(gates_x: Tensor, gates_h: Tensor, h: Tensor, c: Tensor | None) -> tuple[Tensor, None]:
    x_r, x_z, x_n = gates_x.chunk(3, dim=-1)
    h_r, h_z, h_n = gates_h.chunk(3, dim=-1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h, None


def tanh_cell(gates_x: Tensor, gates_h: Tensor, h: Tensor, c: Tensor | None) -> tuple[Tensor, None]:
    return torch.tanh(gates_x + gates_h), None


def relu_cell(gates_x: Tensor, gates_h: Tensor, h: Tensor, c: Tensor | None) -> tuple[Tensor, None]:
    return torch.relu(gates_x + gates_h), None


CELLS: dict[str, Cell] = {"LSTM": lstm_cell, "GRU": gru_cell, "RNN_TANH": tanh_cell, "RNN_RELU": relu_cell}
