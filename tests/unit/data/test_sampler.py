"""The length-bucketing batch sampler: every pair once per epoch, budgets kept, few pads, rank shards."""

import itertools
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seq2seq.data.sampler import BucketBatchSampler, path_position


def lengths(n: int, seed: int = 0, jitter: int = 3) -> tuple[list[int], list[int]]:
    """Long-tailed source lengths; target lengths within `jitter` of the source."""
    rng = random.Random(seed)
    src = [min(80, int(rng.expovariate(1 / 12)) + 1) for _ in range(n)]
    return src, [max(1, s + rng.randint(-jitter, jitter)) for s in src]


def cost(batch: list[int], src: list[int], tgt: list[int]) -> int:
    return len(batch) * max(max(src[i], tgt[i]) for i in batch)


@settings(max_examples=60, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.integers(1, 120), st.integers(1, 120)), min_size=1, max_size=300),
    max_tokens=st.integers(1, 2000),
    bucketing=st.booleans(),
    epoch=st.integers(0, 5),
)
def test_every_index_once_per_epoch_and_budget_respected(pairs, max_tokens, bucketing, epoch) -> None:
    src, tgt = [p[0] for p in pairs], [p[1] for p in pairs]
    sampler = BucketBatchSampler(src, tgt, max_tokens=max_tokens, bucketing=bucketing, seed=3)
    sampler.set_epoch(epoch)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(pairs)))
    for batch in batches:
        assert (
            len(batch) == 1 or cost(batch, src, tgt) <= max_tokens
        )  # a lone overlong pair gets its own batch
    assert len(sampler) == len(batches)


def test_max_sentences_caps_batches() -> None:
    src, tgt = lengths(500)
    sampler = BucketBatchSampler(src, tgt, max_tokens=100_000, max_sentences=16)
    assert max(len(b) for b in sampler) == 16


def test_order_changes_with_epoch_and_seed_but_is_reproducible() -> None:
    src, tgt = lengths(2000)
    sampler = BucketBatchSampler(src, tgt, max_tokens=512, seed=1)
    first = list(sampler)
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    assert list(BucketBatchSampler(src, tgt, max_tokens=512, seed=2)) != first
    again = BucketBatchSampler(src, tgt, max_tokens=512, seed=1)
    again.set_epoch(1)
    assert list(again) == list(sampler)


def test_bucketing_pads_far_less_than_random_batches() -> None:
    src, tgt = lengths(5000, jitter=1)

    def pad_fraction(sampler: BucketBatchSampler) -> float:
        padded = real = 0
        for batch in sampler:
            padded += len(batch) * (max(src[i] for i in batch) + max(tgt[i] for i in batch))
            real += sum(src[i] + tgt[i] for i in batch)
        return 1 - real / padded

    bucketed = pad_fraction(BucketBatchSampler(src, tgt, max_tokens=1024))
    random_batches = pad_fraction(BucketBatchSampler(src, tgt, max_tokens=1024, bucketing=False))
    assert bucketed < 0.06 and random_batches > 0.3  # jitter alone leaves a few percent here


def test_the_path_through_the_lengths_moves_one_token_on_one_side_at_a_time() -> None:
    """Every cell of every L-shape, each once, in an order whose consecutive cells are neighbours."""
    cells = [(s, t) for s in range(40) for t in range(40)]
    src, tgt = np.array([c[0] for c in cells]), np.array([c[1] for c in cells])
    order = np.lexsort((path_position(src, tgt), np.maximum(src, tgt)))
    path = [cells[i] for i in order]
    positions = path_position(src, tgt)[order]
    for longest in range(40):  # positions within one shape are distinct and within [0, 2L]
        shape = positions[np.maximum(src, tgt)[order] == longest]
        assert len(set(shape.tolist())) == len(shape) and shape.max() <= 2 * longest
    for (s1, t1), (s2, t2) in itertools.pairwise(path):
        assert abs(s1 - s2) + abs(t1 - t2) == 1


def test_sorting_along_the_path_pads_less_than_sorting_by_source_then_target() -> None:
    """Targets up to 4 tokens off the source: the cut of the path order pads a quarter less than the
    cut of the (longer side, source, target) order, the key the sampler used before."""
    src, tgt = lengths(20000, seed=5, jitter=4)
    sampler = BucketBatchSampler(src, tgt, max_tokens=2048)

    def pad_fraction(batches: list[list[int]]) -> float:
        padded = sum(len(b) * (max(src[i] for i in b) + max(tgt[i] for i in b)) for b in batches)
        return 1 - sum(src[i] + tgt[i] for b in batches for i in b) / padded

    lexicographic = sorted(range(len(src)), key=lambda i: (max(src[i], tgt[i]), src[i], tgt[i]))
    assert pad_fraction(list(sampler)) < 0.85 * pad_fraction(sampler.cut(lexicographic))


def test_evaluation_order_is_fixed() -> None:
    src, tgt = lengths(300)
    sampler = BucketBatchSampler(src, tgt, max_tokens=256, shuffle=False)
    first = list(sampler)
    sampler.set_epoch(4)
    assert list(sampler) == first


@pytest.mark.parametrize("num_replicas", [2, 3])
def test_ranks_get_disjoint_shards_of_equal_batch_count(num_replicas: int) -> None:
    src, tgt = lengths(1000)
    shards = [
        list(BucketBatchSampler(src, tgt, max_tokens=300, seed=5, num_replicas=num_replicas, rank=r))
        for r in range(num_replicas)
    ]
    assert len({len(shard) for shard in shards}) == 1
    seen = [i for shard in shards for batch in shard for i in batch]
    assert len(seen) == len(set(seen))
    whole = list(BucketBatchSampler(src, tgt, max_tokens=300, seed=5))
    assert (
        len(whole) - len(shards[0]) * num_replicas < num_replicas
    )  # at most the uneven remainder is dropped


def test_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        BucketBatchSampler([1], [1], max_tokens=0)
    with pytest.raises(ValueError, match="rank 2"):
        BucketBatchSampler([1], [1], max_tokens=10, num_replicas=2, rank=2)


@settings(max_examples=60, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.integers(1, 40), st.integers(1, 40)), min_size=1, max_size=120),
    max_tokens=st.integers(1, 400),
    max_sentences=st.none() | st.integers(1, 8),
    replicas=st.integers(1, 4),
    bucketing=st.booleans(),
    epoch=st.integers(0, 3),
)
def test_ranks_get_equal_disjoint_shares(
    pairs, max_tokens, max_sentences, replicas, bucketing, epoch
) -> None:
    src, tgt = [p[0] for p in pairs], [p[1] for p in pairs]
    samplers = [
        BucketBatchSampler(
            src, tgt, max_tokens, max_sentences, bucketing, seed=5, num_replicas=replicas, rank=r
        )
        for r in range(replicas)
    ]
    whole = BucketBatchSampler(src, tgt, max_tokens, max_sentences, bucketing, seed=5)
    for sampler in [*samplers, whole]:
        sampler.set_epoch(epoch)
    shares = [list(s) for s in samplers]
    assert len({len(share) for share in shares}) == 1  # no rank waits for another at the epoch end
    seen = [i for share in shares for batch in share for i in batch]
    assert len(seen) == len(set(seen))  # no pair twice in an epoch
    assert len(whole) - len(shares[0]) * replicas < replicas  # fewer than `replicas` batches dropped
    for batch in (b for share in shares for b in share):
        assert 1 <= len(batch) <= (max_sentences or len(batch))


@settings(max_examples=40, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.integers(1, 30), st.integers(1, 30)), min_size=1, max_size=80), data=st.data()
)
def test_skip_first_resumes_the_same_epoch_order(pairs, data) -> None:
    src, tgt = [p[0] for p in pairs], [p[1] for p in pairs]
    sampler = BucketBatchSampler(src, tgt, max_tokens=60, seed=2)
    batches = list(sampler)
    skip = data.draw(st.integers(0, len(batches)))
    sampler.skip_first(skip)
    assert list(sampler) == batches[skip:]
    assert list(sampler) == batches  # only the next pass is shortened
