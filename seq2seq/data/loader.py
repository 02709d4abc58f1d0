"""A training DataLoader that knows its position inside the epoch, so a resumed run continues mid-epoch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch.utils.data import DataLoader

from seq2seq.data.sampler import BucketBatchSampler


class ResumableDataLoader(DataLoader):
    """A DataLoader over a `BucketBatchSampler` that Lightning saves and restores with the checkpoint.

    Lightning calls `state_dict()` when it writes a checkpoint and `load_state_dict()` when it resumes
    from one (any loader with both methods counts as resumable). The state is the epoch and the number
    of batches handed out in it; after loading, the next pass over the same epoch skips those batches
    without reading them, so a run interrupted after batch k continues with batch k+1 of the same
    epoch, as the uninterrupted run would. A state from another epoch (a checkpoint written at an
    epoch end) is ignored: the new epoch starts from its first batch.
    """

    batch_sampler: BucketBatchSampler

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.batch_sampler, BucketBatchSampler):
            raise TypeError("ResumableDataLoader needs batch_sampler=BucketBatchSampler(...)")
        self._handed_out = 0
        self._resume: dict[str, int] | None = None

    def _pending_skip(self) -> int:
        if self._resume is not None and self._resume["epoch"] == self.batch_sampler.epoch:
            return self._resume["batches"]
        return 0

    def __len__(self) -> int:
        # Batches the next pass yields: Lightning's fetcher marks the last batch by this count.
        return len(self.batch_sampler) - self._pending_skip()

    def __iter__(self) -> Iterator[Any]:
        skip = self._pending_skip()
        self._resume = None
        self.batch_sampler.skip_first(skip)
        self._handed_out = skip  # set now, not at the first batch: a state saved in between is already right
        return self._counted(super().__iter__())

    def _counted(self, batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            self._handed_out += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.batch_sampler.epoch, "batches": self._handed_out}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._resume = {"epoch": int(state["epoch"]), "batches": int(state["batches"])}
