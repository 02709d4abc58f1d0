"""The decoder's single-step path (cell equations on the RNN's weights) agrees with its fused whole-sequence path."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

from seq2seq.models.attention import BahdanauAttention, LuongAttention
from seq2seq.models.decoder import RecurrentDecoder
from seq2seq.models.encoder_output import EncoderOutput
from seq2seq.models.state_init import BridgeInit


def tiny_decoder(rnn, layers: int, attention, input_feeding: bool, dropout: float = 0.0) -> RecurrentDecoder:
    """Embeddings 5, hidden 7, memory 6, in eval mode, seeded."""
    torch.manual_seed(0)
    return RecurrentDecoder(
        partial(rnn, num_layers=layers, dropout=dropout),
        input_size=5,
        hidden_size=7,
        memory_size=6,
        init=BridgeInit,
        attention=attention,
        input_feeding=input_feeding,
    ).eval()


@pytest.mark.parametrize("rnn", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("attention", [LuongAttention, BahdanauAttention, None])
@pytest.mark.parametrize("input_feeding", [False, True])
def test_stepping_equals_the_teacher_forced_sequence(rnn, layers, attention, input_feeding) -> None:
    decoder = tiny_decoder(rnn, layers, attention, input_feeding)
    memory = torch.randn(3, 4, 6)
    mask = torch.tensor([[True] * 4, [True, True, False, False], [True, False, False, False]])
    encoded = EncoderOutput(memory, torch.randn(3, 6), mask)
    embedded = torch.randn(3, 5, 5)
    whole = decoder(embedded, encoded)  # without input feeding: one fused nn.LSTM/nn.GRU call over all steps
    state, steps = decoder.initial_state(encoded), []
    for t in range(embedded.size(1)):
        out, state, _ = decoder.step(embedded[:, t], state, encoded)
        steps.append(out)
    torch.testing.assert_close(torch.stack(steps, dim=1), whole, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("rnn", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("layers", [1, 2])
def test_an_input_fed_step_is_the_rnn_module_run_on_the_embedding_and_the_fed_output(rnn, layers) -> None:
    """The step's own cell equations, on the module's weights, against nn.LSTM/nn.GRU itself."""
    decoder = tiny_decoder(
        rnn, layers, LuongAttention, input_feeding=True, dropout=0.3 if layers > 1 else 0.0
    )
    for bias in decoder.rnn.all_weights:  # nonzero recurrent biases: each must be added once
        bias[-1].data.uniform_(-1, 1)
    memory = torch.randn(3, 4, 6)
    encoded = EncoderOutput(memory, torch.randn(3, 6), torch.ones(3, 4, dtype=torch.bool))
    embedded = torch.randn(3, 5, 5)
    state, outputs, expected = decoder.initial_state(encoded), [], []
    rnn_state, feed = state.rnn, state.feed
    for t in range(embedded.size(1)):
        out, state, _ = decoder.step(embedded[:, t], state, encoded)
        outputs.append(out)
        hidden, rnn_state = decoder.rnn(torch.cat([embedded[:, t], feed], dim=-1).unsqueeze(1), rnn_state)
        feed = decoder._attend(hidden, encoded)[0].squeeze(1)
        expected.append(feed)
    torch.testing.assert_close(
        torch.stack(outputs, dim=1), torch.stack(expected, dim=1), atol=1e-5, rtol=1e-5
    )


def test_general_score_is_the_bilinear_form_of_its_weight() -> None:
    torch.manual_seed(0)
    attention = LuongAttention(query_size=4, key_size=3)
    query, keys = torch.randn(2, 5, 4), torch.randn(2, 6, 3)
    expected = torch.einsum("bqh,hk,bsk->bqs", query, attention.key_proj.weight, keys)
    torch.testing.assert_close(attention.score(query, keys), expected)
