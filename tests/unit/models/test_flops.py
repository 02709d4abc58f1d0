"""The FLOP estimate behind `train/pad_compute_fraction`: what each layer runs, at real and pad positions."""

from __future__ import annotations

import pytest
from tests_helpers import PAIRS, build
from torch import nn

from seq2seq.data.batch import collate
from seq2seq.models.attention import BahdanauAttention
from seq2seq.models.flops import dense_flops
from seq2seq.padding import MaskingStrategy, NaiveStrategy, PackingStrategy
from seq2seq.padding.fused import packed_positions


def test_dense_flops_are_twice_the_weight_matrices_per_position() -> None:
    lstm = nn.LSTM(
        6, 8
    )  # 4 gates of 8: (32 x 6) input and (32 x 8) recurrent weights; biases add no products
    assert dense_flops(lstm) == 2 * (32 * 6 + 32 * 8)
    assert dense_flops(nn.Embedding(100, 8)) == 0


@pytest.mark.parametrize("encoder", ["bilstm", "attention"])
def test_a_batch_without_pads_spends_nothing_on_pads(encoder) -> None:
    batch = collate([(0, [5, 6, 7], [8, 9]), (1, [7, 8, 9], [5, 6])])
    flops = build(encoder, MaskingStrategy()).flops(batch)
    assert flops.total > 0 and flops.pad == 0


def test_every_layer_counts_its_pads() -> None:
    """One padded batch, by hand: the output layer and the encoder RNN depend on the strategy."""
    batch = collate(PAIRS)
    slots_src, real_src = batch.src.numel(), int(batch.src_lengths.sum())
    slots_tgt, real_tgt = batch.tgt_out.numel(), int(batch.tgt_lengths.sum())
    masking, packing, naive = (
        build("bilstm", s) for s in (MaskingStrategy(), PackingStrategy(), NaiveStrategy())
    )
    rnn, output = dense_flops(masking.encoder.rnn), dense_flops(masking.generator)
    packed = packed_positions(batch.src_lengths)  # lengths 3, 11, 1, 6: pieces merged where a call costs more
    assert real_src <= packed < slots_src
    assert masking.flops(batch).pad - packing.flops(batch).pad == pytest.approx(rnn * (slots_src - packed))
    assert naive.flops(batch).pad - masking.flops(batch).pad == pytest.approx(output * (slots_tgt - real_tgt))
    assert 0 < packing.flops(batch).pad_fraction < masking.flops(batch).pad_fraction < 1


def test_attention_pairs_count_padded_queries_and_keys() -> None:
    batch = collate(PAIRS)
    model = build("bilstm", PackingStrategy(), attention=BahdanauAttention)
    attention = model.decoder.attention
    pairs = batch.tgt_out.numel() * batch.src.size(1)
    real = int((batch.tgt_lengths * batch.src_lengths).sum())
    found = attention.flops(batch.tgt_lengths, batch.tgt_out.size(1), batch.src_lengths, batch.src.size(1))
    queries = dense_flops(attention.query_proj) * (batch.tgt_out.numel() - int(batch.tgt_lengths.sum()))
    keys = dense_flops(attention.key_proj) * (batch.src.numel() - int(batch.src_lengths.sum()))
    assert found.pad == pytest.approx(queries + keys + attention.pair_flops * (pairs - real))
