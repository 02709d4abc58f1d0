"""The training loader's position: saved as Lightning would, restored mid-epoch, ignored across epochs."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from seq2seq.data.batch import collate
from seq2seq.data.loader import ResumableDataLoader
from seq2seq.data.sampler import BucketBatchSampler


def loader_over(lengths: list[int]) -> ResumableDataLoader:
    dataset = [(i, [5] * n, [6] * n) for i, n in enumerate(lengths)]
    return ResumableDataLoader(
        dataset, batch_sampler=BucketBatchSampler(lengths, lengths, max_tokens=40, seed=1), collate_fn=collate
    )


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(1, 20), min_size=1, max_size=60), data=st.data())
def test_a_resumed_loader_continues_after_the_saved_batch(lengths: list[int], data) -> None:
    loader = loader_over(lengths)
    loader.batch_sampler.set_epoch(2)
    whole = [batch.indices.tolist() for batch in loader]
    taken = data.draw(st.integers(0, len(whole)))
    iterator = iter(loader)
    for _ in range(taken):
        next(iterator)
    state = loader.state_dict()
    assert state == {"epoch": 2, "batches": taken}

    resumed = loader_over(lengths)
    resumed.load_state_dict(state)
    resumed.batch_sampler.set_epoch(2)  # Lightning sets the epoch before it iterates
    assert len(resumed) == len(whole) - taken  # what Lightning's fetcher counts to find the last batch
    assert [batch.indices.tolist() for batch in resumed] == whole[taken:]
    assert resumed.state_dict() == {"epoch": 2, "batches": len(whole)}
    assert len(resumed) == len(whole)  # the next epoch is whole again


def test_a_state_from_an_ended_epoch_does_not_shorten_the_next() -> None:
    loader = loader_over([3, 5, 7, 9, 11, 2, 4, 6] * 4)
    loader.load_state_dict({"epoch": 0, "batches": len(loader)})  # saved at the end of epoch 0
    loader.batch_sampler.set_epoch(1)
    assert len(list(loader)) == len(loader.batch_sampler)
