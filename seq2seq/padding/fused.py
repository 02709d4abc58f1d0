"""Exact recurrences on PyTorch's fused RNN kernels: no pad ever reaches a real position's state.

A right-padded batch is exact for the forward direction as it is: each sentence comes first and its
pads after, so nothing real reads a pad. The backward direction of a bidirectional layer instead
starts at the last pad. Here it reads each sentence reversed *within its own length* (pads stay at
the end), and its outputs are reversed back; layer by layer, since the next layer reads both
directions. Each direction is one call of the fused kernel (oneDNN on the CPU, cuDNN on the GPU,
which picks its persistent small-hidden algorithm only for unpacked input): the same work as the
padded bidirectional call, plus two index gathers per layer.

`pack_padded_sequence` reaches the same states, but packing, unpacking and the kernel's per-step
batch changes cost more (benchmarks/README.md, "Strategy cost"); the Python step loop of
`recurrence.py` costs more still and is kept for masks with holes inside a row.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seq2seq.ops.precision import rnn_input

KERNELS = {"LSTM": torch.lstm, "GRU": torch.gru, "RNN_TANH": torch.rnn_tanh, "RNN_RELU": torch.rnn_relu}


class ReverseWithinLengths(torch.autograd.Function):
    """Rows gathered by an index that is its own inverse, so the gradient takes the same gather.

    Autograd's own backward of a gather is a scatter-add into a zero-filled tensor, which costs more.
    """

    @staticmethod
    def forward(ctx, x: Tensor, flat_index: Tensor) -> Tensor:
        ctx.save_for_backward(flat_index)
        return x.flatten(0, 1).index_select(0, flat_index).view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (flat_index,) = ctx.saved_tensors
        return grad.flatten(0, 1).index_select(0, flat_index).view_as(grad), None


def reversal_index(lengths: Tensor, steps: int) -> Tensor:
    """(B*T,) flat row index that reverses each row's first `length` positions and keeps its pads.

    It is an involution: applying it twice gives the input back.
    """
    t = torch.arange(steps, device=lengths.device)[None, :]  # (1, T)
    n = lengths.to(torch.long)[:, None]  # (B, 1)
    within = torch.where(t < n, n - 1 - t, t)  # (B, T)
    return (within + steps * torch.arange(lengths.numel(), device=lengths.device)[:, None]).flatten()


def layer_weights(rnn: nn.RNNBase, layer: int, reverse: bool) -> list[Tensor]:
    """One layer and direction's parameters in the order the fused kernels take them."""
    suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    names = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if rnn.bias else [])
    names += ["weight_hr"] if getattr(rnn, "proj_size", 0) else []
    return [getattr(rnn, name + suffix) for name in names]


def run_direction(rnn: nn.RNNBase, x: Tensor, weights: list[Tensor]) -> Tensor:
    """One unidirectional layer of `rnn`'s kind over (B, T, I) input from the zero state -> (B, T, H)."""
    batch = x.size(0)
    proj = getattr(rnn, "proj_size", 0)
    h0 = x.new_zeros(1, batch, proj or rnn.hidden_size)
    hx = (h0, x.new_zeros(1, batch, rnn.hidden_size)) if rnn.mode == "LSTM" else h0
    kernel = KERNELS[rnn.mode]
    if not x.is_cuda:
        return kernel(x, hx, weights, rnn.bias, 1, 0.0, rnn.training, False, True)[0]
    # cuDNN may copy one layer's weights out of the module's flat buffer for the call, and warns at
    # every call that it does; the copy is one layer's weights, small beside the recurrence.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous")
        return kernel(x, hx, weights, rnn.bias, 1, 0.0, rnn.training, False, True)[0]


def run_exact_rnn(rnn: nn.RNNBase, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Runs a batch-first RNN over right-padded input so that no pad reaches a real position.

    Args:
        rnn: a batch-first `nn.LSTM`, `nn.GRU` or `nn.RNN`, any layers, directions and dropout.
        x: (B, T, E) input.
        lengths: (B,) true lengths (0 allowed: that row's outputs and final state are zero).

    Returns:
        outputs (B, T, D*H) of the last layer, zero at pads, and final (B, D*H): the last layer's
        hidden state after each sentence's last token in each direction, directions concatenated.
    """
    if not rnn.batch_first:
        raise ValueError("exact recurrences expect a batch_first RNN")
    x = rnn_input(x)
    steps = x.size(1)
    lengths = lengths.to(x.device)
    rows = torch.arange(x.size(0), device=x.device)
    last = (lengths - 1).clamp_min(0)
    if not rnn.bidirectional:
        outputs = rnn(x)[0]  # every layer in one call: a forward direction never reads a later pad
        final = outputs[rows, last]
    else:
        index = reversal_index(lengths, steps)
        layer_input = x
        for layer in range(rnn.num_layers):
            forward = run_direction(rnn, layer_input, layer_weights(rnn, layer, reverse=False))
            reversed_input = ReverseWithinLengths.apply(layer_input, index)
            backward_reversed = run_direction(rnn, reversed_input, layer_weights(rnn, layer, reverse=True))
            backward = ReverseWithinLengths.apply(backward_reversed, index)
            layer_input = torch.cat([forward, backward], dim=-1)  # (B, T, 2H)
            if layer < rnn.num_layers - 1:  # nn.RNNBase applies dropout between layers only
                layer_input = F.dropout(layer_input, rnn.dropout, rnn.training)
        outputs = layer_input
        # Forward: the state after the last real token; backward: after reading back to position 0.
        final = torch.cat([forward[rows, last], backward[:, 0]], dim=-1)
    real = torch.arange(steps, device=x.device)[None, :] < lengths[:, None]  # (B, T)
    return outputs * real.unsqueeze(-1), final * (lengths > 0).unsqueeze(-1)


def run_starts(mask: Tensor) -> Tensor | None:
    """(B, T) True-at-real mask -> (B,) each row's first real position if its real positions form one run
    (0 for an empty row), else None."""
    lengths = mask.sum(1)
    starts = mask.to(torch.uint8).argmax(1) * (lengths > 0)
    t = torch.arange(mask.size(1), device=mask.device)[None, :]
    runs = (t >= starts[:, None]) & (t < (starts + lengths)[:, None])
    return starts if torch.equal(runs, mask) else None


def run_exact_shifted(rnn: nn.RNNBase, x: Tensor, mask: Tensor, starts: Tensor) -> tuple[Tensor, Tensor]:
    """`run_exact_rnn` for rows whose real tokens (`mask`) form one run from `starts` (`run_starts`):
    left padding, or pads on both sides. Each row is shifted to start at position 0, run right-padded,
    and shifted back."""
    lengths = mask.sum(1)
    if not bool(starts.any()):
        return run_exact_rnn(rnn, x, lengths)
    steps = x.size(1)
    t = torch.arange(steps, device=x.device)[None, :]
    to_left = ((t + starts[:, None]) % steps)[:, :, None]  # (B, T, 1): compact position -> original
    compact = x.gather(1, to_left.expand(-1, -1, x.size(2)))
    outputs, final = run_exact_rnn(rnn, compact, lengths)
    back = ((t - starts[:, None]) % steps)[:, :, None]  # original position -> compact
    outputs = outputs.gather(1, back.expand(-1, -1, outputs.size(2)))
    return outputs * mask.unsqueeze(-1), final
