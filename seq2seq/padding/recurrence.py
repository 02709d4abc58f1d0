"""An RNN step loop that updates the state only at real tokens: `state_reset` for masks with holes.

A mask whose real tokens form one run per row (right or left padding) runs on the fused kernels
instead (`fused.py`); this loop serves the masks those kernels cannot, with holes inside a row.

The input projections of all time steps are computed in one matrix product; only the recurrent
product runs step by step. The two directions of a bidirectional layer step together: the backward
direction reads the time-reversed input, and one batched matrix product serves both, which halves
the Python-level steps. The cell equations are PyTorch's own, on the module's own weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seq2seq.ops.cells import CELLS, Cell
from seq2seq.ops.dropout import dropout


def run_layer(
    cell: Cell, x: Tensor, mask: Tensor, weights: list[list[Tensor | None]], with_c: bool
) -> tuple[Tensor, Tensor]:
    """One layer, all its directions at once.

    Args:
        cell: one of `CELLS`.
        x: (B, T, I) layer input.
        mask: (B, T) bool, True at real tokens.
        weights: per direction (forward first), [w_ih, w_hh, b_ih, b_hh].
        with_c: the cell carries a memory cell (LSTM).

    Returns:
        outputs (B, T, D*H), zero at pads, and the final hidden states (B, D*H), directions concatenated.
    """
    # Direction d reads time reversed when d == 1; flipping its projections and mask lets one loop
    # over t serve both directions.
    gates_x = torch.stack(
        [
            F.linear(x, w_ih, b_ih).flip(1) if d else F.linear(x, w_ih, b_ih)
            for d, (w_ih, _, b_ih, _) in enumerate(weights)
        ]
    )  # (D, B, T, G)
    keep = torch.stack([mask.flip(1) if d else mask for d in range(len(weights))]).unsqueeze(
        -1
    )  # (D, B, T, 1)
    w_hh_t = torch.stack([w[1] for w in weights]).transpose(1, 2)  # (D, H, G)
    b_hh = None if weights[0][3] is None else torch.stack([w[3] for w in weights]).unsqueeze(1)  # (D, 1, G)
    directions, batch = gates_x.shape[:2]
    h = x.new_zeros(directions, batch, w_hh_t.size(1))
    c = torch.zeros_like(h) if with_c else None
    outputs: list[Tensor] = []
    # unbind, not indexing per step: the backward of `gates_x[:, :, t]` zero-fills a full-size
    # gradient at every step (quadratic in T; it was the largest cost in the profile).
    for gates_x_t, keep_t in zip(gates_x.unbind(2), keep.unbind(2), strict=True):
        gates_h = torch.bmm(h, w_hh_t) if b_hh is None else torch.baddbmm(b_hh, h, w_hh_t)
        h_new, c_new = cell(gates_x_t, gates_h, h, c)
        h = torch.where(keep_t, h_new, h)
        if with_c:
            c = torch.where(keep_t, c_new, c)
        outputs.append(h)
    stacked = torch.stack(outputs, dim=2) * keep  # (D, B, T, H)
    per_direction = [stacked[d].flip(1) if d else stacked[d] for d in range(directions)]
    return torch.cat(per_direction, dim=-1), torch.cat(list(h), dim=-1)


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
    layer_input, final = x, x
    for layer in range(rnn.num_layers):
        weights = []
        for direction in range(directions):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            names = [f"weight_ih{suffix}", f"weight_hh{suffix}", f"bias_ih{suffix}", f"bias_hh{suffix}"]
            weights.append([getattr(rnn, name, None) for name in names])
        layer_input, final = run_layer(cell, layer_input, mask, weights, with_c=rnn.mode == "LSTM")
        if layer < rnn.num_layers - 1:  # nn.RNNBase applies dropout between layers only
            layer_input = dropout(layer_input, rnn.dropout, rnn.training)
    return layer_input, final
