"""Promise 1 at the model: per-sentence loss and greedy output do not depend on the batch."""

from __future__ import annotations

import dataclasses
from functools import partial

import pytest
import torch
from tests_helpers import ENCODERS, EXACT, PAIRS, VOCAB, build
from torch import nn

from seq2seq.data.batch import Batch, collate
from seq2seq.data.vocab import PAD_ID
from seq2seq.models.attention import BahdanauAttention, LuongAttention
from seq2seq.models.decoder import RecurrentDecoder
from seq2seq.models.loss import sentence_nll
from seq2seq.models.search import greedy_search
from seq2seq.models.seq2seq import Seq2Seq
from seq2seq.models.state_init import BridgeInit, LearnedInit, ZeroInit
from seq2seq.padding import MaskingStrategy, NaiveStrategy, PackingStrategy, StateResetStrategy


def nll_alone_and_batched(model: Seq2Seq) -> tuple[torch.Tensor, torch.Tensor]:
    batch = collate(PAIRS)
    with torch.no_grad():
        batched = sentence_nll(model(batch), batch.tgt_out, batch.tgt_mask)
        alone = torch.stack(
            [sentence_nll(model(b), b.tgt_out, b.tgt_mask)[0] for b in (collate([p]) for p in PAIRS)]
        )
    return alone, batched


@pytest.mark.parametrize("encoder,strategy", EXACT, ids=lambda v: repr(v) if not isinstance(v, str) else v)
@pytest.mark.parametrize("attention", [LuongAttention, BahdanauAttention])
@pytest.mark.parametrize("input_feeding", [False, True])
def test_sentence_loss_is_the_same_alone_and_in_a_padded_batch(
    encoder, strategy, attention, input_feeding
) -> None:
    alone, batched = nll_alone_and_batched(
        build(encoder, strategy, attention=attention, input_feeding=input_feeding)
    )
    assert torch.allclose(alone, batched, atol=1e-5)


@pytest.mark.parametrize("encoder", ["bilstm", "attention"])
def test_naive_sentence_loss_changes_with_padding(encoder) -> None:
    alone, batched = nll_alone_and_batched(build(encoder, NaiveStrategy()))
    assert (alone - batched).abs().max() > 1e-4


@pytest.mark.parametrize("encoder,strategy", EXACT, ids=lambda v: repr(v) if not isinstance(v, str) else v)
@pytest.mark.parametrize("decoder_rnn", [nn.LSTM, nn.GRU])
def test_greedy_output_is_the_same_alone_and_in_a_batch(encoder, strategy, decoder_rnn) -> None:
    model = build(encoder, strategy, decoder_rnn=decoder_rnn, input_feeding=True)
    batch = collate(PAIRS)
    together = [h.tokens for h in greedy_search(model, batch.src, batch.src_lengths, batch.src_mask)]
    alone = [
        greedy_search(model, b.src, b.src_lengths, b.src_mask)[0].tokens
        for b in (collate([p]) for p in PAIRS)
    ]
    assert together == alone
    assert all(len(h) <= 1.5 * n + 10 for h, n in zip(together, batch.src_lengths.tolist(), strict=True))


@pytest.mark.parametrize("init", [ZeroInit, LearnedInit, BridgeInit])
@pytest.mark.parametrize("decoder_rnn", [nn.LSTM, nn.GRU])
def test_every_state_init_and_no_attention_train(init, decoder_rnn) -> None:
    model = build("bilstm", PackingStrategy(), decoder_rnn=decoder_rnn, init=init, attention=None).train()
    loss = sentence_nll(model(collate(PAIRS)), collate(PAIRS).tgt_out, collate(PAIRS).tgt_mask).mean()
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.decoder.init.parameters())


@pytest.mark.parametrize("share", [False, True])
def test_embedding_init_sets_the_scale_of_every_row_but_the_pad_row(share) -> None:
    decoder = partial(
        RecurrentDecoder, partial(nn.LSTM), hidden_size=6, init=BridgeInit, attention=LuongAttention
    )
    args = (ENCODERS["gru"], decoder, MaskingStrategy(), 500, 500)
    uniform = Seq2Seq(*args, embedding_dim=64, share_embeddings=share, embedding_init="uniform")
    normal = Seq2Seq(*args, embedding_dim=64, share_embeddings=share)
    for table in (uniform.src_embed, uniform.tgt_embed):
        rows = torch.cat([table.weight[:PAD_ID], table.weight[PAD_ID + 1 :]])
        assert not table.weight[PAD_ID].any() and rows.abs().max() <= 0.1 and rows.std() > 0.05
    assert normal.src_embed.weight.std() > 0.9  # PyTorch's N(0, 1)
    with pytest.raises(ValueError, match="embedding_init must be one of normal, uniform; got 'xavier'"):
        Seq2Seq(*args, embedding_init="xavier")


def test_param_init_draws_every_weight_but_the_embeddings_from_the_uniform_bound() -> None:
    decoder = partial(
        RecurrentDecoder, partial(nn.LSTM), hidden_size=64, init=BridgeInit, attention=LuongAttention
    )
    args = (ENCODERS["bilstm"], decoder, MaskingStrategy(), 500, 500)
    torch.manual_seed(0)  # the lower check below on 32-element biases would fail about once in 100 draws
    model = Seq2Seq(*args, embedding_dim=64, param_init=0.3)
    tables = {id(model.src_embed.weight), id(model.tgt_embed.weight)}
    others = [(name, p) for name, p in model.named_parameters() if id(p) not in tables]
    assert {name.split(".")[0] for name, _ in others} == {"encoder", "decoder", "generator"}
    # Biases too. PyTorch's own bounds would fail one check or the other: 1/sqrt(8) = 0.35 for the
    # encoder's LSTM (hidden 8) is above 0.3, 1/sqrt(64) = 0.125 for the decoder's is below 0.25.
    for name, parameter in others:
        assert parameter.abs().max() <= 0.3 and parameter.abs().max() > 0.25, name
    assert model.src_embed.weight.std() > 0.9  # the embeddings keep embedding_init's N(0, 1)
    default = Seq2Seq(*args, embedding_dim=64)
    assert default.generator.weight.abs().max() <= 1 / 64**0.5  # nn.Linear's own bound, 1/sqrt(in)
    with pytest.raises(ValueError, match="param_init must be a positive bound or null; got 0"):
        Seq2Seq(*args, param_init=0)


def test_param_init_leaves_the_attention_encoder_as_drawn_and_sets_the_decoder() -> None:
    """The Transformer layers keep their own init (`keeps_own_init`); the decoder and output layer take the bound."""
    decoder = partial(
        RecurrentDecoder, partial(nn.LSTM), hidden_size=64, init=BridgeInit, attention=LuongAttention
    )
    args = (ENCODERS["attention"], decoder, MaskingStrategy(), 500, 500)
    torch.manual_seed(0)
    own = Seq2Seq(*args, embedding_dim=64)
    torch.manual_seed(0)
    bounded = Seq2Seq(*args, embedding_dim=64, param_init=0.3)
    for (name, before), after in zip(
        own.encoder.named_parameters(), bounded.encoder.parameters(), strict=True
    ):
        assert torch.equal(before, after), name
    assert own.encoder.input_proj.weight.abs().max() > 0.3  # N(0, 1/64) draws beyond the bound: not redrawn
    for name, parameter in [*bounded.decoder.named_parameters(), *bounded.generator.named_parameters()]:
        assert parameter.abs().max() <= 0.3 and parameter.abs().max() > 0.25, name


def test_tied_embeddings_share_the_weight_and_check_sizes() -> None:
    decoder = partial(
        RecurrentDecoder, partial(nn.LSTM), hidden_size=6, init=BridgeInit, attention=LuongAttention
    )
    model = Seq2Seq(
        ENCODERS["gru"],
        decoder,
        PackingStrategy(),
        VOCAB,
        VOCAB,
        embedding_dim=6,
        share_embeddings=True,
        tie_embeddings=True,
    )
    assert model.generator.weight is model.tgt_embed.weight is model.src_embed.weight
    with pytest.raises(ValueError, match="tie_embeddings=true needs the decoder hidden size"):
        Seq2Seq(
            ENCODERS["gru"], decoder, PackingStrategy(), VOCAB, VOCAB, embedding_dim=8, tie_embeddings=True
        )
    with pytest.raises(ValueError, match="share_embeddings=true needs a joint vocabulary"):
        Seq2Seq(
            ENCODERS["gru"],
            decoder,
            PackingStrategy(),
            VOCAB,
            VOCAB + 1,
            embedding_dim=6,
            share_embeddings=True,
        )


def with_empty_source_row(batch: Batch) -> Batch:
    """`batch` with its first source row replaced by pads only (length 0): the edge a filter upstream can leave."""
    src, mask, lengths = batch.src.clone(), batch.src_mask.clone(), batch.src_lengths.clone()
    src[0], mask[0], lengths[0] = PAD_ID, False, 0
    return dataclasses.replace(batch, src=src, src_mask=mask, src_lengths=lengths)


@pytest.mark.parametrize(
    "strategy", [NaiveStrategy(), MaskingStrategy(), PackingStrategy(), StateResetStrategy()], ids=repr
)
@pytest.mark.parametrize("encoder", ["bilstm", "gru", "attention"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("empty_row", [False, True], ids=["full", "all-pad-source-row"])
def test_training_step_is_finite_under_autocast(encoder, strategy, dtype, empty_row) -> None:
    model = build(encoder, strategy, input_feeding=True).train()
    batch = collate(PAIRS)
    batch = with_empty_source_row(batch) if empty_row else batch
    with torch.autocast("cpu", dtype=dtype):
        loss = sentence_nll(model(batch), batch.tgt_out, batch.tgt_mask).sum() / batch.tgt_mask.sum()
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("strategy", [MaskingStrategy(), PackingStrategy(), StateResetStrategy()], ids=repr)
@pytest.mark.parametrize("encoder", ["bilstm", "gru", "attention"])
def test_an_all_pad_source_row_does_not_touch_the_others(encoder, strategy) -> None:
    model = build(encoder, strategy)
    batch = collate(PAIRS)
    full = sentence_nll(model(batch), batch.tgt_out, batch.tgt_mask)
    emptied = sentence_nll(model(with_empty_source_row(batch)), batch.tgt_out, batch.tgt_mask)
    assert torch.isfinite(emptied).all()
    torch.testing.assert_close(emptied[1:], full[1:], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("input_feeding", [False, True])
def test_the_output_layer_can_run_at_the_real_positions_only(input_feeding) -> None:
    model = build("bilstm", MaskingStrategy(), input_feeding=input_feeding)
    batch = collate(PAIRS)
    with torch.no_grad():
        full, gathered = model(batch), model(batch, batch.tgt_mask)
    assert gathered.shape == (int(batch.tgt_mask.sum()), VOCAB)
    assert torch.allclose(full[batch.tgt_mask], gathered, atol=1e-6)
