"""The output layer scores a subset of the target pieces: the same model on those, nothing else produced."""

from __future__ import annotations

import pytest
import torch
from tests_helpers import PAIRS, VOCAB, build

from seq2seq.data.batch import collate
from seq2seq.data.vocab import EOS_ID, UNK_ID
from seq2seq.models.loss import sentence_nll
from seq2seq.models.search import beam_search, greedy_search
from seq2seq.models.seq2seq import Seq2Seq
from seq2seq.padding import MaskingStrategy

SCORED = [1, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]  # PAIRS' targets use 5-15: 15 is left out


def scoring(ids: list[int] | None) -> Seq2Seq:
    model = build("bilstm", MaskingStrategy())
    if ids is not None:
        model._score_only(torch.tensor(ids), VOCAB)
    return model


def test_logits_are_the_full_layers_at_the_scored_pieces() -> None:
    full, subset = scoring(None), scoring(SCORED)
    batch = collate(PAIRS)
    with torch.no_grad():
        assert subset(batch).shape[-1] == len(SCORED) == subset.output_size
        assert torch.allclose(subset(batch), full(batch)[..., SCORED], atol=1e-6)


@pytest.mark.parametrize("fused", [True, False])
def test_each_search_scores_with_the_layer_as_it_is_then_and_training_still_reaches_it(fused: bool) -> None:
    """The rows a search gathers once are never reused by a later search: after an optimizer step
    (PyTorch's fused Adam updates in place without bumping the tensors' versions) a search sees the
    new weights, as validation inside `fit` must."""
    model = scoring(SCORED)
    hidden = torch.randn(3, model.generator.in_features)
    layer = model.generator
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1, fused=fused)
    with torch.no_grad(), model.output_rows_fixed():
        kept = model.project(hidden)
        assert torch.allclose(kept, layer(hidden)[:, SCORED], atol=1e-6)
    batch = collate(PAIRS)
    sentence_nll(*model.teacher_forced(batch, batch.tgt_mask), batch.tgt_mask).sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad[SCORED].abs().sum() > 0  # training reaches it
    optimizer.step()
    with torch.no_grad(), model.output_rows_fixed():
        assert torch.allclose(model.project(hidden), layer(hidden)[:, SCORED], atol=1e-6)
        assert not torch.allclose(model.project(hidden), kept, atol=1e-3)
        with model.output_rows_fixed():  # nested (beam search's greedy paths): the same rows
            assert torch.allclose(model.project(hidden), layer(hidden)[:, SCORED], atol=1e-6)
    before = [hypothesis.tokens for hypothesis in greedy_search(model, *search_inputs())]
    with torch.no_grad():
        layer.bias[6] += 100.0  # piece 6 now wins every step
    after = [hypothesis.tokens for hypothesis in greedy_search(model, *search_inputs())]
    assert after != before and all(set(tokens) == {6} for tokens in after)


def search_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    batch = collate(PAIRS)
    return batch.src, batch.src_lengths, batch.src_mask


def test_a_piece_not_scored_counts_as_unk_and_scored_ones_map_back_and_forth() -> None:
    model = scoring(SCORED)
    ids = torch.tensor([[5, 15, 3], [14, 1, 1]])
    rows = model.output_targets(ids)
    assert rows[0, 1] == SCORED.index(UNK_ID) and rows[1, 0] == SCORED.index(14)
    assert torch.equal(model.output_tokens(model.output_targets(torch.tensor(SCORED))), torch.tensor(SCORED))
    batch = collate(PAIRS)  # the second target ends in piece 15: scored at <unk>'s logit, a finite loss
    with torch.no_grad():
        logits, targets = model.teacher_forced(batch, batch.tgt_mask)
        losses = sentence_nll(logits, targets, batch.tgt_mask)
    assert targets[1, 6] == SCORED.index(UNK_ID) and bool(torch.isfinite(losses).all())


@pytest.mark.parametrize("beam", [1, 3])
def test_search_produces_only_scored_pieces(beam: int) -> None:
    model = scoring([UNK_ID, EOS_ID, 17])  # it may only say <unk> or 17, or stop
    with torch.no_grad():
        model.generator.bias[15] = 100.0  # the full layer would say 15 every time
        model.generator.bias[EOS_ID] = -100.0  # and never stop
    batch = collate(PAIRS)
    with torch.no_grad():
        if beam == 1:
            found = greedy_search(model, batch.src, batch.src_lengths, batch.src_mask)
        else:
            found = [
                b[0] for b in beam_search(model, batch.src, batch.src_lengths, batch.src_mask, beam_size=beam)
            ]
    tokens = {t for hypothesis in found for t in hypothesis.tokens}
    assert tokens <= {UNK_ID, 17} and tokens


def test_scored_pieces_travel_in_the_state_dict_and_bad_ones_are_refused() -> None:
    model = scoring(SCORED)
    assert torch.equal(model.state_dict()["output_ids"], torch.tensor(SCORED))
    assert "output_rows" not in model.state_dict()  # derived, not saved
    assert "output_ids" not in scoring(None).state_dict()  # old checkpoints load as they were
    for bad in ([2, 3, 5], [1, 3, 3, 5], [1, 3, VOCAB]):  # no <unk>, repeated, out of range
        with pytest.raises(ValueError, match="output_ids must be ascending"):
            scoring(bad)
