"""Dynamic batching: sentences from concurrent requests are decoded together, in length-sorted batches.

A request's sentences join one queue. A single task takes the oldest sentence, then every queued
sentence with the same search settings, once the batch holds `max_tokens` padded source pieces; or
at once when as many sentences have joined the queue since the previous batch ended as that batch
held (its clients are back: an idle server answering one client, or a full set of closed-loop clients)
and no request is on its way in (`expect`: read, not yet queued); or else (and before the first
batch, when no client is known to be coming) once the queue has been
quiet for `max_wait_ms`: no sentence has joined it, no answer has been handed back and no request has
been on its way in for that long, counted from the end of the previous batch at the earliest; or at
the latest `max_delay_ms` after its oldest sentence could have started (queued, and the model free).
The batch runs in a worker thread (the event loop keeps answering meanwhile) and each sentence's
future gets its result. A large request simply spreads over several batches.

Why the quiet gap is counted so: under load, the clients a batch answers send their next sentences
a few milliseconds after their answers. Counted from the oldest arrival, as it was, the sentences
that had queued meanwhile left at once without them, and 32 closed-loop clients settled into two
alternating batches of 16. Counted from the batch end alone, the event loop could spend the whole
gap handing 32 answers back before reading a new request; and since 32 requests pass the HTTP stack
in step, the first reaches the queue only once all have been parsed (README, "Serve", has the
measurements). The quiet gap is only needed while some of the previous batch's clients are still to
come back: once as many sentences have arrived since it ended as it held, waiting longer mostly waits
for nobody, and an idle server answering one client at a time paid the gap (and the event loop's
timer rounding) on every sentence. Sentences that queued while the batch decoded do not count, or two
alternating halves would again each start as soon as the other had. Which
sentences share a batch never changes a translation, because the model decodes with an exact padding
strategy (see `serving.app`).

No library does this: the ASGI servers and frameworks batch nothing, and Ray Serve's or Triton's
batchers are whole serving systems; this is the one queue and loop the server needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch

from seq2seq.models.search import Hypothesis


def model_thread(threads: int) -> ThreadPoolExecutor:
    """The single thread that runs every torch operation of the server: loading the model and each batch.

    On PyTorch's OpenMP backend every thread that runs parallel operations gets a team of its own, and
    two teams on the same cores slow each other down: loaded in the event loop's thread and decoded in
    another, a model ran at about half speed (measured: README, "Serve").
    """
    return ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="model", initializer=torch.set_num_threads, initargs=(threads,)
    )


Settings = tuple[int, int, float]  # beam_size, n_best, alpha: what sentences of one batch share
Decode = Callable[[list[Any], Settings], list[list[tuple[str, Hypothesis]]]]  # sources -> n-best lists


class QueueFull(Exception):
    """The queue holds its maximum of sentences; the request should be retried later."""


@dataclass
class Pending:
    """A sentence waiting for its batch: its source as `decode` takes it (the server's: piece ids), its
    piece count, settings and the future of its n-best list."""

    source: Any
    pieces: int
    settings: Settings
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)


@dataclass
class BatchReport:
    """What one decoded batch held, for the metrics: sentences, the share of source pads, and the seconds
    from handing the batch to the model thread to its results (how busy the model is, under load)."""

    sentences: int
    pad_fraction: float
    seconds: float


class Batcher:
    """The queue and the loop that cuts it into batches.

    Args:
        decode: translates a list of sources with one set of settings (runs in the worker thread).
        max_tokens: padded source pieces per batch (longest sentence x sentences).
        max_wait_ms: the quiet gap: a batch starts once no sentence has joined for this long.
        max_delay_ms: the longest a batch waits for company once its oldest sentence could start.
        max_queue: sentences the queue may hold; a request that would exceed it gets `QueueFull`.
        on_batch: called with each batch's `BatchReport` (the metrics).
        worker: the one thread that runs the model (`model_thread`); stopped with the batcher.
    """

    def __init__(
        self,
        decode: Decode,
        max_tokens: int,
        max_wait_ms: float,
        max_delay_ms: float,
        max_queue: int,
        on_batch: Callable[[BatchReport], None] = lambda report: None,
        worker: ThreadPoolExecutor | None = None,
    ) -> None:
        self.decode, self.max_tokens, self.max_wait = decode, max_tokens, max_wait_ms / 1000
        self.max_delay = max_delay_ms / 1000
        # time.monotonic() of the latest arrival, of the latest answer handed back, of the latest batch end
        self._last_arrival = self._last_answer = self._model_free = 0.0
        self._last_size = 0  # sentences of the latest batch
        self._incoming = 0  # requests on their way to the queue (`expect`)
        self.max_queue, self.on_batch = max_queue, on_batch
        self.queue: list[Pending] = []
        self._arrived = asyncio.Event()
        self._worker = worker or model_thread(torch.get_num_threads())
        self._task: asyncio.Task | None = None

    @property
    def depth(self) -> int:
        """Sentences waiting for a batch."""
        return len(self.queue)

    def start(self) -> None:
        """Starts the loop on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Decodes what is queued, then stops the loop and the worker thread."""
        while self.queue:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._worker.shutdown(wait=True)

    def expect(self) -> Callable[[], None]:
        """Notes a request on its way to the queue (its body still being read and checked), which a batch
        waits for as for an arrival, within `max_delay_ms`. Returns the call that says it has reached the
        queue or failed (calls after the first do nothing)."""
        self._incoming += 1
        done = False

        def arrived() -> None:
            nonlocal done
            if not done:
                done = True
                self._incoming -= 1
                self._arrived.set()

        return arrived

    async def warm_up(self, sources: list[Any], settings: Settings) -> None:
        """Decodes `sources` in the worker thread, outside the queue and the metrics."""
        await asyncio.get_running_loop().run_in_executor(self._worker, self.decode, sources, settings)

    async def translate(
        self, sources: list[Any], pieces: list[int], settings: Settings
    ) -> list[list[tuple[str, Hypothesis]]]:
        """The n-best lists of `sources` (with their piece counts), once their batches have run."""
        if len(self.queue) + len(sources) > self.max_queue:
            raise QueueFull(f"the queue holds {len(self.queue)} of at most {self.max_queue} sentences")
        loop = asyncio.get_running_loop()
        waiting = [
            Pending(s, n, settings, loop.create_future()) for s, n in zip(sources, pieces, strict=True)
        ]
        self.queue.extend(waiting)
        self._last_arrival = time.monotonic()
        self._arrived.set()
        try:
            return list(await asyncio.gather(*(p.future for p in waiting)))
        finally:
            self._last_answer = time.monotonic()

    async def _run(self) -> None:
        while True:
            while not self.queue:  # `expect`s arrivals wake it too
                self._arrived.clear()
                await self._arrived.wait()
            oldest = self.queue[0]
            wait = self._deadline(oldest) - time.monotonic()
            if wait > 0 and self._fill(oldest.settings) < self.max_tokens:
                self._arrived.clear()  # woken by the next arrival, which may fill the batch, or at the deadline
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), wait)
                continue
            batch = self._take(oldest.settings)
            self._last_size = len(batch)
            started = time.monotonic()
            try:
                found = await asyncio.get_running_loop().run_in_executor(
                    self._worker, self.decode, [p.source for p in batch], oldest.settings
                )
            except Exception as error:  # noqa: BLE001 -- a failed batch fails its requests, never the loop
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(error)
                continue
            finally:
                self._model_free = time.monotonic()
            for pending, result in zip(batch, found, strict=True):
                if not pending.future.done():  # its client may have gone
                    pending.future.set_result(result)
            longest = max(p.pieces for p in batch)
            real = sum(p.pieces for p in batch)
            pads = 1 - real / max(1, longest * len(batch))
            self.on_batch(BatchReport(len(batch), pads, self._model_free - started))

    def _deadline(self, oldest: Pending) -> float:
        """When the batch of `oldest` starts if it does not fill first: at once if the previous batch's
        clients are back, else after the quiet gap, within the delay."""
        if self._last_size and not self._incoming and self._returned() >= self._last_size:
            return time.monotonic()
        quiet = max(self._last_arrival, self._last_answer, self._model_free) + self.max_wait
        if self._incoming:
            quiet = max(quiet, time.monotonic() + self.max_wait)
        return min(quiet, max(oldest.arrived, self._model_free) + self.max_delay)

    def _returned(self) -> int:
        """Queued sentences that arrived after the previous batch ended."""
        return sum(p.arrived >= self._model_free for p in self.queue)

    def _fill(self, settings: Settings) -> int:
        """Padded source pieces of the batch that would be taken now."""
        taken = self._candidates(settings)
        return max((p.pieces for p in taken), default=0) * len(taken)

    def _candidates(self, settings: Settings) -> list[Pending]:
        """Queued sentences with these settings, oldest first, while the padded batch stays within max_tokens
        (at least one sentence, however long)."""
        taken: list[Pending] = []
        longest = 0
        for pending in self.queue:
            if pending.settings != settings:
                continue
            widest = max(longest, pending.pieces, 1)
            if taken and widest * (len(taken) + 1) > self.max_tokens:
                break
            taken.append(pending)
            longest = widest
        return taken

    def _take(self, settings: Settings) -> list[Pending]:
        taken = self._candidates(settings)
        chosen = {id(p) for p in taken}
        self.queue = [p for p in self.queue if id(p) not in chosen]
        return taken
