"""Length-bucketed batching under a token budget, seeded per epoch and sharded by rank."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

from seq2seq.errors import InputError


def path_position(src: np.ndarray, tgt: np.ndarray) -> np.ndarray:
    """Each pair's place on a path through the length pairs, among those with the same longer side L.

    Pairs whose longer side is L have source L or target L: an L-shaped row of length cells. The
    path walks it from (source 0, target L) up to (L, L) and down to (L, target 0), and the next
    shape the other way round, so that every step of the path, within a shape or from one to the
    next, changes one side by one token. Sorting by (L, position) then puts neighbours in nearly
    the same cell, and fewer batches straddle two distant cells than under a sort by (L, source,
    target) (benchmarks/README.md, "Strategy cost", measures both over an epoch). Returns values in [0, 2L].
    """
    longest = np.maximum(src, tgt)
    along = np.where(tgt == longest, src, 2 * longest - tgt)  # (0, L) -> (L, L) -> (L, 0)
    return np.where(longest % 2 == 0, along, 2 * longest - along).astype(src.dtype)


class BucketBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices whose padded size stays under a token budget.

    With `bucketing=True` the pairs are sorted by their longer side (what a batch's budget is charged
    for), then along a path through the (source, target) lengths that share it (`path_position`),
    with a random tie-break: neighbours differ by at most one token on one side, so padding is close
    to zero. The cut into batches therefore changes with the epoch, and the order of batches is
    shuffled.
    With `bucketing=False` the pairs are shuffled at random and cut under the same budget: the
    baseline the padding benchmarks compare against.

    A batch of n pairs costs `n * max(longest source, longest target)` padded tokens (fairseq's
    `max_tokens`); a single pair longer than the budget still gets a batch of its own. Each batch
    lists its pairs longest source first.

    For several ranks every rank computes the same batches from the same seed and epoch and takes
    every `num_replicas`-th one; the few batches that do not divide evenly are dropped this epoch
    (a different few each epoch), so ranks never wait on each other and never see the same pair.

    Args:
        src_lengths: source length of each pair (as collated: eos included).
        tgt_lengths: target length of each pair.
        max_tokens: padded-token budget of one batch.
        max_sentences: optional cap on pairs per batch.
        bucketing: sort by length before cutting (True) or cut random batches (False).
        shuffle: shuffle pairs and batches every epoch; False gives a fixed, sorted order for evaluation.
        seed: base seed; the epoch is added to it.
        num_replicas: number of ranks.
        rank: this process's rank.
    """

    def __init__(
        self,
        src_lengths: Sequence[int] | np.ndarray,
        tgt_lengths: Sequence[int] | np.ndarray,
        max_tokens: int,
        max_sentences: int | None = None,
        bucketing: bool = True,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if len(src_lengths) != len(tgt_lengths):
            raise ValueError("src_lengths and tgt_lengths must have one entry per pair")
        if max_tokens < 1 or (max_sentences is not None and max_sentences < 1):
            raise InputError(
                f"max_tokens ({max_tokens}) and max_sentences ({max_sentences}) must be positive"
            )
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        # Kept as given (a memory-mapped array stays mapped): the keys below are built per epoch and freed.
        self.src_lengths = np.asarray(src_lengths)
        self.tgt_lengths = np.asarray(tgt_lengths)
        self.max_tokens = max_tokens
        self.max_sentences = max_sentences
        self.bucketing = bucketing
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self._skip = 0  # batches the next pass leaves out (a resumed epoch); see skip_first
        self._cache: tuple[int, Batches] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Called by the training loop so that every epoch draws new batches (same on every rank)."""
        self.epoch = epoch

    def longest(self) -> np.ndarray:
        """(N,) int64 longer side of each pair: what a batch's padded cost is charged for."""
        return np.maximum(self.src_lengths, self.tgt_lengths).astype(np.int64)

    def _order(self, generator: torch.Generator) -> np.ndarray:
        n = len(self.src_lengths)
        index_type = np.int32 if n < 2**31 else np.int64
        if not self.bucketing:
            return (torch.randperm(n, generator=generator).numpy() if self.shuffle else np.arange(n)).astype(
                index_type
            )
        # Sorted by (longer side, path position, random tie-break).
        tie_break = (torch.randperm(n, generator=generator).numpy() if self.shuffle else np.arange(n)).astype(
            index_type
        )
        longest_length = int(np.maximum(self.src_lengths.max(initial=0), self.tgt_lengths.max(initial=0)))
        if longest_length >= 2**20:  # too long to pack into one key: a (slower) lexicographic sort
            src, tgt = self.src_lengths.astype(np.int64), self.tgt_lengths.astype(np.int64)
            return np.lexsort((tie_break, path_position(src, tgt), np.maximum(src, tgt))).astype(index_type)
        # One stable sort of a packed key over the pairs taken in tie-break order: the longer side in
        # `bits` bits above the path position (at most twice it: one bit more). 4-byte keys when every
        # pair is shorter than 1024, else 8. Peak memory ~40 bytes per pair.
        bits, key_type = (10, np.uint32) if longest_length < 2**10 else (20, np.uint64)
        by_tie_break = np.empty_like(tie_break)
        by_tie_break[tie_break] = np.arange(
            n, dtype=index_type
        )  # the inverse permutation: argsort without a sort
        del tie_break
        src, tgt = (
            self.src_lengths[by_tie_break].astype(key_type),
            self.tgt_lengths[by_tie_break].astype(key_type),
        )
        key = (np.maximum(src, tgt) << (bits + 1)) | path_position(src, tgt)
        del src, tgt
        return by_tie_break[np.argsort(key, kind="stable")]

    def cut(self, order: Sequence[int]) -> list[list[int]]:
        """The batches of the greedy cut of `order` (any order of the pairs), as lists of indices."""
        order = np.asarray(order, dtype=np.int64)
        bounds = self.boundaries(order).tolist()
        return [order[start:stop].tolist() for start, stop in itertools.pairwise(bounds)]

    def boundaries(self, order: np.ndarray) -> np.ndarray:
        """Greedy cut of `order` into batches; returns the batch boundaries (B + 1,) into `order`.

        A batch grows while `n * longest pair so far` stays within the budget (and n within
        max_sentences); its first pair always fits. Each batch is found with array operations over a
        window that doubles until the budget is exceeded, so the Python loop runs once per batch.
        """
        longest = self.longest()[order]
        bounds = [0]
        start, total = 0, len(order)
        cap = self.max_sentences or total
        window = 64
        while start < total:
            while True:
                stop = min(total, start + min(window, cap + 1))
                grown = np.maximum.accumulate(longest[start:stop])
                over = grown * np.arange(1, stop - start + 1) > self.max_tokens
                over[0] = False
                if len(over) > cap:
                    over[cap:] = True
                if over.any() or stop == total:
                    break
                window *= 2
            size = int(over.argmax()) if over.any() else stop - start
            start += size
            bounds.append(start)
            window = max(64, 2 * size)
        return np.asarray(bounds, dtype=np.int64)

    def batches(self) -> list[list[int]]:
        """All batches of this epoch for this rank, in the order they will be yielded."""
        return [self._longest_source_first(self._drawn()[k]) for k in range(len(self))]

    def _longest_source_first(self, ids: list[int]) -> list[int]:
        """A batch's pairs, longest source first (stable): `packing` then needs no reordering of its rows."""
        return [ids[i] for i in np.argsort(-self.src_lengths[ids].astype(np.int64), kind="stable")]

    def largest_batch(self) -> list[int]:
        """The batch of this epoch (this rank) with the most padded slots: what memory must hold."""
        drawn = self._drawn()
        if not len(drawn):
            return []
        costs = drawn.sizes() * np.maximum.reduceat(self.longest()[drawn.order], drawn.bounds[:-1])
        return drawn.batch(int(drawn.picked[costs[drawn.picked].argmax()]))

    def _drawn(self) -> Batches:
        if self._cache is None or self._cache[0] != self.epoch:
            self._cache = (self.epoch, self._draw())
        return self._cache[1]

    def _draw(self) -> Batches:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = self._order(generator)
        bounds = self.boundaries(order)
        count = len(bounds) - 1
        shuffled = torch.randperm(count, generator=generator).numpy() if self.shuffle else np.arange(count)
        usable = count - count % self.num_replicas  # equal batch counts on every rank
        return Batches(order, bounds, shuffled[self.rank : usable : self.num_replicas])

    def skip_first(self, count: int) -> None:
        """The next pass starts at batch `count` of this epoch (resuming mid-epoch); later passes are whole."""
        self._skip = count

    def __iter__(self) -> Iterator[list[int]]:
        skip, self._skip = self._skip, 0
        drawn = self._drawn()
        return (self._longest_source_first(drawn[k]) for k in range(skip, len(drawn)))

    def __len__(self) -> int:
        return len(self._drawn())


class Batches:
    """One epoch's batches for one rank, stored compactly: the pair order, the cut and the batches picked.

    Attributes:
        order: (N,) pair indices in batch order before shuffling.
        bounds: (B + 1,) start of each batch in `order`, and the end.
        picked: this rank's batch numbers, in the order they are yielded.
    """

    def __init__(self, order: np.ndarray, bounds: np.ndarray, picked: np.ndarray) -> None:
        self.order, self.bounds, self.picked = order, bounds, picked

    def batch(self, number: int) -> list[int]:
        return self.order[self.bounds[number] : self.bounds[number + 1]].tolist()

    def sizes(self) -> np.ndarray:
        return np.diff(self.bounds)

    def __getitem__(self, k: int) -> list[int]:
        """The k-th batch this rank yields."""
        return self.batch(int(self.picked[k]))

    def __len__(self) -> int:
        return len(self.picked)
