"""Encoding a split's raw pairs with sentencepiece in worker processes, in chunks, in corpus order.

`chunks` reads a split's files (or a shard's run of their lines) as tasks of `CHUNK_PAIRS` raw pairs;
`encode_chunk` runs in a worker of `encoding_pool` and applies the split's `Rules` (length limit,
empty lines) to them. No file is held in memory whole.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seq2seq.data.corpus import count_lines, decode_line, iter_raw_pairs, line_count_error
from seq2seq.data.prepared_format import SplitCounts, token_dtype
from seq2seq.data.vocab import Vocab, Vocabs

CHUNK_PAIRS = 4096  # pairs per task sent to a worker


def default_workers() -> int:
    return max(
        1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    )


@contextlib.contextmanager
def encoding_pool(vocabs: Vocabs, workers: int | None) -> Iterator[Encoders]:
    """Worker processes that hold the sentencepiece models (forked where the OS can: no re-import)."""
    workers = workers or default_workers()
    context = multiprocessing.get_context(
        "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    )
    with context.Pool(
        workers, initializer=start_worker, initargs=(vocabs.src.model_bytes, vocabs.tgt.model_bytes)
    ) as pool:
        yield Encoders(pool, workers, token_dtype(vocabs))


@dataclass(frozen=True)
class Encoders:
    """The worker pool, its size (how many chunks to keep in flight) and the token dtype to write."""

    pool: Any
    workers: int
    token_type: type


@dataclass(frozen=True)
class Rules:
    """How a worker treats the pairs of one split."""

    split: str
    max_length: int | None
    too_long: str
    empty_lines: str


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` is the index-th of `count` equal runs of a split's lines (corpora in order)."""

    index: int = 0
    count: int = 1

    def lines(self, total: int) -> tuple[int, int]:
        """[first, stop) of this shard among `total` lines."""
        return total * self.index // self.count, total * (self.index + 1) // self.count


WHOLE = Shard()  # an unsharded preparation: one shard of all the lines


@dataclass
class Chunk:
    """A worker's result: the kept pairs' ids flattened, their lengths, and what was left out."""

    ids: tuple[np.ndarray, np.ndarray]
    lengths: tuple[np.ndarray, np.ndarray]
    empty: list[int]
    too_long: int
    text: tuple[list[str], list[str]] | None


def start_worker(src_model: bytes, tgt_model: bytes) -> None:
    global _VOCABS
    _VOCABS = (Vocab(src_model), Vocab(tgt_model))


def encode_chunk(task: tuple[Rules, Path, Path, int, list[bytes], list[bytes]]) -> Chunk:
    """Decodes, checks and encodes one chunk of raw line pairs (runs in a worker process)."""
    rules, src_path, tgt_path, first, src_raw, tgt_raw = task
    src_lines = [decode_line(raw, src_path, first + i) for i, raw in enumerate(src_raw)]
    tgt_lines = [decode_line(raw, tgt_path, first + i) for i, raw in enumerate(tgt_raw)]
    empty = [first + i for i, (s, t) in enumerate(zip(src_lines, tgt_lines, strict=True)) if not (s and t)]
    if empty:
        src_lines, tgt_lines = (
            [s for s, t in zip(src_lines, tgt_lines, strict=True) if s and t],
            [t for s, t in zip(src_lines, tgt_lines, strict=True) if s and t],
        )
    src_ids, tgt_ids = _VOCABS[0].encode(src_lines), _VOCABS[1].encode(tgt_lines)
    too_long = 0
    if rules.max_length is not None:
        limit = rules.max_length
        keep = [len(s) <= limit and len(t) <= limit for s, t in zip(src_ids, tgt_ids, strict=True)]
        too_long = keep.count(False)
        if too_long and rules.too_long == "truncate":
            src_ids, tgt_ids = [s[:limit] for s in src_ids], [t[:limit] for t in tgt_ids]
        elif too_long:
            src_ids = [s for s, k in zip(src_ids, keep, strict=True) if k]
            tgt_ids = [t for t, k in zip(tgt_ids, keep, strict=True) if k]
    text = (src_lines, tgt_lines) if rules.split != "train" else None
    return Chunk(
        ids=tuple(np.fromiter(itertools.chain.from_iterable(ids), np.int64) for ids in (src_ids, tgt_ids)),
        lengths=tuple(np.fromiter(map(len, ids), np.int64, count=len(ids)) for ids in (src_ids, tgt_ids)),
        empty=empty,
        too_long=too_long,
        text=text,
    )


def chunks(
    corpora: list[tuple[Path, Path]], rules: Rules, counts: SplitCounts, shard: Shard
) -> Iterator[tuple]:
    """Tasks of `CHUNK_PAIRS` raw pairs, read as the workers take them; counts each corpus's lines.

    A shard first counts the lines of every corpus (newlines in large blocks: fast), then reads only
    its own run of lines.
    """
    if shard.count == 1:
        ranges = [(0, None)] * len(corpora)
    else:
        counts.lines = [aligned_line_count(src, tgt) for src, tgt in corpora]
        first, stop = shard.lines(sum(counts.lines))
        ends = list(itertools.accumulate(counts.lines))
        ranges = [
            (min(max(first - end + n, 0), n), min(max(stop - end + n, 0), n))
            for n, end in zip(counts.lines, ends, strict=True)
        ]
    for (src_path, tgt_path), (start, stop) in zip(corpora, ranges, strict=True):
        if start == stop:
            continue  # another shard's lines only
        pairs = iter_raw_pairs(src_path, tgt_path, start, stop)
        first = start + 1
        while batch := list(itertools.islice(pairs, CHUNK_PAIRS)):
            src_raw, tgt_raw = zip(*batch, strict=True)
            yield rules, src_path, tgt_path, first, list(src_raw), list(tgt_raw)
            first += len(batch)
        if shard.count == 1:
            counts.lines.append(first - 1)


def aligned_line_count(src_path: Path, tgt_path: Path) -> int:
    src, tgt = count_lines(src_path), count_lines(tgt_path)
    if src != tgt:
        raise line_count_error(src_path, src, tgt_path, tgt)
    return src
