"""Promise 1 at the encoder: a sentence's states are the same alone and inside a padded batch."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from seq2seq.models.encoders import RecurrentEncoder, SelfAttentionEncoder
from seq2seq.padding import (
    MaskingStrategy,
    NaiveStrategy,
    PackingStrategy,
    PaddingStrategy,
    StateResetStrategy,
)
from seq2seq.padding.strategy import lengths_mask

EMBED = 6
EXACT_FOR_EVERY_ENCODER = [PackingStrategy(), StateResetStrategy()]


def recurrent(rnn: type[nn.RNNBase], bidirectional: bool, strategy: PaddingStrategy) -> nn.Module:
    torch.manual_seed(0)
    factory = partial(rnn, num_layers=2, bidirectional=bidirectional, dropout=0.3)
    return RecurrentEncoder(factory, input_size=EMBED, hidden_size=5, padding=strategy).eval()


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
    x, lengths_t, mask = padded_batch(lengths, extra)
    with torch.no_grad():
        together = encoder(x, lengths_t, mask)
        drift = 0.0
        for i, n in enumerate(lengths):
            alone = encoder(x[i : i + 1, :n], lengths_t[i : i + 1], mask[i : i + 1, :n])
            drift = max(
                drift,
                (together.memory[i, :n] - alone.memory[0]).abs().max().item(),
                (together.final[i] - alone.final[0]).abs().max().item(),
            )
    return drift


batch_lengths = st.lists(st.integers(1, 12), min_size=1, max_size=5)


@pytest.mark.parametrize("rnn", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("strategy", EXACT_FOR_EVERY_ENCODER, ids=repr)
@settings(max_examples=15, deadline=None)
@given(lengths=batch_lengths, extra=st.integers(0, 4))
def test_exact_strategies_are_padding_invariant_for_rnns(
    rnn, bidirectional, strategy, lengths, extra
) -> None:
    assert max_drift(recurrent(rnn, bidirectional, strategy), lengths, extra) < 1e-5


@pytest.mark.parametrize("rnn", [nn.LSTM, nn.GRU])
@settings(max_examples=15, deadline=None)
@given(lengths=batch_lengths, extra=st.integers(0, 4))
def test_masking_is_padding_invariant_for_unidirectional_rnns(rnn, lengths, extra) -> None:
    assert max_drift(recurrent(rnn, False, MaskingStrategy()), lengths, extra) < 1e-5


@pytest.mark.parametrize("rnn", [nn.LSTM, nn.GRU])
def test_masking_lets_pads_into_the_backward_direction(rnn) -> None:
    """Documented limit of masking: a bidirectional RNN's backward pass reads the pads first."""
    assert max_drift(recurrent(rnn, True, MaskingStrategy()), [3, 9], 2) > 1e-3


@pytest.mark.parametrize("rnn", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_naive_drifts_with_padding(rnn, bidirectional) -> None:
    assert max_drift(recurrent(rnn, bidirectional, NaiveStrategy()), [3, 9], 2) > 1e-3


@pytest.mark.parametrize("strategy", [MaskingStrategy(), PackingStrategy(), StateResetStrategy()], ids=repr)
@settings(max_examples=15, deadline=None)
@given(lengths=batch_lengths, extra=st.integers(0, 4))
def test_self_attention_encoder_is_padding_invariant_with_a_key_mask(strategy, lengths, extra) -> None:
    assert max_drift(self_attention(strategy), lengths, extra) < 1e-5


def test_self_attention_encoder_drifts_under_naive() -> None:
    assert max_drift(self_attention(NaiveStrategy()), [3, 9], 2) > 1e-3


@pytest.mark.parametrize("rnn", [nn.LSTM, nn.GRU])
def test_state_reset_is_exact_for_left_padding(rnn) -> None:
    encoder = recurrent(rnn, True, StateResetStrategy())
    lengths = [2, 7, 5]
    x, _, _ = padded_batch(lengths, 0)
    steps = x.size(1)
    left_mask = torch.arange(steps)[None, :] >= steps - torch.tensor(lengths)[:, None]  # pads first
    with torch.no_grad():
        outputs, final = StateResetStrategy.run_masked(encoder.rnn, x, left_mask)
        for i, n in enumerate(lengths):
            alone, alone_final = StateResetStrategy.run_masked(
                encoder.rnn, x[i : i + 1, steps - n :], torch.ones(1, n, dtype=torch.bool)
            )
            assert torch.allclose(outputs[i, steps - n :], alone[0], atol=1e-6)
            assert torch.allclose(final[i], alone_final[0], atol=1e-6)
            assert not outputs[i, : steps - n].any()  # pads stay zero


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
    for strategy in (MaskingStrategy(), PackingStrategy(), StateResetStrategy()):
        assert torch.equal(strategy.key_padding_mask(mask), mask)
        assert torch.equal(strategy.loss_mask(mask), mask)
    memory = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert MaskingStrategy().pool(memory, mask).item() == 2.0
    assert NaiveStrategy().pool(memory, mask).item() == pytest.approx(104 / 3)
