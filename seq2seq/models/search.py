"""Decoding from a trained model (no Lightning here)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from seq2seq.data.vocab import BOS_ID, EOS_ID, PAD_ID
from seq2seq.errors import InputError
from seq2seq.models.seq2seq import Seq2Seq

DEFAULT_BEAM_SIZE = 5  # the beam of seq2seq-translate, seq2seq-evaluate and seq2seq-serve unless chosen
DEFAULT_ALPHA = 1.0  # the length penalty users get unless they choose one (measured: README, "Beam search")
# A sentence of S source tokens produces at most MAX_LEN_A * S + MAX_LEN_B tokens (training's evaluation,
# the CLI flags and conf/model/seq2seq.yaml all take these).
DEFAULT_MAX_LEN_A = 1.5
DEFAULT_MAX_LEN_B = 10


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
    model: Seq2Seq,
    src: Tensor,
    src_lengths: Tensor,
    src_mask: Tensor,
    max_len_a: float = DEFAULT_MAX_LEN_A,
    max_len_b: int = DEFAULT_MAX_LEN_B,
) -> list[Hypothesis]:
    """Greedy decoding of a batch.

    Each sentence may produce at most `max_len_a * src_len + max_len_b` tokens, a limit that depends
    on the sentence alone, so that with an exact padding strategy its output does not depend on
    the batch it is decoded in. A sentence that has ended leaves the batch: the steps after it run
    on the sentences still going.

    Args:
        model: the seq2seq model (put it in eval mode first).
        src: (B, S) source ids.
        src_lengths: (B,) source lengths.
        src_mask: (B, S) True at real source tokens.
        max_len_a: length limit slope.
        max_len_b: length limit offset.

    Returns:
        One hypothesis per sentence: ids without bos and eos, and the sum of their log-probabilities
        (eos included; `normalized` is the same sum).
    """
    encoded = model.encode(src, src_lengths, src_mask)
    state = model.decoder.initial_state(encoded)
    all_limits = (max_len_a * src_lengths.to(src.device).float() + max_len_b).long()  # (B,)
    limits, live = all_limits, torch.arange(src.size(0), device=src.device)  # the sentences still going
    tokens = torch.full(
        (src.size(0), max(int(all_limits.max()), 0)), PAD_ID, dtype=torch.long, device=src.device
    )
    scores = torch.zeros(src.size(0), device=src.device)
    lengths = torch.zeros_like(live)
    prev = torch.full_like(live, BOS_ID)
    for step in range(tokens.size(1)):
        logits, state, _ = model.decode_step(prev, state, encoded)
        logits = logits.float()
        best, row = logits.max(dim=-1)  # over the scored pieces: the best logit is the best log-prob
        best = best - torch.logsumexp(logits, dim=-1)
        token = model.output_tokens(row)
        tokens[live, step], scores[live], lengths[live] = token, scores[live] + best, step + 1
        done = (token == EOS_ID) | (step + 1 >= limits)
        if bool(done.all()):
            break
        if bool(done.any()):
            keep = (~done).nonzero().squeeze(1)
            live, limits, token = live[keep], limits[keep], token[keep]
            state, encoded = state.select(keep), encoded.select(keep)
        prev = token
    return [
        Hypothesis(trim_at_eos(row), score, score, n)
        for row, score, n in zip(tokens.tolist(), scores.tolist(), lengths.tolist(), strict=True)
    ]


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
    max_len_a: float = DEFAULT_MAX_LEN_A,
    max_len_b: int = DEFAULT_MAX_LEN_B,
    include_greedy: bool = True,
) -> list[list[Hypothesis]]:
    """Batched beam search over the encoder memory, with finished hypotheses set aside.

    Every sentence keeps `beam_size` live beams. At each step the best 2 x beam_size continuations are
    ranked; those among the best beam_size that end (eos, or the sentence's length limit) are set
    aside with their length-normalised score, and the best beam_size that go on stay live. A
    sentence is complete once beam_size hypotheses have ended (as in fairseq): an ended hypothesis no
    longer takes a live beam's place, so a short early ending cannot crowd out longer ones that the
    length penalty would rank higher. Sentences are ranked among themselves only and a complete one
    takes nothing more, so a result depends neither on the rest of the batch nor on when it stops. A
    complete sentence leaves the batch, so that the steps after it run on the sentences still going.

    Plain beam search can prune the greedy path early and end with a lower score than greedy search.
    With `include_greedy` the greedy hypothesis (about 1/beam_size of the work) competes in the final
    ranking too, so the best hypothesis never ranks below greedy search's.

    Args:
        model: the seq2seq model (eval mode).
        src: (B, S) source ids.
        src_lengths: (B,) source lengths.
        src_mask: (B, S) True at real source tokens.
        beam_size: beams per sentence (1: greedy search).
        n_best: hypotheses returned per sentence (<= beam_size), best first.
        alpha: GNMT length penalty exponent (0: none): ranks the ended hypotheses.
        average: rank by the average log-probability per token instead.
        max_len_a: per-sentence limit slope: at most max_len_a * src_len + max_len_b tokens.
        max_len_b: per-sentence limit offset.
        include_greedy: let the greedy hypothesis compete in the final ranking.
    """
    if not 1 <= n_best <= beam_size:
        raise InputError(f"n_best ({n_best}) must be between 1 and beam_size ({beam_size})")
    beams = Beams(model, src, src_lengths, src_mask, beam_size, alpha, average, max_len_a, max_len_b)
    while not beams.complete() and beams.steps < beams.max_steps:  # by its limit a sentence is complete
        beams.step()
    found = beams.ended
    if include_greedy and beam_size > 1:
        greedy = greedy_search(model, src, src_lengths, src_mask, max_len_a, max_len_b)
        for candidates, extra in zip(found, greedy, strict=True):
            if all(h.tokens != extra.tokens for h in candidates):
                extra.normalized = extra.score / beams.penalty(extra.length)
                candidates.append(extra)
    return [sorted(candidates, key=lambda h: h.normalized, reverse=True)[:n_best] for candidates in found]


class Beams:
    """The state of a batched beam search: live beams per sentence and the hypotheses that have ended."""

    def __init__(
        self,
        model: Seq2Seq,
        src: Tensor,
        src_lengths: Tensor,
        src_mask: Tensor,
        size: int,
        alpha: float,
        average: bool,
        max_len_a: float,
        max_len_b: int,
    ) -> None:
        self.model, self.size, self.alpha, self.average = model, size, alpha, average
        self.batch, device = src.size(0), src.device  # sentences in the live batch (fewer as they complete)
        self.encoded = model.encode(src, src_lengths, src_mask).repeat(size)
        self.state = model.decoder.initial_state(self.encoded)
        self.limits = (max_len_a * src_lengths.to(device).float() + max_len_b).long()  # (B,)
        self.max_steps = int(self.limits.max())
        self.scores = torch.full((self.batch, size), float("-inf"), device=device)
        self.scores[:, 0] = 0.0  # all beams start identical: expand only the first
        self.prev = torch.full((self.batch * size,), BOS_ID, dtype=torch.long, device=device)
        self.history = self.prev.new_zeros(self.batch * size, 0)
        self.ended: list[list[Hypothesis]] = [[] for _ in range(self.batch)]
        self.live = list(range(self.batch))  # the sentences still searching, by their row in the batch
        self.steps = 0

    def complete(self) -> bool:
        return all(len(ended) >= self.size for ended in self.ended)

    def penalty(self, length: int) -> float:
        return float(length_penalty(torch.tensor([length]), self.alpha, self.average))

    def step(self) -> None:
        """Scores every continuation, sets aside those that end, keeps the best `size` that go on."""
        logits, self.state, _ = self.model.decode_step(self.prev, self.state, self.encoded)
        top, parent, token = self._best_continuations(logits.float())
        self.steps += 1
        ends = (token == EOS_ID) | (self.steps >= self.limits)[:, None]
        self._set_aside(top, parent, token, ends)
        going_on = torch.argsort(ends.int(), dim=1, stable=True)[:, : self.size]  # the best that do not end
        rows = (
            torch.arange(self.batch, device=top.device)[:, None] * self.size + parent.gather(1, going_on)
        ).view(-1)
        self.scores = top.gather(1, going_on)
        self.prev = token.gather(1, going_on).view(-1)
        self.state = self.state.select(rows)
        self.history = torch.cat([self.history[rows], self.prev[:, None]], dim=1)
        self._drop_complete()

    def _best_continuations(self, logits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B*K, V) logits -> each sentence's best 2K continuations: scores, parent beams, piece ids (B, 2K).

        A sentence's best 2K over all its K x V continuations are among each beam's own best 2K, and a
        log-softmax only shifts a beam's row by its log-sum-exp, so the row's best pieces are its best
        logits. The ranking thus runs on each beam's top 2K logits, not on a full (B, K x V) tensor of
        log-probabilities: the same continuations with a fraction of the memory traffic per step.
        """
        width = min(2 * self.size, logits.size(-1))
        best, piece = logits.topk(width, dim=-1)  # (B*K, 2K), each beam's best pieces
        log_probs = best - torch.logsumexp(logits, dim=-1, keepdim=True)
        candidates = (self.scores.view(-1, 1) + log_probs).view(self.batch, self.size * width)
        top, flat = candidates.topk(min(2 * self.size, candidates.size(1)), dim=1)  # (B, 2K), best first
        rows = piece.view(self.batch, self.size * width).gather(1, flat)
        return top, flat // width, self.model.output_tokens(rows)

    def _drop_complete(self) -> None:
        """Takes the sentences with `size` ended hypotheses out of the live batch."""
        going = [i for i, sentence in enumerate(self.live) if len(self.ended[sentence]) < self.size]
        if len(going) == len(self.live) or not going:
            return
        keep = torch.tensor(going, device=self.scores.device)
        rows = (keep[:, None] * self.size + torch.arange(self.size, device=keep.device)).view(-1)
        self.live = [self.live[i] for i in going]
        self.batch = len(going)
        self.scores, self.limits = self.scores[keep], self.limits[keep]
        self.prev, self.history = self.prev[rows], self.history[rows]
        self.state, self.encoded = self.state.select(rows), self.encoded.select(rows)

    def _set_aside(self, top: Tensor, parent: Tensor, token: Tensor, ends: Tensor) -> None:
        """Ended continuations among each sentence's best `size` join its hypotheses, until it has `size`."""
        best = slice(0, self.size)
        rows = zip(
            top[:, best].tolist(),
            parent[:, best].tolist(),
            token[:, best].tolist(),
            ends[:, best].tolist(),
            strict=True,
        )
        for position, (scores, parents, tokens, ended) in enumerate(rows):
            sentence = self.live[position]
            for score, beam, token_id, stop in zip(scores, parents, tokens, ended, strict=True):
                if not stop or score == float("-inf") or len(self.ended[sentence]) >= self.size:
                    continue
                ids = self.history[position * self.size + beam].tolist() + [token_id]
                length = self.steps  # tokens scored, the eos included
                self.ended[sentence].append(
                    Hypothesis(trim_at_eos(ids), score, score / self.penalty(length), length)
                )
