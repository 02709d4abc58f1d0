"""An RNN step loop that updates the state only at real tokens (the `state_reset` strategy).

The input projections of all time steps are computed in one matrix product; only the recurrent
product runs step by step. The cell equations are PyTorch's own, on the module's own weights.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# A cell maps (input projection x W_ih + b_ih, state, W_hh, b_hh) to the new (hidden, cell) pair.
Cell = Callable[[Tensor, Tensor, Tensor | None, Tensor, Tensor | None], tuple[Tensor, Tensor | None]]


def lstm_cell(gates_x: Tensor, h: Tensor, c: Tensor | None, w_hh: Tensor, b_hh: Tensor | None) -> tuple[Tensor, Tensor]:
    i, f, g, o = (gates_x + F.linear(h, w_hh, b_hh)).chunk(4, dim=-1)  # PyTorch's gate order
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def gru_cell(gates_x: Tensor, h: Tensor, c: Tensor | None, w_hh: Tensor, b_hh: Tensor | None) -> tuple[Tensor, None]:
    x_r, x_z, x_n = gates_x.chunk(3, dim=-1)
    h_r, h_z, h_n = F.linear(h, w_hh, b_hh).chunk(3, dim=-1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h, None


def tanh_cell(gates_x: Tensor, h: Tensor, c: Tensor | None, w_hh: Tensor, b_hh: Tensor | None) -> tuple[Tensor, None]:
    return torch.tanh(gates_x + F.linear(h, w_hh, b_hh)), None


def relu_cell(gates_x: Tensor, h: Tensor, c: Tensor | None, w_hh: Tensor, b_hh: Tensor | None) -> tuple[Tensor, None]:
    return torch.relu(gates_x + F.linear(h, w_hh, b_hh)), None


CELLS: dict[str, Cell] = {"LSTM": lstm_cell, "GRU": gru_cell, "RNN_TANH": tanh_cell, "RNN_RELU": relu_cell}


def run_direction(cell: Cell, x: Tensor, mask: Tensor, weights: list[Tensor | None], reverse: bool, with_c: bool) -> tuple[Tensor, Tensor]:
    """One layer, one direction.

    Args:
        cell: one of `CELLS`.
        x: (B, T, I) layer input.
        mask: (B, T) bool, True at real tokens.
        weights: [w_ih, w_hh, b_ih, b_hh] of this layer and direction.
        reverse: run from the last position to the first.
        with_c: the cell carries a memory cell (LSTM).

    Returns:
        outputs (B, T, H), zero at pads, and the final hidden state (B, H).
    """
    w_ih, w_hh, b_ih, b_hh = weights
    gates_x = F.linear(x, w_ih, b_ih)  # (B, T, G*H): all input projections at once
    batch, steps = x.shape[:2]
    h = x.new_zeros(batch, w_hh.size(1))
    c = torch.zeros_like(h) if with_c else None
    outputs: list[Tensor] = [h] * steps
    keep = mask.unsqueeze(-1)  # (B, T, 1)
    for t in reversed(range(steps)) if reverse else range(steps):
        h_new, c_new = cell(gates_x[:, t], h, c, w_hh, b_hh)
        h = torch.where(keep[:, t], h_new, h)
        if with_c:
            c = torch.where(keep[:, t], c_new, c)
        outputs[t] = h
    return torch.stack(outputs, dim=1) * keep, h


def run_reset_rnn(rnn: nn.RNNBase, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Runs every layer and direction of `rnn` with state updates at real tokens only.

    Args:
        rnn: a batch-first `nn.LSTM`, `nn.GRU` or `nn.RNN` without projections.
        x: (B, T, E) input.
        mask: (B, T) bool, True at real tokens (any padding side).

    Returns:
        outputs (B, T, D*H) of the last layer (zero at pads) and final (B, D*H), the last layer's final
        hidden states with directions concatenated.
    """
    if rnn.mode not in CELLS or getattr(rnn, "proj_size", 0):
        raise ValueError(f"state_reset supports LSTM, GRU and RNN modules without proj_size, not {rnn}")
    if not rnn.batch_first:
        raise ValueError("state_reset expects a batch_first RNN")
    cell = CELLS[rnn.mode]
    directions = 2 if rnn.bidirectional else 1
    layer_input, finals = x, []
    for layer in range(rnn.num_layers):
        outputs, finals = [], []
        for direction in range(directions):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            names = [f"weight_ih{suffix}", f"weight_hh{suffix}", f"bias_ih{suffix}", f"bias_hh{suffix}"]
            weights = [getattr(rnn, name, None) for name in names]
            out, final = run_direction(cell, layer_input, mask, weights, reverse=bool(direction), with_c=rnn.mode == "LSTM")
            outputs.append(out)
            finals.append(final)
        layer_input = torch.cat(outputs, dim=-1)
        if layer < rnn.num_layers - 1:  # nn.RNNBase applies dropout between layers only
            layer_input = F.dropout(layer_input, rnn.dropout, rnn.training)
    return layer_input, torch.cat(finals, dim=-1)
