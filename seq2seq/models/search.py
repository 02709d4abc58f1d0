"""Decoding from a trained model (no Lightning here)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from seq2seq.data.vocab import BOS_ID, EOS_ID, PAD_ID
from seq2seq.models.seq2seq import Seq2Seq


@torch.no_grad()
def greedy_search(
    model: Seq2Seq, src: Tensor, src_lengths: Tensor, src_mask: Tensor, max_len_a: float = 1.5, max_len_b: int = 10
) -> list[list[int]]:
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
        One list of token ids per sentence, without bos and eos.
    """
    encoded = model.encode(src, src_lengths, src_mask)
    state = model.decoder.initial_state(encoded)
    limits = (max_len_a * src_lengths.to(src.device).float() + max_len_b).long()  # (B,)
    prev = torch.full_like(src_lengths, BOS_ID, device=src.device)
    done = torch.zeros_like(prev, dtype=torch.bool)
    tokens: list[Tensor] = []
    for step in range(int(limits.max())):
        logits, state, _ = model.decode_step(prev, state, encoded)
        token = logits.argmax(-1).masked_fill(done, PAD_ID)
        tokens.append(token)
        done = done | (token == EOS_ID) | (step + 1 >= limits)
        if bool(done.all()):
            break
        prev = token
    hypotheses = torch.stack(tokens, dim=1).tolist() if tokens else [[] for _ in range(src.size(0))]
    return [trim_at_eos(hyp) for hyp in hypotheses]


def trim_at_eos(ids: list[int]) -> list[int]:
    """Ids up to (not including) the first eos, without pads."""
    out = []
    for i in ids:
        if i == EOS_ID:
            break
        if i != PAD_ID:
            out.append(i)
    return out


@dataclass
class Hypothesis:
    """One finished beam.

    Attributes:
        tokens: target ids without bos and eos.
        score: sum of the token log-probabilities, eos included (the model score).
        normalized: `score` after the length penalty: what the n-best list is ranked by.
    """

    tokens: list[int]
    score: float
    normalized: float


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
) -> list[list[Hypothesis]]:
    """Batched beam search over the encoder memory.

    Every sentence keeps `beam_size` beams, ranked among themselves only, and a finished beam keeps its
    score and extends with pads, so a sentence's result depends neither on the rest of the batch nor on
    when the batch stops (it stops as soon as every beam has ended). With beam_size=1 this is greedy
    search. The length penalty ranks the final beams.

    Args:
        model: the seq2seq model (eval mode).
        src: (B, S) source ids; src_lengths (B,); src_mask (B, S).
        beam_size: beams per sentence.
        n_best: hypotheses returned per sentence (<= beam_size), best first.
        alpha: GNMT length penalty exponent (0: none).
        average: rank by the average log-probability per token instead.
        max_len_a: per-sentence limit slope: at most max_len_a * src_len + max_len_b tokens.
        max_len_b: per-sentence limit offset.
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
    normalized = (scores / length_penalty(lengths, alpha, average)).view(batch, beams)
    order = normalized.argsort(dim=1, descending=True)[:, :n_best]
    rows, raw, norm = history.tolist(), scores.view(batch, beams).tolist(), normalized.tolist()
    return [
        [Hypothesis(trim_at_eos(rows[b * beams + k]), raw[b][k], norm[b][k]) for k in order[b].tolist()]
        for b in range(batch)
    ]
