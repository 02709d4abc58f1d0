"""Translating and scoring raw text with a trained model, in length-bucketed batches."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from seq2seq.data.batch import Batch, collate
from seq2seq.data.vocab import Vocabs
from seq2seq.errors import InputError
from seq2seq.models.loss import sentence_nll
from seq2seq.models.search import Hypothesis, beam_search
from seq2seq.models.seq2seq import Seq2Seq


class Translator:
    """Applies a model's own sentencepiece models, batches by length, and restores input order.

    Args:
        net: the model, in eval mode, on `device`.
        vocabs: its vocabularies.
        device: where batches go.
        batch_size: sentences per batch.
    """

    def __init__(
        self, net: Seq2Seq, vocabs: Vocabs, device: str | torch.device = "cpu", batch_size: int = 64
    ) -> None:
        self.net, self.vocabs = net, vocabs
        self.device = torch.device(device)
        self.batch_size = batch_size

    def _batches(self, src_ids: list[list[int]], tgt_ids: list[list[int]]) -> Iterator[Batch]:
        """Batches of similar source length; `Batch.indices` holds the input positions."""
        order = sorted(range(len(src_ids)), key=lambda i: (len(src_ids[i]), len(tgt_ids[i])))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            yield collate([(i, src_ids[i], tgt_ids[i]) for i in chunk]).to(self.device)

    def translate(
        self, lines: list[str], beam_size: int = 5, n_best: int = 1, **search: float
    ) -> list[list[tuple[str, Hypothesis]]]:
        """Detokenized n-best translations of each line, in input order; an empty line gets n_best empty ones.

        Args:
            lines: raw source sentences.
            beam_size: beams per sentence (1: greedy).
            n_best: hypotheses per line.
            **search: further `beam_search` arguments (alpha, average, max_len_a, max_len_b).
        """
        real = [i for i, line in enumerate(lines) if line.strip()]
        src_ids: list[list[int]] = [[] for _ in lines]
        for i, ids in zip(real, self.vocabs.src.encode([lines[i] for i in real]), strict=True):
            src_ids[i] = ids
        return self.translate_ids(src_ids, beam_size, n_best, **search)

    def translate_ids(
        self, src_ids: list[list[int]], beam_size: int = 5, n_best: int = 1, **search: float
    ) -> list[list[tuple[str, Hypothesis]]]:
        """`translate` of sentences already encoded with the source vocabulary (the server encodes each
        once, to check its length); an empty one gets n_best empty translations."""
        results: list[list[tuple[str, Hypothesis]]] = [
            [("", Hypothesis([], 0.0, 0.0, 0))] * n_best for _ in src_ids
        ]
        real = [i for i, ids in enumerate(src_ids) if ids]
        for batch in self._batches([src_ids[i] for i in real], [[] for _ in real]):
            found = beam_search(
                self.net, batch.src, batch.src_lengths, batch.src_mask, beam_size, n_best, **search
            )
            for position, hypotheses in zip(batch.indices.tolist(), found, strict=True):
                texts = self.vocabs.tgt.decode([h.tokens for h in hypotheses])
                results[real[position]] = list(zip(texts, hypotheses, strict=True))
        return results

    @torch.no_grad()
    def score(self, sources: list[str], references: list[str]) -> list[tuple[float, int]]:
        """Forced decoding: (log-probability, token count incl. eos) of each reference given its source."""
        if len(sources) != len(references):
            raise InputError(
                f"--score needs one reference per source line: got {len(sources)} sources and {len(references)} references"
            )
        src_ids, tgt_ids = self.vocabs.src.encode(sources), self.vocabs.tgt.encode(references)
        results: list[tuple[float, int]] = [(0.0, 0)] * len(sources)
        for batch in self._batches(src_ids, tgt_ids):
            nll = sentence_nll(*self.net.teacher_forced(batch, batch.tgt_mask), batch.tgt_mask)
            for position, value, count in zip(
                batch.indices.tolist(), nll.tolist(), batch.tgt_lengths.tolist(), strict=True
            ):
                results[position] = (-value, count)
        return results
