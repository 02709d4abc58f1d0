"""The dynamic batcher on a real event loop, with a decode function that records the batches it is given."""

from __future__ import annotations

import asyncio
import time

import pytest

from seq2seq.models.search import Hypothesis
from seq2seq.serving.batcher import Batcher, BatchReport, QueueFull

GREEDY = (1, 1, 1.0)
BEAM = (5, 1, 1.0)


class Recorder:
    """Decodes each sentence as its upper-case form and records every batch and report."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.batches: list[tuple[list[str], tuple]] = []
        self.reports: list[BatchReport] = []
        self.fail_on = fail_on

    def __call__(self, texts: list[str], settings: tuple) -> list[list[tuple[str, Hypothesis]]]:
        self.batches.append((list(texts), settings))
        if self.fail_on in texts:
            raise RuntimeError(f"cannot decode {self.fail_on!r}")
        return [[(text.upper(), Hypothesis([], 0.0, 0.0, 0))] for text in texts]


class SlowRecorder(Recorder):
    """A Recorder whose every batch takes `seconds` (in the worker thread, as a model would)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def __call__(self, texts: list[str], settings: tuple) -> list[list[tuple[str, Hypothesis]]]:
        time.sleep(self.seconds)
        return super().__call__(texts, settings)


def run(coroutine):
    return asyncio.run(coroutine)


async def serve(recorder: Recorder, *requests, **options):
    """Starts a batcher, sends `requests` ((texts, pieces, settings) each) at once, returns their answers."""
    settings = {"max_tokens": 64, "max_wait_ms": 50.0, "max_delay_ms": 50.0, "max_queue": 100} | options
    batcher = Batcher(recorder, on_batch=recorder.reports.append, **settings)
    batcher.start()
    try:
        return await asyncio.gather(
            *(batcher.translate(*request) for request in requests), return_exceptions=True
        )
    finally:
        await batcher.stop()


def texts_of(answer) -> list[str]:
    return [nbest[0][0] for nbest in answer]


def test_concurrent_requests_share_a_batch_and_each_gets_its_own_answers_in_order() -> None:
    recorder = Recorder()
    first, second = run(serve(recorder, (["a", "bb"], [1, 2], GREEDY), (["ccc"], [3], GREEDY)))
    assert texts_of(first) == ["A", "BB"] and texts_of(second) == ["CCC"]
    assert recorder.batches == [(["a", "bb", "ccc"], GREEDY)]
    (report,) = recorder.reports
    assert (report.sentences, report.pad_fraction) == (3, 1 - 6 / 9)


def test_each_batch_report_holds_the_time_the_model_took() -> None:
    recorder = SlowRecorder(0.05)
    run(serve(recorder, (["a"], [1], GREEDY)))
    (report,) = recorder.reports
    assert 0.05 <= report.seconds < 1.0


def test_a_batch_stays_within_the_token_budget_and_a_large_request_spreads_over_batches() -> None:
    recorder = Recorder()
    texts = [f"s{i}" for i in range(10)]
    (answer,) = run(serve(recorder, (texts, [4] * 10, GREEDY), max_tokens=12))
    assert texts_of(answer) == [t.upper() for t in texts]
    assert [len(batch) for batch, _ in recorder.batches] == [3, 3, 3, 1]  # 3 x 4 pieces <= 12
    assert all(len(batch) * 4 <= 12 for batch, _ in recorder.batches)


def test_a_sentence_longer_than_the_budget_still_gets_a_batch_of_its_own() -> None:
    recorder = Recorder()
    (answer,) = run(serve(recorder, (["long", "x"], [100, 1], GREEDY), max_tokens=12))
    assert texts_of(answer) == ["LONG", "X"]
    assert [batch for batch, _ in recorder.batches] == [["long"], ["x"]]


def test_sentences_with_other_search_settings_never_share_a_batch() -> None:
    recorder = Recorder()
    greedy, beam = run(serve(recorder, (["a", "b"], [1, 1], GREEDY), (["c"], [1], BEAM)))
    assert texts_of(greedy) == ["A", "B"] and texts_of(beam) == ["C"]
    assert sorted(recorder.batches) == sorted([(["a", "b"], GREEDY), (["c"], BEAM)])


def test_a_full_queue_refuses_the_request_that_would_overflow_it() -> None:
    recorder = Recorder()
    kept, refused = run(
        serve(recorder, (["a", "b", "c"], [1, 1, 1], GREEDY), (["d", "e"], [1, 1], GREEDY), max_queue=4)
    )
    assert texts_of(kept) == ["A", "B", "C"]
    assert isinstance(refused, QueueFull) and "at most 4" in str(refused)


def test_a_failing_batch_fails_its_requests_and_the_loop_serves_the_next_ones() -> None:
    recorder = Recorder(fail_on="bad")

    async def scenario():
        batcher = Batcher(recorder, max_tokens=64, max_wait_ms=1.0, max_delay_ms=1.0, max_queue=10)
        batcher.start()
        try:
            with pytest.raises(RuntimeError, match="cannot decode 'bad'"):
                await batcher.translate(["bad"], [1], GREEDY)
            return await batcher.translate(["good"], [1], GREEDY)
        finally:
            await batcher.stop()

    assert texts_of(run(scenario())) == ["GOOD"]


def test_stop_decodes_what_is_queued_first() -> None:
    recorder = Recorder()

    async def scenario():
        batcher = Batcher(recorder, max_tokens=64, max_wait_ms=200.0, max_delay_ms=200.0, max_queue=10)
        batcher.start()
        pending = asyncio.ensure_future(batcher.translate(["late"], [1], GREEDY))
        await asyncio.sleep(0.01)  # queued, its batch still waiting for company
        await batcher.stop()
        return await pending

    assert texts_of(run(scenario())) == ["LATE"]


def batches_when_a_client_returns(max_wait_ms: float, between=None) -> list[list[str]]:
    """a's batch decodes for 0.2 s; b queues meanwhile; once answered, a's client runs `between` (a coroutine
    function taking the batcher), then sends c. Checks every answer and returns the batches' texts."""
    recorder = SlowRecorder(0.2)

    async def scenario():
        batcher = Batcher(recorder, max_tokens=64, max_wait_ms=max_wait_ms, max_delay_ms=500.0, max_queue=10)
        batcher.start()

        async def client_a():
            first = await batcher.translate(["a"], [1], GREEDY)
            if between is not None:
                await between(batcher)
            return first + await batcher.translate(["c"], [1], GREEDY)

        async def client_b():
            await asyncio.sleep(0.1)  # a's batch is decoding
            return await batcher.translate(["b"], [1], GREEDY)

        try:
            return await asyncio.gather(client_a(), client_b())
        finally:
            await batcher.stop()

    a_then_c, b = run(scenario())
    assert texts_of(a_then_c) == ["A", "C"] and texts_of(b) == ["B"]
    return [texts for texts, _ in recorder.batches]


def test_the_client_a_batch_answers_joins_the_sentences_that_queued_while_it_decoded() -> None:
    """b queues while a's batch decodes; a's client sends c as soon as it has its answer. The quiet gap
    counts from the end of a's batch, so c joins b, where a gap counted from b's arrival would not wait."""
    assert batches_when_a_client_returns(20.0) == [["a"], ["b", "c"]]


def test_a_steady_trickle_of_sentences_cannot_hold_a_batch_back_past_the_delay() -> None:
    """A sentence every 20 ms never leaves a 50 ms quiet gap; the 150 ms delay still starts a batch."""
    recorder = Recorder()

    async def scenario():
        batcher = Batcher(recorder, max_tokens=64, max_wait_ms=50.0, max_delay_ms=150.0, max_queue=100)
        batcher.start()
        answers = []
        try:
            for i in range(20):
                answers.append(asyncio.ensure_future(batcher.translate([f"s{i}"], [1], GREEDY)))
                await asyncio.sleep(0.02)
            return await asyncio.gather(*answers)
        finally:
            await batcher.stop()

    answers = run(scenario())
    assert [texts_of(answer) for answer in answers] == [[f"S{i}"] for i in range(20)]
    assert len(recorder.batches) >= 2


def test_answers_handed_back_slowly_still_leave_their_clients_time_to_join_the_next_batch() -> None:
    """The event loop takes 12 ms per answer it hands back (as serialising and writing a response does),
    and each client's next sentence needs a few more loop turns to reach the queue (as a request passes
    the ASGI stack). The quiet gap counts from the last answer handed back, so the next batch waits for
    all three; counted from the batch end it would have left with b alone."""
    recorder = SlowRecorder(0.2)

    async def scenario():
        batcher = Batcher(recorder, max_tokens=64, max_wait_ms=15.0, max_delay_ms=500.0, max_queue=10)
        batcher.start()

        async def client(name: str):
            first = await batcher.translate([name], [1], GREEDY)
            time.sleep(0.012)  # noqa: ASYNC251 -- the loop busy with this answer, as the server's is
            for _ in range(20):
                await asyncio.sleep(0)
            return first + await batcher.translate([name + "2"], [1], GREEDY)

        async def late():
            await asyncio.sleep(0.1)  # queued while the first batch decodes
            return await batcher.translate(["b"], [1], GREEDY)

        try:
            return await asyncio.gather(client("x"), client("y"), client("z"), late())
        finally:
            await batcher.stop()

    *clients, _late = run(scenario())
    assert [texts_of(answer) for answer in clients] == [["X", "X2"], ["Y", "Y2"], ["Z", "Z2"]]
    assert [sorted(texts) for texts, _ in recorder.batches] == [["x", "y", "z"], ["b", "x2", "y2", "z2"]]


def test_a_batch_waits_for_a_request_the_server_has_begun_to_read() -> None:
    """b queues while a's batch decodes. After it, a's client's next request takes 60 ms to reach the
    queue (its body read and checked), far past the 10 ms quiet gap; announced with `expect`, it joins b."""

    async def read_slowly(batcher: Batcher) -> None:
        arrived = batcher.expect()
        await asyncio.sleep(0.06)
        arrived()
        arrived()  # a second call changes nothing

    assert batches_when_a_client_returns(10.0, read_slowly) == [["a"], ["b", "c"]]


def test_a_request_announced_and_then_refused_leaves_the_loop_serving() -> None:
    recorder = Recorder()

    async def scenario():
        batcher = Batcher(recorder, max_tokens=64, max_wait_ms=1.0, max_delay_ms=1.0, max_queue=10)
        batcher.start()
        try:
            await asyncio.sleep(0.01)  # the loop waits for a first arrival
            batcher.expect()()  # its body was bad: it never reaches the queue
            await asyncio.sleep(0.01)
            return await batcher.translate(["good"], [1], GREEDY)
        finally:
            await batcher.stop()

    assert texts_of(run(scenario())) == ["GOOD"]


def test_an_idle_server_starts_a_lone_clients_sentences_at_once() -> None:
    """One client, one sentence after another, with a quiet gap and delay of 0.3 s: the first batch waits
    for company (no client is known yet); after it no one else is coming back, so each batch starts as
    its sentence arrives instead of after the gap."""
    recorder = Recorder()

    async def scenario():
        batcher = Batcher(recorder, max_tokens=64, max_wait_ms=300.0, max_delay_ms=300.0, max_queue=10)
        batcher.start()
        try:
            return [await batcher.translate([f"s{i}"], [1], GREEDY) for i in range(5)]
        finally:
            await batcher.stop()

    start = time.monotonic()
    answers = run(scenario())
    assert [texts_of(answer) for answer in answers] == [[f"S{i}"] for i in range(5)]
    assert 0.3 <= time.monotonic() - start < 1.0  # one gap; five would take 1.5 s


def test_a_batch_starts_once_every_client_the_previous_one_answered_is_back() -> None:
    """Three closed-loop clients, three sentences each: their first sentences share a batch after the
    0.4 s quiet gap; each later batch starts once all three have sent their next, without the gap."""
    recorder = SlowRecorder(0.05)

    async def scenario():
        batcher = Batcher(recorder, max_tokens=64, max_wait_ms=400.0, max_delay_ms=2000.0, max_queue=10)
        batcher.start()

        async def client(name: str):
            return [texts_of(await batcher.translate([f"{name}{i}"], [1], GREEDY))[0] for i in range(3)]

        try:
            return await asyncio.gather(client("x"), client("y"), client("z"))
        finally:
            await batcher.stop()

    start = time.monotonic()
    answers = run(scenario())
    assert answers == [["X0", "X1", "X2"], ["Y0", "Y1", "Y2"], ["Z0", "Z1", "Z2"]]
    assert [sorted(texts) for texts, _ in recorder.batches] == [[f"{c}{i}" for c in "xyz"] for i in range(3)]
    assert time.monotonic() - start < 1.0  # three gaps would take 1.2 s, and 0.15 s of decoding
