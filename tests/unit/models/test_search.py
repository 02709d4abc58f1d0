"""Beam search: greedy at beam 1, batch-invariant, n-best ordered, length-limited, safe in bf16."""

from __future__ import annotations

import pytest
import torch
from tests_helpers import PAIRS, build

from seq2seq.data.batch import collate
from seq2seq.models.search import Beams, beam_search, greedy_search, length_penalty
from seq2seq.padding import MaskingStrategy, PackingStrategy, StateResetStrategy


@pytest.mark.parametrize(
    "encoder,strategy",
    [("bilstm", PackingStrategy()), ("attention", MaskingStrategy()), ("gru", StateResetStrategy())],
    ids=str,
)
@pytest.mark.parametrize("input_feeding", [False, True])
def test_beam_size_one_is_greedy(encoder, strategy, input_feeding) -> None:
    model = build(encoder, strategy, input_feeding=input_feeding)
    batch = collate(PAIRS)
    greedy = greedy_search(model, batch.src, batch.src_lengths, batch.src_mask)
    beam = beam_search(model, batch.src, batch.src_lengths, batch.src_mask, beam_size=1)
    assert [found[0].tokens for found in beam] == [h.tokens for h in greedy]
    assert [found[0].score for found in beam] == pytest.approx([h.score for h in greedy], abs=1e-5)


@pytest.mark.parametrize("encoder", ["bilstm", "attention"])
@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_never_ranks_below_greedy(encoder, alpha) -> None:
    model = build(encoder, PackingStrategy())
    batch = collate(PAIRS)
    greedy = greedy_search(model, batch.src, batch.src_lengths, batch.src_mask)
    beam = beam_search(model, batch.src, batch.src_lengths, batch.src_mask, beam_size=3, alpha=alpha)
    penalty = length_penalty(torch.tensor([h.length for h in greedy]), alpha, average=False).tolist()
    assert all(b[0].normalized >= g.score / p - 1e-5 for b, g, p in zip(beam, greedy, penalty, strict=True))


def test_the_greedy_path_read_off_the_beams_is_greedy_search() -> None:
    """Beam search's greedy hypothesis (followed while a live beam, decoded on from where the beams left
    it once pruned or once its sentence completes) is greedy search's, whichever way each sentence took."""
    followed = lost = 0
    for encoder, strategy in [
        ("bilstm", StateResetStrategy()),
        ("attention", MaskingStrategy()),
        ("gru", PackingStrategy()),
    ]:
        model = build(encoder, strategy, input_feeding=True)
        batch = collate(PAIRS)
        expected = greedy_search(model, batch.src, batch.src_lengths, batch.src_mask)
        for size in (2, 5):
            beams = Beams(
                model, batch.src, batch.src_lengths, batch.src_mask, size, 1.0, False, 1.5, 10, True
            )
            with torch.no_grad():
                while not beams.complete() and beams.steps < beams.max_steps:
                    beams.step()
                ended_while_followed = sum(h is not None for h in beams.greedy)
                found = beams.greedy_hypotheses()
            followed, lost = followed + ended_while_followed, lost + len(found) - ended_while_followed
            assert [(h.tokens, h.length) for h in found] == [(h.tokens, h.length) for h in expected]
            assert [h.score for h in found] == pytest.approx([h.score for h in expected], abs=1e-5)
    assert followed > 0 and lost > 0  # both ways are exercised


@pytest.mark.parametrize(
    "encoder,strategy", [("bilstm", StateResetStrategy()), ("attention", MaskingStrategy())], ids=str
)
def test_beam_output_and_scores_do_not_depend_on_the_batch(encoder, strategy) -> None:
    model = build(encoder, strategy, input_feeding=True)
    batch = collate(PAIRS)
    together = beam_search(
        model, batch.src, batch.src_lengths, batch.src_mask, beam_size=4, n_best=4, alpha=0.6
    )
    for pair, found in zip(PAIRS, together, strict=True):
        single = collate([pair])
        alone = beam_search(
            model, single.src, single.src_lengths, single.src_mask, beam_size=4, n_best=4, alpha=0.6
        )[0]
        assert [h.tokens for h in alone] == [h.tokens for h in found]
        assert [h.score for h in alone] == pytest.approx([h.score for h in found], abs=1e-4)


def test_a_complete_sentence_leaves_the_batch_and_the_rest_search_on() -> None:
    model = build("bilstm", StateResetStrategy(), input_feeding=True)
    batch = collate(PAIRS)  # sources of several lengths: their length limits end them at other steps
    beams = Beams(model, batch.src, batch.src_lengths, batch.src_mask, 3, 0.0, False, 1.5, 10)
    live = [len(beams.live)]
    while not beams.complete() and beams.steps < beams.max_steps:
        beams.step()
        live.append(len(beams.live))
        assert beams.state.h[0].size(0) == beams.prev.size(0) == len(beams.live) * 3
    assert live[0] == len(PAIRS) and 1 <= min(live) < len(PAIRS), live
    assert live == sorted(live, reverse=True)


def test_n_best_is_ranked_by_normalised_score_and_respects_the_length_limit() -> None:
    model = build("bilstm", PackingStrategy())
    batch = collate(PAIRS)
    found = beam_search(
        model,
        batch.src,
        batch.src_lengths,
        batch.src_mask,
        beam_size=5,
        n_best=3,
        average=True,
        max_len_a=0.5,
        max_len_b=2,
    )
    for hypotheses, source_length in zip(found, batch.src_lengths.tolist(), strict=True):
        assert len(hypotheses) == 3
        assert [h.normalized for h in hypotheses] == sorted((h.normalized for h in hypotheses), reverse=True)
        assert all(len(h.tokens) <= 0.5 * source_length + 2 for h in hypotheses)
        assert all(h.score <= 0 for h in hypotheses)


def test_length_penalties() -> None:
    lengths = torch.tensor([1, 7])
    assert torch.equal(length_penalty(lengths, 0.0, average=False), torch.ones(2))
    assert torch.allclose(length_penalty(lengths, 1.0, average=False), torch.tensor([1.0, 2.0]))
    assert torch.equal(length_penalty(lengths, 0.0, average=True), torch.tensor([1.0, 7.0]))


def test_n_best_cannot_exceed_the_beam() -> None:
    model = build("gru", PackingStrategy())
    batch = collate(PAIRS)
    with pytest.raises(ValueError, match="n_best"):
        beam_search(model, batch.src, batch.src_lengths, batch.src_mask, beam_size=2, n_best=3)


@pytest.mark.parametrize(
    "encoder,strategy",
    [("bilstm", PackingStrategy()), ("bilstm", StateResetStrategy()), ("attention", MaskingStrategy())],
    ids=str,
)
def test_search_under_bf16_autocast_keeps_its_guarantees(encoder, strategy) -> None:
    """In bf16 too: beam 1 is greedy, scores are finite log-probabilities, outputs respect the length limit."""
    model = build(encoder, strategy)
    batch = collate(PAIRS)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        found = beam_search(model, batch.src, batch.src_lengths, batch.src_mask, beam_size=3, n_best=3)
        one = beam_search(model, batch.src, batch.src_lengths, batch.src_mask, beam_size=1)
        greedy = greedy_search(model, batch.src, batch.src_lengths, batch.src_mask)
    assert [hypotheses[0].tokens for hypotheses in one] == [h.tokens for h in greedy]
    limits = (1.5 * batch.src_lengths + 10).tolist()
    for hypotheses, limit in zip(found, limits, strict=True):
        scores = torch.tensor([h.score for h in hypotheses])
        assert len(hypotheses) == 3 and torch.isfinite(scores).all() and (scores <= 0).all()
        assert all(len(h.tokens) <= limit for h in hypotheses)


@pytest.mark.gpu
@pytest.mark.parametrize(
    "encoder,strategy",
    [("bilstm", PackingStrategy()), ("bilstm", StateResetStrategy()), ("attention", MaskingStrategy())],
    ids=str,
)
def test_search_on_cuda_runs_in_bf16_and_greedy_fp32_agrees_with_the_cpu(encoder, strategy) -> None:
    model = build(encoder, strategy).cuda()
    batch = collate(PAIRS)
    cuda = batch.to("cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        found = beam_search(model, cuda.src, cuda.src_lengths, cuda.src_mask, beam_size=3)
    assert len(found) == len(PAIRS) and all(torch.isfinite(torch.tensor(h[0].score)) for h in found)
    greedy_cpu = greedy_search(model.cpu(), batch.src, batch.src_lengths, batch.src_mask)
    model.cuda()
    greedy_cuda = greedy_search(model, cuda.src, cuda.src_lengths, cuda.src_mask)
    assert [h.tokens for h in greedy_cuda] == [h.tokens for h in greedy_cpu]  # fp32 on both devices


def ranked_with_every_greedy_path(model, batch, size: int, n_best: int, alpha: float, average: bool):
    """beam_search's n-best lists as they were before greedy paths could be given up: every pruned greedy
    path decoded on to its end and ranked with the beams' hypotheses."""
    beams = Beams(model, batch.src, batch.src_lengths, batch.src_mask, size, alpha, average, 1.5, 10, True)
    with torch.no_grad():
        while not beams.complete() and beams.steps < beams.max_steps:
            beams.step()
        extras = beams.greedy_hypotheses()
    found = []
    for candidates, extra in zip(beams.ended, extras, strict=True):
        if all(h.tokens != extra.tokens for h in candidates):
            extra.normalized = extra.score / beams.penalty(extra.length)
            candidates = [*candidates, extra]
        found.append(sorted(candidates, key=lambda h: h.normalized, reverse=True)[:n_best])
    return found


def test_giving_up_greedy_paths_that_cannot_rank_changes_no_n_best_list() -> None:
    """A pruned greedy path is decoded on only while it could still rank among its sentence's n best; the
    lists are those of decoding every one to its end, and some paths were given up on the way."""
    given_up = 0
    for encoder, strategy in [("bilstm", StateResetStrategy()), ("attention", MaskingStrategy())]:
        model = build(encoder, strategy, input_feeding=True)
        with (
            torch.no_grad()
        ):  # peaked output distributions: pruned greedy paths fall far behind, as trained ones do
            model.generator.weight.mul_(10)
            model.generator.bias.mul_(10)
        batch = collate(PAIRS)
        for size, n_best, alpha, average in [
            (5, 1, 1.0, False),
            (4, 2, 0.0, False),
            (3, 3, 0.6, False),
            (5, 1, 0.0, True),
        ]:
            expected = ranked_with_every_greedy_path(model, batch, size, n_best, alpha, average)
            found = beam_search(
                model, batch.src, batch.src_lengths, batch.src_mask, size, n_best, alpha, average, 1.5, 10
            )
            assert [[h.tokens for h in hs] for hs in found] == [[h.tokens for h in hs] for hs in expected]
            assert [[h.normalized for h in hs] for hs in found] == [
                [h.normalized for h in hs] for hs in expected
            ]
            beams = Beams(
                model, batch.src, batch.src_lengths, batch.src_mask, size, alpha, average, 1.5, 10, True
            )
            with torch.no_grad():
                while not beams.complete() and beams.steps < beams.max_steps:
                    beams.step()
                given_up += sum(h is None for h in beams.greedy_hypotheses(n_best))
    assert given_up > 0  # the bound does prune here
