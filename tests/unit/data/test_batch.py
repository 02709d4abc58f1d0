"""Collating pairs into padded batches: special tokens, pads only after the tokens, pad fractions."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seq2seq.data.batch import collate
from seq2seq.data.vocab import BOS_ID, EOS_ID, PAD_ID


def test_collate_pads_and_adds_special_tokens() -> None:
    batch = collate([(4, [7, 8, 9], [10]), (2, [11], [12, 13, 14])])
    assert batch.src.tolist() == [[7, 8, 9, EOS_ID], [11, EOS_ID, PAD_ID, PAD_ID]]
    assert batch.src_lengths.tolist() == [4, 2]
    assert batch.src_mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert batch.tgt_in.tolist() == [[BOS_ID, 10, PAD_ID, PAD_ID], [BOS_ID, 12, 13, 14]]
    assert batch.tgt_out.tolist() == [[10, EOS_ID, PAD_ID, PAD_ID], [12, 13, 14, EOS_ID]]
    assert batch.tgt_lengths.tolist() == [2, 4]
    assert batch.indices.tolist() == [4, 2]
    assert batch.src_lengths.dtype == torch.long


def test_pad_fraction_counts_both_sides() -> None:
    batch = collate([(0, [7, 8, 9], [10]), (1, [11], [12, 13, 14])])
    # source 8 slots, 6 real; target 8 slots, 6 real
    assert batch.pad_fraction == 4 / 16
    assert batch.num_tgt_tokens == 6


def test_to_moves_every_tensor() -> None:
    batch = collate([(0, [7, 8], [9])]).to("meta")
    assert all(value.device.type == "meta" for value in vars(batch).values())


@settings(max_examples=60, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(st.lists(st.integers(4, 50), max_size=12), st.lists(st.integers(4, 50), max_size=12)),
        min_size=1,
        max_size=6,
    )
)
def test_collate_keeps_every_token_and_pads_only_after_it(pairs) -> None:
    """Random length mixes, empty sequences, a batch of one: each row holds its tokens, then eos, then pads."""
    batch = collate([(i, src, tgt) for i, (src, tgt) in enumerate(pairs)])
    for row, (src, tgt) in enumerate(pairs):
        assert batch.src[row, : len(src) + 1].tolist() == src + [EOS_ID]
        assert batch.tgt_in[row, : len(tgt) + 1].tolist() == [BOS_ID] + tgt
        assert batch.tgt_out[row, : len(tgt) + 1].tolist() == tgt + [EOS_ID]
        assert (batch.src[row, len(src) + 1 :] == PAD_ID).all() and (
            batch.tgt_out[row, len(tgt) + 1 :] == PAD_ID
        ).all()
    assert batch.src_lengths.tolist() == [len(s) + 1 for s, _ in pairs]
    assert batch.src_mask.sum(1).tolist() == batch.src_lengths.tolist()
    assert batch.tgt_mask.sum(1).tolist() == batch.tgt_lengths.tolist()
    assert batch.src.size(1) == max(len(s) for s, _ in pairs) + 1  # no all-pad column
    assert 0.0 <= batch.pad_fraction < 1.0
