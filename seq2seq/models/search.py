"""Decoding from a trained model (no Lightning here)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from seq2seq.data.vocab import BOS_ID, EOS_ID, PAD_ID
from seq2seq.models.seq2seq import Seq2Seq


@dataclass
class Hypothesis:
    """One finished beam.

    Attributes:
        tokens: target ids without bos and eos.
        score: sum of the token log-probabilities, eos included (the model score).
        normalized: `score` after the length penalty: what the n-best list is ranked by.
        length: tokens scored: `tokens` plus the eos, unless the length limit cut the hypothesis first.
    """

    tokens: list[int]
    score: float
    normalized: float
    length: int


@torch.no_grad()
def greedy_search(
    model: Seq2Seq, src: Tensor, src_lengths: Tensor, src_mask: Tensor, max_len_a: float = 1.5, max_len_b: int = 10
) -> list[Hypothesis]:
    """Greedy decoding of a batch.

    Each sentence may produce at most `max_len_a * src_len + max_len_b` tokens, a limit that depends
    on the sentence alone, so that with an exact padding strategy its output does not depend on
    the batch it is decoded in.

    Args:
        model: the seq2seq model (put it in eval mode first).
        src: (B, S) source ids; src_lengths (B,); src_mask (B, S).
        max_len_a: length limit slope.
        max_len_b: length limit offset.

    Returns:
        One hypothesis per sentence: ids without bos and eos, and the sum of their log-probabilities
        (eos included; `normalized` is the same sum).
    """
    encoded = model.encode(src, src_lengths, src_mask)
    state = model.decoder.initial_state(encoded)
    limits = (max_len_a * src_lengths.to(src.device).float() + max_len_b).long()  # (B,)
    prev = torch.full_like(limits, BOS_ID)
    done = torch.zeros_like(prev, dtype=torch.bool)
    scores = torch.zeros(prev.shape, device=src.device)
    lengths = torch.zeros_like(prev)
    tokens: list[Tensor] = []
    for step in range(int(limits.max())):
        logits, state, _ = model.decode_step(prev, state, encoded)
        log_probs = torch.log_softmax(logits.float(), dim=-1)  # (B, V)
        best, token = log_probs.max(dim=-1)
        scores = scores + best.masked_fill(done, 0.0)
        lengths = lengths + (~done).long()
        token = token.masked_fill(done, PAD_ID)
        tokens.append(token)
        done = done | (token == EOS_ID) | (step + 1 >= limits)
        if bool(done.all()):
            break
        prev = token
    rows = torch.stack(tokens, dim=1).tolist() if tokens else [[] for _ in range(src.size(0))]
    return [Hypothesis(trim_at_eos(row), score, score, n) for row, score, n in zip(rows, scores.tolist(), lengths.tolist())]


def trim_at_eos(ids: list[int]) -> list[int]:
    """Ids up to (not including) the first eos, without pads."""
    out = []
    for i in ids:
        if i == EOS_ID:
            break
        if i != PAD_ID:
            out.append(i)
    return out


def length_penalty(lengths: Tensor, alpha: float, average: bool) -> Tensor:
    """Divisor of a hypothesis score: its length (`average`), GNMT's ((5 + len) / 6) ** alpha, or 1."""
    lengths = lengths.float().clamp_min(1)
    return lengths if average else ((5.0 + lengths) / 6.0) ** alpha


@torch.no_grad()
def beam_search(
    model: Seq2Seq,
    src: Tensor,
    src_lengths: Tensor,
    src_mask: Tensor,
    beam_size: int = 5,
    n_best: int = 1,
    alpha: float = 0.0,
    average: bool = False,
    max_len_a: float = 1.5,
    max_len_b: int = 10,
    include_greedy: bool = True,
) -> list[list[Hypothesis]]:
    """Batched beam search over the encoder memory.

    Every sentence keeps `beam_size` beams, ranked among themselves only, and a finished beam keeps its
    score and extends with pads, so a sentence's result depends neither on the rest of the batch nor on
    when the batch stops (it stops as soon as every beam has ended). With beam_size=1 this is greedy
    search. The length penalty ranks the final beams.

    Plain beam search can prune the greedy path early and end with a lower score than greedy search.
    With `include_greedy` the greedy hypothesis (about 1/beam_size of the work) competes in the final
    ranking too, so the best hypothesis never ranks below greedy search's.

    Args:
        model: the seq2seq model (eval mode).
        src: (B, S) source ids; src_lengths (B,); src_mask (B, S).
        beam_size: beams per sentence.
        n_best: hypotheses returned per sentence (<= beam_size), best first.
        alpha: GNMT length penalty exponent (0: none).
        average: rank by the average log-probability per token instead.
        max_len_a: per-sentence limit slope: at most max_len_a * src_len + max_len_b tokens.
        max_len_b: per-sentence limit offset.
        include_greedy: let the greedy hypothesis compete in the final ranking.
    """
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best ({n_best}) must be between 1 and beam_size ({beam_size})")
    batch, beams = src.size(0), beam_size
    device = src.device
    encoded = model.encode(src, src_lengths, src_mask).repeat(beams)
    state = model.decoder.initial_state(encoded)
    limits = (max_len_a * src_lengths.to(device).float() + max_len_b).long().repeat_interleave(beams)  # (B*K,)
    scores = torch.full((batch, beams), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: expand only the first
    scores = scores.view(-1)
    prev = torch.full((batch * beams,), BOS_ID, dtype=torch.long, device=device)
    done = torch.zeros_like(prev, dtype=torch.bool)
    lengths = torch.zeros_like(prev)
    history = prev.new_zeros(batch * beams, 0)
    for step in range(int(limits.max())):
        logits, state, _ = model.decode_step(prev, state, encoded)
        log_probs = torch.log_softmax(logits.float(), dim=-1)  # (B*K, V)
        log_probs[done] = float("-inf")
        log_probs[done, PAD_ID] = 0.0  # an ended beam carries its score unchanged
        vocab = log_probs.size(-1)
        top, flat_choice = (scores[:, None] + log_probs).view(batch, beams * vocab).topk(beams, dim=1)  # (B, K)
        parent = (torch.arange(batch, device=device)[:, None] * beams + flat_choice // vocab).view(-1)
        token = (flat_choice % vocab).view(-1)
        state, done, lengths = state.select(parent), done[parent], lengths[parent]
        history = torch.cat([history[parent], token[:, None]], dim=1)
        lengths = lengths + (~done).long()
        done = done | (token == EOS_ID) | (step + 1 >= limits)
        scores, prev = top.view(-1), token
        if bool(done.all()):
            break
    normalized = (scores / length_penalty(lengths, alpha, average)).tolist()
    rows, raw, counts = history.tolist(), scores.tolist(), lengths.tolist()
    found = [
        [Hypothesis(trim_at_eos(rows[i]), raw[i], normalized[i], counts[i]) for i in range(b * beams, (b + 1) * beams)]
        for b in range(batch)
    ]
    if include_greedy and beams > 1:
        greedy = greedy_search(model, src, src_lengths, src_mask, max_len_a, max_len_b)
        for candidates, extra in zip(found, greedy):
            if all(h.tokens != extra.tokens for h in candidates):
                extra.normalized = extra.score / float(length_penalty(torch.tensor([extra.length]), alpha, average))
                candidates.append(extra)
    return [sorted(candidates, key=lambda h: h.normalized, reverse=True)[:n_best] for candidates in found]
