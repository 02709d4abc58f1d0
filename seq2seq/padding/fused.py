"""Exact recurrences on PyTorch's fused RNN kernels: no pad ever reaches a real position's state.

A right-padded batch is exact for the forward direction as it is: each sentence comes first and its
pads after, so nothing real reads a pad. The backward direction of a bidirectional layer instead
starts at the last pad. Here it reads each sentence reversed *within its own length* (pads stay at
the end), and its outputs are reversed back; layer by layer, since the next layer reads both
directions. Each direction is one call of the fused kernel (oneDNN on the CPU, cuDNN on the GPU,
which picks its persistent small-hidden algorithm only for unpacked input): the same work as the
padded bidirectional call, plus two index gathers per layer. A batch without pads (frequent under
length bucketing) takes the module's own call: one for every layer and both directions.

`run_packed_rnn` reaches the same states and leaves out the pads' steps. Sorted longest first, a
batch can be cut in time wherever a sentence ends; one fused call runs the rows still real at a
piece's start from the states the piece before left. That is what a PackedSequence is, but
`pack_padded_sequence` hands it to a kernel that changes the batch at every step, which on the
CPU cost more than the padded fused kernel (benchmarks/README.md, "Strategy cost", compares both).
Each call has a fixed cost too, so neighbouring pieces are merged where the pad steps a cut would
save cost less than the call (`merged_pieces`): a row that ends inside a merged piece runs on over
its own pads, after its last real step, which no real position reads. A length-bucketed batch then
takes one or two calls, a batch of mixed lengths skips most of its pads. The Python step loop of
`recurrence.py` costs more still and is kept for masks with holes inside a row.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import Tensor, nn

from seq2seq.ops.dropout import dropout
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


def zero_state(rnn: nn.RNNBase, layers: int, batch: int, like: Tensor) -> Tensor | tuple[Tensor, Tensor]:
    """The initial state of `layers` unidirectional layers of `rnn`'s kind for `batch` rows."""
    h0 = like.new_zeros(layers, batch, getattr(rnn, "proj_size", 0) or rnn.hidden_size)
    return (h0, like.new_zeros(layers, batch, rnn.hidden_size)) if rnn.mode == "LSTM" else h0


def call_kernel(
    rnn: nn.RNNBase, x: Tensor, hx: Tensor | tuple[Tensor, Tensor], weights: list[Tensor], layers: int
) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor]]:
    """`layers` unidirectional layers of `rnn`'s kind over batch-first `x` from `hx` -> (outputs, state)."""
    kernel = KERNELS[rnn.mode]
    dropout = rnn.dropout if layers > 1 else 0.0
    if not x.is_cuda:
        out = kernel(x, hx, weights, rnn.bias, layers, dropout, rnn.training, False, True)
    else:
        # cuDNN may copy one layer's weights out of the module's flat buffer for the call, and warns
        # at every call that it does; the copy is one layer's weights, small beside the recurrence.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous")
            out = kernel(x, hx, weights, rnn.bias, layers, dropout, rnn.training, False, True)
    return out[0], (out[1], out[2]) if rnn.mode == "LSTM" else out[1]


def run_direction(rnn: nn.RNNBase, x: Tensor, weights: list[Tensor]) -> Tensor:
    """One unidirectional layer of `rnn`'s kind over (B, T, I) input from the zero state -> (B, T, H)."""
    return call_kernel(rnn, x, zero_state(rnn, 1, x.size(0), x), weights, 1)[0]


def unpadded(x: Tensor, lengths: Tensor) -> bool:
    """Whether every row of the (B, T, ...) batch is real at every step: nothing to keep pads out of."""
    return bool((lengths == x.size(1)).all())


def run_bidirectional(
    rnn: nn.RNNBase, x: Tensor, lengths: Tensor, run: Callable[[Tensor, list[Tensor]], Tensor]
) -> Tensor:
    """A bidirectional `rnn` layer by layer over right-padded (B, T, I) input -> (B, T, 2H).

    `run(x, weights)` runs one direction's layer over (B, T, I) from the zero state. The backward
    direction reads each sentence reversed within its length and its outputs are reversed back.
    """
    index = reversal_index(lengths, x.size(1))
    layer_input = x
    for layer in range(rnn.num_layers):
        forward = run(layer_input, layer_weights(rnn, layer, reverse=False))
        reversed_input = ReverseWithinLengths.apply(layer_input, index)
        backward = ReverseWithinLengths.apply(
            run(reversed_input, layer_weights(rnn, layer, reverse=True)), index
        )
        layer_input = torch.cat([forward, backward], dim=-1)
        if layer < rnn.num_layers - 1:  # nn.RNNBase applies dropout between layers only
            layer_input = dropout(layer_input, rnn.dropout, rnn.training)
    return layer_input


def with_finals(rnn: nn.RNNBase, outputs: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """(B, T, D*H) last-layer outputs -> (outputs zeroed at pads, final (B, D*H)).

    The forward direction's final state is its output at the last real token; the backward
    direction's, its output at position 0, after it has read the sentence back to the start.
    """
    steps = outputs.size(1)
    rows = torch.arange(outputs.size(0), device=outputs.device)
    last = (lengths - 1).clamp_min(0)
    hidden = outputs.size(-1) // (2 if rnn.bidirectional else 1)
    final = outputs[rows, last, :hidden]
    if rnn.bidirectional:
        final = torch.cat([final, outputs[:, 0, hidden:]], dim=-1)
    real = torch.arange(steps, device=outputs.device)[None, :] < lengths[:, None]  # (B, T)
    return outputs * real.unsqueeze(-1), final * (lengths > 0).unsqueeze(-1)


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
    lengths = lengths.to(x.device)
    if not rnn.bidirectional or unpadded(x, lengths):
        # Every layer in one call: a forward direction never reads a later pad, and without pads the
        # backward direction starts at each sentence's last token.
        outputs = rnn(x)[0]
    else:
        outputs = run_bidirectional(
            rnn, x, lengths, lambda layer_input, weights: run_direction(rnn, layer_input, weights)
        )
    return with_finals(rnn, outputs, lengths)


def time_pieces(sorted_lengths: Tensor) -> list[tuple[int, int, int]]:
    """(start, end, rows) for a batch sorted longest first: in steps [start, end) its first `rows` rows are real.

    A piece ends wherever a sentence ends, so each holds no pad; empty rows are in none.
    """
    ends = torch.unique(sorted_lengths[sorted_lengths > 0])  # ascending
    rows = (sorted_lengths[None, :] >= ends[:, None]).sum(1)
    starts = [0, *ends.tolist()][: len(ends)]  # no piece at all when every row is empty
    return list(zip(starts, ends.tolist(), rows.tolist(), strict=True))


CALL_STEPS = 2.0
"""What one more fused call costs, in steps of the whole batch: where a cut saves fewer pad steps than
this, neighbouring pieces merge (benchmarks/README.md, "Strategy cost", says how it was chosen)."""


def merged_pieces(pieces: list[tuple[int, int, int]], call_steps: float) -> list[tuple[int, int, int]]:
    """`time_pieces` merged where a cut saves fewer row-steps than a call costs (`CALL_STEPS`).

    A merged piece runs the rows real at its start over all its steps. Minimises the row-steps run
    plus `call_steps` batch-steps per piece, exactly (dynamic programming over the cuts).
    """
    if len(pieces) <= 1:
        return pieces
    call = call_steps * pieces[0][2]
    cost = [0.0] + [float("inf")] * len(pieces)  # cost[j]: the cheapest run of the first j pieces
    first = [0] * (len(pieces) + 1)  # first[j]: where that run's last merged piece starts
    for j in range(1, len(pieces) + 1):
        end = pieces[j - 1][1]
        for i in range(j):
            start, _, rows = pieces[i]
            total = cost[i] + rows * (end - start) + call
            if total < cost[j]:
                cost[j], first[j] = total, i
    merged, j = [], len(pieces)
    while j:
        i = first[j]
        merged.append((pieces[i][0], pieces[j - 1][1], pieces[i][2]))
        j = i
    return merged[::-1]


def packing_plan(lengths: Tensor) -> tuple[Tensor | None, list[tuple[int, int, int]]]:
    """(B,) lengths -> (the order that sorts the rows longest first, None if they already are; the
    merged time pieces of the sorted batch): what `run_packed_rnn` runs, and `packed_positions` counts."""
    cpu_lengths = lengths.to("cpu", torch.long)
    order = None
    if not bool((cpu_lengths[:-1] >= cpu_lengths[1:]).all()):
        order = torch.argsort(cpu_lengths, descending=True, stable=True)
        cpu_lengths = cpu_lengths[order]
    return order, merged_pieces(time_pieces(cpu_lengths), CALL_STEPS)


def packed_positions(lengths: Tensor) -> int:
    """How many (row, step) positions `run_packed_rnn` runs one direction's layer at, pads included."""
    return sum(rows * (end - start) for start, end, rows in packing_plan(lengths)[1])


def run_pieces(
    rnn: nn.RNNBase, x: Tensor, pieces: list[tuple[int, int, int]], weights: list[Tensor], layers: int
) -> Tensor:
    """Unidirectional layers over a (B, T, I) batch sorted longest first, one fused call per time piece
    from the state the piece before left -> (B, T, H), zero at the steps no piece ran (a row's pads
    inside a merged piece hold its run-on outputs, which `with_finals` zeroes)."""
    state = zero_state(rnn, layers, pieces[0][2], x)
    outputs = None
    for start, end, rows in pieces:
        state = tuple(part[:, :rows] for part in state) if isinstance(state, tuple) else state[:, :rows]
        out, state = call_kernel(rnn, x[:rows, start:end], state, weights, layers)
        if outputs is None:
            outputs = out.new_zeros(*x.shape[:2], out.size(-1))
        outputs[:rows, start:end] = out
    return outputs


def run_packed_rnn(rnn: nn.RNNBase, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """`run_exact_rnn`'s results, with the pads' steps left out where that pays (the module docstring).

    Rows already longest first (as the bucketing sampler yields them) run as they are; others are
    sorted for the pieces and put back.
    """
    if not rnn.batch_first:
        raise ValueError("exact recurrences expect a batch_first RNN")
    order, pieces = packing_plan(lengths)
    if not pieces or (len(pieces) == 1 and pieces[0][2] == x.size(0)):
        # Every row empty, or one piece of every row (no pads, or pieces merged into one): `masking`'s calls.
        return run_exact_rnn(rnn, x, lengths)
    x = rnn_input(x)
    lengths = lengths.to(x.device, torch.long)
    if order is not None:
        order = order.to(x.device)
        x = x.index_select(0, order)
    if not rnn.bidirectional:
        weights = [w for layer in range(rnn.num_layers) for w in layer_weights(rnn, layer, reverse=False)]
        outputs = run_pieces(rnn, x, pieces, weights, rnn.num_layers)
    else:
        outputs = run_bidirectional(
            rnn,
            x,
            lengths if order is None else lengths[order],
            lambda layer_input, weights: run_pieces(rnn, layer_input, pieces, weights, 1),
        )
    if order is not None:
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=order.device)
        outputs = outputs.index_select(0, inverse)
    return with_finals(rnn, outputs, lengths)


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
