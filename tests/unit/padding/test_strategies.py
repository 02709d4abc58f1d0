"""Promise 1 at the encoder: a sentence's states are the same alone and inside a padded batch."""

from __future__ import annotations

import itertools
from functools import partial

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import seq2seq.padding.fused as fused_module
from seq2seq.models.encoders import RecurrentEncoder, SelfAttentionEncoder
from seq2seq.padding import (
    MaskingOutputsStrategy,
    MaskingStrategy,
    NaiveStrategy,
    PackingStrategy,
    PaddingStrategy,
    StateResetStrategy,
)
from seq2seq.padding.drift import batch_drift
from seq2seq.padding.fused import ReverseWithinLengths, merged_pieces, reversal_index, time_pieces
from seq2seq.padding.recurrence import run_reset_rnn
from seq2seq.padding.strategy import hidden_of, last_layer_final, lengths_mask

EMBED = 6
EXACT_FOR_EVERY_ENCODER = [MaskingStrategy(), PackingStrategy(), StateResetStrategy()]


def recurrent(
    rnn: type[nn.RNNBase], bidirectional: bool, strategy: PaddingStrategy, num_layers: int = 2
) -> nn.Module:
    torch.manual_seed(0)
    factory = partial(rnn, num_layers=num_layers, bidirectional=bidirectional, dropout=0.3 * (num_layers > 1))
    encoder = RecurrentEncoder(factory, input_size=EMBED, hidden_size=5, padding=strategy, dropout=0.3)
    return encoder.eval()  # dropout configured, and off in evaluation


def self_attention(strategy: PaddingStrategy) -> nn.Module:
    torch.manual_seed(0)
    return SelfAttentionEncoder(
        EMBED, strategy, hidden_size=8, num_heads=2, num_layers=2, feedforward_size=16
    ).eval()


def padded_batch(lengths: list[int], extra: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random embedded inputs (B, max+extra, E) whose pad positions hold pad-like garbage."""
    generator = torch.Generator().manual_seed(sum(lengths) + extra)
    x = torch.randn(len(lengths), max(lengths) + extra, EMBED, generator=generator)
    lengths_t = torch.tensor(lengths)
    return x, lengths_t, lengths_mask(lengths_t, x.size(1))


def max_drift(encoder: nn.Module, lengths: list[int], extra: int) -> float:
    """Largest difference between each sentence encoded alone and inside the padded batch."""
    x, lengths_t, _ = padded_batch(lengths, extra)
    return max(batch_drift(encoder, x, lengths_t))


batch_lengths = st.lists(st.integers(1, 12), min_size=1, max_size=5)


@pytest.mark.parametrize("rnn", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("strategy", EXACT_FOR_EVERY_ENCODER, ids=repr)
@settings(max_examples=10, deadline=None)
@given(lengths=batch_lengths, extra=st.integers(0, 4))
def test_exact_strategies_are_padding_invariant_for_rnns(
    rnn, bidirectional, num_layers, strategy, lengths, extra
) -> None:
    assert max_drift(recurrent(rnn, bidirectional, strategy, num_layers), lengths, extra) < 1e-5


def test_encoder_dropout_drops_the_input_and_the_memory_but_not_the_final_summary() -> None:
    """In training, zeroed input features change the states; zeroed memory features show as exact
    zeros where the undropped states are not; the decoder's starting summary is never zeroed itself."""
    encoder = recurrent(nn.LSTM, True, MaskingStrategy(), num_layers=1)
    x, lengths, mask = padded_batch([7, 5, 3], 0)
    clean = encoder(x, lengths, mask)
    torch.manual_seed(1)
    dropped = encoder.train()(x, lengths, mask)
    real = mask.unsqueeze(-1).expand_as(clean.memory)
    zeroed = (dropped.memory == 0) & real
    assert 0.15 < zeroed.sum() / real.sum() < 0.45  # p = 0.3 on the memory
    assert (clean.memory[zeroed] != 0).all()
    kept = ~zeroed & real
    # kept memory is the scaled states of the dropped-out input, not of the clean one
    assert not torch.allclose(dropped.memory[kept] * 0.7, clean.memory[kept], atol=1e-4)
    assert (dropped.final != 0).all()
    assert torch.equal(encoder.eval()(x, lengths, mask).memory, clean.memory)


@pytest.mark.parametrize("rnn", [nn.LSTM, nn.GRU])
@settings(max_examples=15, deadline=None)
@given(lengths=batch_lengths, extra=st.integers(0, 4))
def test_masking_outputs_is_padding_invariant_for_unidirectional_rnns(rnn, lengths, extra) -> None:
    assert max_drift(recurrent(rnn, False, MaskingOutputsStrategy()), lengths, extra) < 1e-5


@pytest.mark.parametrize("rnn", [nn.LSTM, nn.GRU])
def test_masking_outputs_lets_pads_into_the_backward_direction(rnn) -> None:
    """The documented limit of the masking_outputs baseline: a bidirectional RNN's backward pass reads the pads first."""
    assert max_drift(recurrent(rnn, True, MaskingOutputsStrategy()), [3, 9], 2) > 1e-3


@pytest.mark.parametrize("rnn", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_naive_drifts_with_padding(rnn, bidirectional) -> None:
    assert max_drift(recurrent(rnn, bidirectional, NaiveStrategy()), [3, 9], 2) > 1e-3


@pytest.mark.parametrize(
    "strategy",
    [NaiveStrategy(), MaskingOutputsStrategy(), MaskingStrategy(), PackingStrategy(), StateResetStrategy()],
    ids=repr,
)
def test_a_strategy_claims_exactness_exactly_when_every_encoder_keeps_it(strategy) -> None:
    """`PaddingStrategy.exact`, which the server reads to choose how to decode, matches what is measured."""
    encoders = [
        recurrent(rnn, bidirectional, strategy)
        for rnn in (nn.LSTM, nn.GRU)
        for bidirectional in (False, True)
    ]
    worst = max(max_drift(encoder, [3, 9, 6], 2) for encoder in [*encoders, self_attention(strategy)])
    assert (worst < 1e-5) == strategy.exact, worst


@pytest.mark.parametrize("strategy", [MaskingStrategy(), PackingStrategy(), StateResetStrategy()], ids=repr)
@settings(max_examples=15, deadline=None)
@given(lengths=batch_lengths, extra=st.integers(0, 4))
def test_self_attention_encoder_is_padding_invariant_with_a_key_mask(strategy, lengths, extra) -> None:
    assert max_drift(self_attention(strategy), lengths, extra) < 1e-5


def test_self_attention_encoder_drifts_under_naive() -> None:
    assert max_drift(self_attention(NaiveStrategy()), [3, 9], 2) > 1e-3


@pytest.mark.parametrize("rnn", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("extra", [0, 3])
def test_state_reset_is_exact_for_left_padding(rnn, extra) -> None:
    encoder = recurrent(rnn, True, StateResetStrategy())
    lengths = [2, 7, 5, 0]
    x, _, _ = padded_batch(lengths, extra)
    steps = x.size(1)
    left_mask = torch.arange(steps)[None, :] >= steps - torch.tensor(lengths)[:, None]  # pads first
    with torch.no_grad():
        outputs, final = StateResetStrategy.run_masked(encoder.rnn, x, left_mask)
        for i, n in enumerate(lengths):
            assert not outputs[i, : steps - n].any()  # pads stay zero
            if n == 0:  # an empty row keeps the initial state
                assert not final[i].any()
                continue
            alone, alone_final = StateResetStrategy.run_masked(
                encoder.rnn, x[i : i + 1, steps - n :], torch.ones(1, n, dtype=torch.bool)
            )
            assert torch.allclose(outputs[i, steps - n :], alone[0], atol=1e-6)
            assert torch.allclose(final[i], alone_final[0], atol=1e-6)


@pytest.mark.parametrize("rnn", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize(
    "rows",
    [
        [[0, 0, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0]],  # one run per row: fused kernels
        [[1, 0, 1, 1, 0, 0], [0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]],  # a hole in row 0: the step loop
    ],
)
def test_state_reset_paths_agree_with_the_step_loop(rnn, rows) -> None:
    """The fused path (one run of real tokens per row) gives the step loop's states and gradients."""
    encoder = recurrent(rnn, True, StateResetStrategy())
    mask = torch.tensor(rows, dtype=torch.bool)
    x = torch.randn(3, 6, EMBED, generator=torch.Generator().manual_seed(3), requires_grad=True)
    results = []
    for run in (StateResetStrategy.run_masked, run_reset_rnn):
        encoder.zero_grad()
        outputs, final = run(encoder.rnn, x, mask)
        (grad_x,) = torch.autograd.grad((outputs.sin().sum() + final.cos().sum()), x)
        results.append((outputs, final, grad_x))
    for fused, loop in zip(*results, strict=True):
        assert torch.allclose(fused, loop, atol=1e-6)


def pytorch_packed(
    rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference: PyTorch's own PackedSequence run, outputs and last-layer final state."""
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out, state = rnn(packed)
    outputs, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
    return outputs, last_layer_final(hidden_of(state), rnn)


@pytest.mark.parametrize("rnn", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("call_steps", [0.0, 2.0], ids=["a-piece-per-length", "merged-pieces"])
def test_exact_strategies_give_pytorchs_packed_outputs_and_gradients(
    rnn, bidirectional, num_layers, call_steps, monkeypatch
) -> None:
    """The reversal within lengths and the time pieces, cut at every length or merged, are
    differentiable like PyTorch's PackedSequence: the same states and the same input and weight
    gradients (ties and unsorted lengths included)."""
    monkeypatch.setattr(fused_module, "CALL_STEPS", call_steps)
    lengths = [4, 9, 1, 6, 9, 4]
    x, lengths_t, _ = padded_batch(lengths, 2)
    x.requires_grad_(True)
    runs = {"pytorch": None, "masking": MaskingStrategy(), "packing": PackingStrategy()}
    results = {}
    for name, strategy in runs.items():
        encoder = recurrent(rnn, bidirectional, strategy or MaskingStrategy(), num_layers).train()
        encoder.rnn.dropout = 0.0  # dropout draws differ between calls; the recurrence is what is compared
        run = strategy.run_rnn if strategy else pytorch_packed
        outputs, final = run(encoder.rnn, x, lengths_t)
        x.grad = None
        (outputs.sin().sum() + final.cos().sum()).backward()
        results[name] = (outputs, final, x.grad, *[p.grad for p in encoder.rnn.parameters()])
    for name in ("masking", "packing"):
        for ours, reference in zip(results[name], results["pytorch"], strict=True):
            assert torch.allclose(ours, reference, atol=1e-5), name


def piece_cost(pieces: list[tuple[int, int, int]], call: float) -> float:
    return sum(rows * (end - start) + call * pieces[0][2] for start, end, rows in pieces)


@pytest.mark.parametrize("seed", range(20))
def test_merged_pieces_are_the_cheapest_cover_of_the_batch(seed: int) -> None:
    """Against every way of merging neighbouring pieces: the fewest row-steps plus calls, and each piece
    runs exactly the rows real at its start."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(
        1, 12, (int(torch.randint(1, 9, (1,), generator=generator)),), generator=generator
    )
    pieces = time_pieces(lengths.sort(descending=True).values)
    call = [0.0, 0.5, 2.0, 8.0][seed % 4]
    merged = merged_pieces(pieces, call)
    covers = []
    for cuts in itertools.product([False, True], repeat=len(pieces) - 1):
        groups, start = [], 0
        for i, cut in enumerate([*cuts, True]):
            if cut:
                groups.append((pieces[start][0], pieces[i][1], pieces[start][2]))
                start = i + 1
        covers.append(groups)
    assert piece_cost(merged, call) == pytest.approx(min(piece_cost(c, call) for c in covers))
    assert merged in covers
    assert merged_pieces(pieces, 0.0) == pieces
    assert len(merged_pieces(pieces, 1e9)) == 1


def test_packing_runs_one_piece_per_distinct_length_and_none_for_empty_rows() -> None:
    assert time_pieces(torch.tensor([9, 9, 6, 4, 4, 1, 0])) == [(0, 1, 6), (1, 4, 5), (4, 6, 3), (6, 9, 2)]
    assert time_pieces(torch.tensor([0, 0])) == []
    encoder = recurrent(nn.LSTM, True, PackingStrategy())
    x, _, _ = padded_batch([3, 5], 0)
    outputs, final = PackingStrategy().run_rnn(encoder.rnn, x, torch.tensor([3, 0]))
    assert not outputs[1].any() and not final[1].any()
    assert torch.allclose(
        outputs[0], MaskingStrategy().run_rnn(encoder.rnn, x, torch.tensor([3, 0]))[0][0], atol=1e-6
    )


def test_the_reversal_within_lengths_is_its_own_gradient() -> None:
    index = reversal_index(torch.tensor([3, 1, 0, 4]), 4)
    assert torch.equal(index.view(4, 4)[0], torch.tensor([2, 1, 0, 3]))  # pads stay in place
    x = torch.randn(4, 4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: ReverseWithinLengths.apply(t, index), (x,))


@pytest.mark.parametrize("rnn", [nn.LSTM, nn.GRU, nn.RNN])
def test_state_reset_matches_the_cudnn_style_module_on_unpadded_input(rnn) -> None:
    """The step loop implements PyTorch's own cell equations on the module's weights."""
    encoder = recurrent(rnn, True, StateResetStrategy())
    x = torch.randn(3, 6, EMBED)
    with torch.no_grad():
        expected, _ = encoder.rnn(x)
        actual, _ = StateResetStrategy().run_rnn(encoder.rnn, x, torch.full((3,), 6))
    assert torch.allclose(actual, expected, atol=1e-6)


def test_strategy_hooks() -> None:
    mask = torch.tensor([[True, True, False]])
    assert NaiveStrategy().key_padding_mask(mask) is None
    assert NaiveStrategy().loss_mask(mask).all()
    for strategy in (MaskingStrategy(), MaskingOutputsStrategy(), PackingStrategy(), StateResetStrategy()):
        assert torch.equal(strategy.key_padding_mask(mask), mask)
        assert torch.equal(strategy.loss_mask(mask), mask)
    memory = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert MaskingStrategy().pool(memory, mask).item() == 2.0
    assert NaiveStrategy().pool(memory, mask).item() == pytest.approx(104 / 3)
