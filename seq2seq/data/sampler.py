"""Length-bucketed batching under a token budget, seeded per epoch and sharded by rank."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class BucketBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices whose padded size stays under a token budget.

    With `bucketing=True` the pairs are sorted by (longer side, source length, target length) with
    a random tie-break, so neighbours have nearly equal lengths on both sides and padding is close
    to zero (the longer side first, because that is what a batch's budget is charged for);
    the cut into batches therefore changes with the epoch, and the order of batches is shuffled.
    With `bucketing=False` the pairs are shuffled at random and cut under the same budget: the
    baseline the padding benchmarks compare against.

    A batch of n pairs costs `n * max(longest source, longest target)` padded tokens (fairseq's
    `max_tokens`); a single pair longer than the budget still gets a batch of its own.

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
        src_lengths: Sequence[int],
        tgt_lengths: Sequence[int],
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
            raise ValueError(f"max_tokens ({max_tokens}) and max_sentences ({max_sentences}) must be positive")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        self.src_lengths = torch.as_tensor(src_lengths, dtype=torch.long)
        self.tgt_lengths = torch.as_tensor(tgt_lengths, dtype=torch.long)
        self.max_tokens = max_tokens
        self.max_sentences = max_sentences
        self.bucketing = bucketing
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self._skip = 0  # batches the next pass leaves out (a resumed epoch); see skip_first
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Called by the training loop so that every epoch draws new batches (same on every rank)."""
        self.epoch = epoch

    def _order(self, generator: torch.Generator) -> list[int]:
        n = len(self.src_lengths)
        if not self.bucketing:
            return torch.randperm(n, generator=generator).tolist() if self.shuffle else list(range(n))
        tie_break = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        # Lexicographic sort on (max, src, tgt, tie_break): stable sorts from the least significant key.
        order = torch.argsort(tie_break)
        for key in (self.tgt_lengths, self.src_lengths, torch.maximum(self.src_lengths, self.tgt_lengths)):
            order = order[torch.argsort(key[order], stable=True)]
        return order.tolist()

    def cut(self, order: list[int]) -> list[list[int]]:
        """Greedy cut: a batch grows while its padded cost stays within the budget."""
        batches: list[list[int]] = []
        batch: list[int] = []
        longest = 0
        src, tgt = self.src_lengths.tolist(), self.tgt_lengths.tolist()
        for index in order:
            length = max(src[index], tgt[index])
            grown = max(longest, length)
            full = self.max_sentences is not None and len(batch) >= self.max_sentences
            if batch and (grown * (len(batch) + 1) > self.max_tokens or full):
                batches.append(batch)
                batch, grown = [], length
            batch.append(index)
            longest = grown
        if batch:
            batches.append(batch)
        return batches

    def batches(self) -> list[list[int]]:
        """All batches of this epoch for this rank, in the order they will be yielded."""
        if self._cache is None or self._cache[0] != self.epoch:
            self._cache = (self.epoch, self._draw())
        return self._cache[1]

    def _draw(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        batches = self.cut(self._order(generator))
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        usable = len(batches) - len(batches) % self.num_replicas  # equal batch counts on every rank
        return batches[self.rank : usable : self.num_replicas]

    def skip_first(self, count: int) -> None:
        """The next pass starts at batch `count` of this epoch (resuming mid-epoch); later passes are whole."""
        self._skip = count

    def __iter__(self) -> Iterator[list[int]]:
        skip, self._skip = self._skip, 0
        return iter(self.batches()[skip:])

    def __len__(self) -> int:
        return len(self.batches())
