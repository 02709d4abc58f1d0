"""Decoding from a trained model (no Lightning here)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from seq2seq.data.vocab import BOS_ID, EOS_ID, PAD_ID
from seq2seq.errors import InputError
from seq2seq.models.decoder import DecoderState
from seq2seq.models.encoder_output import EncoderOutput
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
    encoded: EncoderOutput | None = None,
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
        encoded: the batch's encoder output, if the caller has it already.

    Returns:
        One hypothesis per sentence: ids without bos and eos, and the sum of their log-probabilities
        (eos included; `normalized` is the same sum).
    """
    encoded = model.encode(src, src_lengths, src_mask) if encoded is None else encoded
    batch = src.size(0)
    limits = (max_len_a * src_lengths.to(src.device).float() + max_len_b).long()  # (B,)
    start = GreedyStart(
        model.decoder.initial_state(encoded),
        torch.full((batch,), BOS_ID, dtype=torch.long, device=src.device),
        [[] for _ in range(batch)],
        torch.zeros(batch, device=src.device),
        torch.zeros(batch, dtype=torch.long, device=src.device),
    )
    return [h for h in continue_greedy(model, encoded, start, limits) if h is not None]


@dataclass
class GreedyStart:
    """Greedy paths to go on with, one per row: where `continue_greedy` starts.

    Attributes:
        state: the decoder state after `prefix`.
        prev: (B,) the piece each path feeds next: its last, or bos.
        prefix: the piece ids each path has so far (no bos, no eos).
        score: (B,) the sum of their log-probabilities.
        steps: (B,) the pieces they scored.
    """

    state: DecoderState
    prev: Tensor
    prefix: list[list[int]]
    score: Tensor
    steps: Tensor


@torch.no_grad()
def continue_greedy(
    model: Seq2Seq,
    encoded: EncoderOutput,
    start: GreedyStart,
    limits: Tensor,
    stop_below: Tensor | None = None,
) -> list[Hypothesis | None]:
    """Greedy decoding of each row from `start` until eos or its length limit (`limits`, pieces in all).

    A row that has ended leaves the batch: the steps after it run on the rows still going. With
    `stop_below` (B,), a row whose score falls below its value is given up (None in its place): a
    score only falls as pieces are added, so the caller has said it could no longer use that path.
    """
    steps_left = limits - start.steps
    live = torch.arange(steps_left.size(0), device=steps_left.device)  # the rows still going
    width = max(int(steps_left.max()), 0) if steps_left.numel() else 0
    tokens = torch.full((live.size(0), width), PAD_ID, dtype=torch.long, device=live.device)
    scores, lengths = start.score.clone(), start.steps.clone()
    given_up = torch.zeros_like(live, dtype=torch.bool)
    state, prev, left = start.state, start.prev, steps_left
    if stop_below is not None:  # rows already below: never decoded
        given_up[:] = scores < stop_below
        going = (~given_up).nonzero().squeeze(1)
        width = width if going.numel() else 0
        live, left, prev = live[going], left[going], prev[going]
        state, encoded = state.select(going), encoded.select(going)
    with model.output_rows_fixed():  # one gather of the output layer's scored rows for every step
        for step in range(width):
            logits, state, _ = model.decode_step(prev, state, encoded)
            logits = logits.float()
            best, row = logits.max(dim=-1)  # over the scored pieces: the best logit is the best log-prob
            best = best - torch.logsumexp(logits, dim=-1)
            token = model.output_tokens(row)
            tokens[live, step], scores[live], lengths[live] = token, scores[live] + best, lengths[live] + 1
            done = (token == EOS_ID) | (step + 1 >= left)
            if stop_below is not None:
                below = ~done & (scores[live] < stop_below[live])
                given_up[live[below]] = True
                done = done | below
            if bool(done.all()):
                break
            if bool(done.any()):
                keep = (~done).nonzero().squeeze(1)
                live, left, token = live[keep], left[keep], token[keep]
                state, encoded = state.select(keep), encoded.select(keep)
            prev = token
    return [
        None if gave else Hypothesis(prefix + trim_at_eos(row), score, score, n)
        for prefix, row, score, n, gave in zip(
            start.prefix, tokens.tolist(), scores.tolist(), lengths.tolist(), given_up.tolist(), strict=True
        )
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
    With `include_greedy` the greedy hypothesis competes in the final ranking too, so the best
    hypothesis never ranks below greedy search's. While the greedy path is one of a sentence's live
    beams its next piece is that beam's best, which the search has computed already; a greedy path
    that the beams prune goes on greedily from there once the beams are done, together with the other
    such paths of the batch (see `Beams`), and is given up as soon as it can no longer rank among its
    sentence's `n_best`.

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
    follow = include_greedy and beam_size > 1
    with model.output_rows_fixed():  # one gather of the output layer's scored rows for every step
        beams = Beams(
            model, src, src_lengths, src_mask, beam_size, alpha, average, max_len_a, max_len_b, follow
        )
        while not beams.complete() and beams.steps < beams.max_steps:  # by its limit a sentence is complete
            beams.step()
        found = beams.ended
        greedy = beams.greedy_hypotheses(n_best) if follow else None
    if greedy is not None:
        for candidates, extra in zip(found, greedy, strict=True):
            if extra is not None and all(h.tokens != extra.tokens for h in candidates):
                extra.normalized = extra.score / beams.penalty(extra.length)
                candidates.append(extra)
    return [sorted(candidates, key=lambda h: h.normalized, reverse=True)[:n_best] for candidates in found]


class Beams:
    """The state of a batched beam search: live beams per sentence and the hypotheses that have ended.

    With `follow_greedy` it also tracks each sentence's greedy path while that path is one of its live
    beams (`greedy_beam`): the greedy piece is the followed beam's best, and the path stays live if
    that continuation is among the beams kept. A greedy path that ends (eos, or the length limit) while
    followed is complete (`greedy`); one that the beams prune, or that is still going when its sentence
    completes, keeps the state it has reached, and `greedy_hypotheses` decodes those paths on together.
    """

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
        follow_greedy: bool = False,
    ) -> None:
        self.model, self.size, self.alpha, self.average = model, size, alpha, average
        self.batch, device = src.size(0), src.device  # sentences in the live batch (fewer as they complete)
        self.memory = model.encode(src, src_lengths, src_mask)
        self.encoded = self.memory.repeat(size)
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
        # The greedy path of each live sentence: the live beam it is (-1: none) and its score so far.
        self.greedy_beam = torch.full(
            (self.batch,), 0 if follow_greedy else -1, dtype=torch.long, device=device
        )
        self.greedy_score = torch.zeros(self.batch, device=device)
        self.greedy: list[Hypothesis | None] = [None] * self.batch  # greedy paths ended while followed
        # Greedy paths the beams no longer follow, to go on with after the search: (sentence, GreedyStart)
        self.greedy_lost: list[tuple[int, GreedyStart]] = []
        self.all_limits = self.limits

    def complete(self) -> bool:
        return all(len(ended) >= self.size for ended in self.ended)

    def penalty(self, length: int) -> float:
        return float(length_penalty(torch.tensor([length]), self.alpha, self.average))

    def step(self) -> None:
        """Scores every continuation, sets aside those that end, keeps the best `size` that go on."""
        logits, self.state, _ = self.model.decode_step(self.prev, self.state, self.encoded)
        (top, parent, token), first = self._best_continuations(logits.float())
        self.steps += 1
        ends = (token == EOS_ID) | (self.steps >= self.limits)[:, None]
        self._set_aside(top, parent, token, ends)
        going_on = torch.argsort(ends.int(), dim=1, stable=True)[:, : self.size]  # the best that do not end
        kept_parent, kept_token = parent.gather(1, going_on), token.gather(1, going_on)
        self._follow_greedy(first, kept_parent, kept_token)
        rows = (torch.arange(self.batch, device=top.device)[:, None] * self.size + kept_parent).view(-1)
        self.scores = top.gather(1, going_on)
        self.prev = kept_token.view(-1)
        self.state = self.state.select(rows)
        self.history = torch.cat([self.history[rows], self.prev[:, None]], dim=1)
        self._drop_complete()

    def _best_continuations(
        self, logits: Tensor
    ) -> tuple[tuple[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]:
        """(B*K, V) logits -> each sentence's best 2K continuations: scores, parent beams, piece ids (B, 2K);
        and each beam's best piece id and its log-probability (B*K,), the greedy step from that beam.

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
        first = self.model.output_tokens(piece[:, 0]), log_probs[:, 0]
        return (top, flat // width, self.model.output_tokens(rows)), first

    def _follow_greedy(self, first: tuple[Tensor, Tensor], kept_parent: Tensor, kept_token: Tensor) -> None:
        """Moves each followed greedy path one piece on, from the best piece of the beam it is.

        Args:
            first: each beam's best piece id and its log-probability (B*K,).
            kept_parent: the parent beam of each beam kept for the next step (B, K).
            kept_token: the piece id of each beam kept (B, K).
        """
        followed = self.greedy_beam >= 0
        if not bool(followed.any()):
            return
        rows = torch.arange(self.batch, device=followed.device) * self.size + self.greedy_beam.clamp_min(0)
        piece, log_prob = first[0][rows], first[1][rows]
        self.greedy_score = self.greedy_score + log_prob
        ended = followed & ((piece == EOS_ID) | (self.steps >= self.limits))
        kept = (kept_parent == self.greedy_beam[:, None]) & (kept_token == piece[:, None])  # at most one
        going = followed & ~ended & kept.any(dim=1)
        if bool((followed & ~going).any()):
            for position in (followed & ~going).nonzero().squeeze(1).tolist():
                row = int(rows[position])
                ids, score = self.history[row].tolist() + [int(piece[position])], self.greedy_score[position]
                if bool(ended[position]):
                    self.greedy[self.live[position]] = Hypothesis(
                        trim_at_eos(ids), float(score), float(score), self.steps
                    )
                else:  # pruned from the beams: the path goes on from the state its beam has just reached
                    self._lose_greedy(position, self.state, row, piece[position : position + 1], ids)
        self.greedy_beam = torch.where(going, kept.int().argmax(dim=1), -1)

    def _lose_greedy(
        self, position: int, state: DecoderState, row: int, prev: Tensor, ids: list[int]
    ) -> None:
        """Keeps the greedy path of the sentence at `position`, no longer a live beam, to go on with later:
        it has reached `state`'s `row`, feeds `prev` next and holds `ids`."""
        start = GreedyStart(
            state.select(torch.tensor([row], device=prev.device)),
            prev,
            [ids],
            self.greedy_score[position : position + 1],
            torch.tensor([self.steps], device=prev.device),
        )
        self.greedy_lost.append((self.live[position], start))

    def _lose_followed_greedy(self, positions: list[int]) -> None:
        """The greedy paths still followed at `positions` go on after the search, from their beam's state."""
        for position in positions:
            beam = int(self.greedy_beam[position])
            if beam >= 0:
                row = position * self.size + beam
                self._lose_greedy(
                    position, self.state, row, self.prev[row : row + 1], self.history[row].tolist()
                )
                self.greedy_beam[position] = -1

    def greedy_hypotheses(self, n_best: int | None = None) -> list[Hypothesis | None]:
        """Each sentence's greedy hypothesis, once the search has stopped: the paths ended while followed,
        and the others (pruned, or still going when their sentence completed) decoded on from where the
        beams left them, all together.

        With `n_best`, a path decoded on is given up (None) once it cannot rank among its sentence's
        `n_best` ended hypotheses whatever it adds: its final score is at most its score so far, so its
        ranking score at most that over the length penalty of its length limit (`_stop_below`).
        Decoding them on took a sixth of the model's time in the server at 32 clients (py-spy). On 512
        Tatoeba test sentences in batches of 32 at beam 5, the beams pruned 270 greedy paths; 44 were
        given up, and decoding the rest on took 180 steps instead of 272 (the beams took 334), with the
        same translations.
        """
        self._lose_followed_greedy(list(range(self.batch)))
        if self.greedy_lost:
            lost = sorted(self.greedy_lost, key=lambda found: found[0])
            sentences = [sentence for sentence, _ in lost]
            starts = [start for _, start in lost]
            index = torch.tensor(sentences, device=self.all_limits.device)
            start = GreedyStart(
                DecoderState.cat([s.state for s in starts]),
                torch.cat([s.prev for s in starts]),
                [s.prefix[0] for s in starts],
                torch.cat([s.score for s in starts]),
                torch.cat([s.steps for s in starts]),
            )
            limits = self.all_limits[index]
            stop_below = None if n_best is None else self._stop_below(sentences, limits, n_best)
            found = continue_greedy(self.model, self.memory.select(index), start, limits, stop_below)
            for sentence, hypothesis in zip(sentences, found, strict=True):
                self.greedy[sentence] = hypothesis
            self.greedy_lost = []
        return list(self.greedy)

    def _stop_below(self, sentences: list[int], limits: Tensor, n_best: int) -> Tensor | None:
        """For the greedy paths of `sentences` (with these length limits): the score below which one can no
        longer rank above the `n_best`-th ended hypothesis of its sentence (-inf where fewer have ended), or
        None where the length penalty may shrink with length (a negative alpha) and no bound holds."""
        if not self.average and self.alpha < 0:
            return None
        floor = [
            sorted((h.normalized for h in self.ended[s]), reverse=True)[n_best - 1]
            if len(self.ended[s]) >= n_best
            else float("-inf")
            for s in sentences
        ]
        ceiling_divisor = length_penalty(limits, self.alpha, self.average)  # the largest it can reach
        # A margin, so that rounding can only keep a path that would not rank, never drop one that would.
        return torch.tensor(floor, device=limits.device) * ceiling_divisor - 1e-3

    def _drop_complete(self) -> None:
        """Takes the sentences with `size` ended hypotheses out of the live batch."""
        going = [i for i, sentence in enumerate(self.live) if len(self.ended[sentence]) < self.size]
        if len(going) == len(self.live) or not going:
            return
        keep = torch.tensor(going, device=self.scores.device)
        rows = (keep[:, None] * self.size + torch.arange(self.size, device=keep.device)).view(-1)
        self._lose_followed_greedy(sorted(set(range(len(self.live))) - set(going)))  # complete, greedy going
        self.live = [self.live[i] for i in going]
        self.batch = len(going)
        self.scores, self.limits = self.scores[keep], self.limits[keep]
        self.greedy_beam, self.greedy_score = self.greedy_beam[keep], self.greedy_score[keep]
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
