"""The translation server's HTTP API (FastAPI): /translate, /health, /ready, /metrics and the OpenAPI docs.

Requests are read and checked by `serving.requests`, their sentences decoded by the `Batcher`. The
model decodes with an exact padding strategy (`exact_padding`), so a sentence's translation is the
same whichever other requests share its batch. The routes read what they serve from `app.state.served`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seq2seq.data.vocab import UNK_ID
from seq2seq.inference.translator import Translator
from seq2seq.models.search import DEFAULT_ALPHA, DEFAULT_BEAM_SIZE, DEFAULT_MAX_LEN_A, DEFAULT_MAX_LEN_B
from seq2seq.models.seq2seq import Seq2Seq
from seq2seq.padding import StateResetStrategy
from seq2seq.serving.batcher import Batcher, QueueFull, Settings
from seq2seq.serving.limits import Limits
from seq2seq.serving.metrics import Metrics
from seq2seq.serving.requests import (
    Hypothesis,
    RequestError,
    TranslateRequest,
    TranslateResponse,
    Translation,
    check_sentences,
    check_settings,
    parse_request,
    read_body,
)

log = logging.getLogger(__name__)
router = APIRouter()


def exact_padding(net: Seq2Seq) -> str:
    """Makes `net` decode with an exact strategy: its own if exact, else `state_reset`. Says which and why."""
    own = net.padding
    if own.exact:
        return f"decoding with the checkpoint's own padding strategy, {own!r}, which is exact"
    net.set_padding(StateResetStrategy())
    return (
        f"the checkpoint was trained with {own!r}, which is not exact: decoding with StateResetStrategy(), "
        f"which is, and serves a model trained with any strategy at its own BLEU"
    )


@dataclass
class Served:
    """What the routes serve: the translator, its limits, the metrics and, once started, the batcher."""

    translator: Translator
    limits: Limits
    note: str
    metrics: Metrics
    worker: ThreadPoolExecutor | None = None
    batcher: Batcher | None = None
    ready: bool = False

    def decode(self, sources: list[list[int]], settings: Settings) -> list:
        """Runs in the batcher's worker thread: one batch of source piece ids, one set of search settings."""
        beam_size, n_best, alpha = settings
        return self.translator.translate_ids(
            sources, beam_size, n_best, alpha=alpha, max_len_a=DEFAULT_MAX_LEN_A, max_len_b=DEFAULT_MAX_LEN_B
        )


def create_app(
    translator: Translator, limits: Limits, strategy_note: str = "", worker: ThreadPoolExecutor | None = None
) -> FastAPI:
    """The app serving `translator`, whose net decodes with an exact strategy (`exact_padding`), in `worker`
    (the thread that loaded it, `batcher.model_thread`)."""
    app = FastAPI(
        title="seq2seq translation server",
        description="Translations that never depend on which other requests share a batch.",
        lifespan=lifespan,
    )
    metrics = Metrics(lambda: served.batcher.depth if served.batcher else 0)
    served = Served(translator, limits, strategy_note, metrics, worker)
    app.state.served = served
    app.include_router(router)
    app.add_middleware(CountRequests)
    app.add_exception_handler(RequestError, refused)
    return app


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Starts the batcher and decodes a warm-up batch before /ready says so; drains the queue at the end."""
    served: Served = app.state.served
    limits = served.limits
    served.batcher = Batcher(
        served.decode,
        limits.max_tokens,
        limits.max_wait_ms,
        limits.max_delay_ms,
        limits.max_queue,
        served.metrics.batch,
        served.worker,
    )
    served.batcher.start()
    await served.batcher.warm_up(warm_up_batch(served), (DEFAULT_BEAM_SIZE, 1, DEFAULT_ALPHA))
    served.ready = True
    log.info("ready: %s", served.note or "decoding with an exact padding strategy")
    yield
    served.ready = False
    await served.batcher.stop()  # uvicorn has answered every request in flight by now


WARM_UP_SENTENCES = range(4, 36)  # piece counts: 32 sentences, about as long as a corpus's usual ones


def warm_up_batch(served: Served) -> list[list[int]]:
    """The batch decoded before /ready answers 200: 32 sentences of 4-35 pieces, at the default beam.

    So the first requests do not pay for what a process's first batches cost: oneDNN creating its
    kernels, the allocator growing to a batch's working memory. A one-sentence warm-up left that to the
    first load (resident memory rose by a tenth in its first seconds; README, "Serve").
    """
    pieces = served.translator.vocabs.src.encode(["warm up"])[0] or [UNK_ID]
    longest = min(max(WARM_UP_SENTENCES), served.limits.max_length)
    return [(pieces * n)[: min(n, longest)] for n in WARM_UP_SENTENCES]


class CountRequests:
    """ASGI middleware: counts each request by route and status, and times it; tells the batcher of each
    translation request from its start, so that a batch waits for the requests still being read
    (`Batcher.expect`; the route calls `request.state.arrived()` once its sentences are queued).

    Plain ASGI rather than Starlette's `BaseHTTPMiddleware`, which runs every request through a task
    group and memory streams: under load that cost the event loop a measurable share of each answer.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500
        served: Served = scope["app"].state.served
        translating = scope["method"] == "POST" and scope["path"] == "/translate" and served.batcher
        arrived = served.batcher.expect() if translating else lambda: None
        scope.setdefault("state", {})["arrived"] = arrived

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            arrived()
            route = scope.get("route")
            path = route.path if route is not None else "other"
            served.metrics.requests.labels(path, str(status)).inc()
            served.metrics.latency.labels(path).observe(time.perf_counter() - start)


async def refused(request: Request, error: RequestError) -> JSONResponse:
    """A refused request's JSON error."""
    body = {"error": {"field": error.field, "message": error.message}}
    return JSONResponse(body, status_code=error.status, headers=error.headers)


@router.get("/health")
async def health() -> dict:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    """Readiness: the model is loaded and has decoded its warm-up batch."""
    is_ready = request.app.state.served.ready
    return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)


@router.get("/metrics")
async def prometheus(request: Request) -> Response:
    """Prometheus text format: requests, latency, batch sizes and pads, queue depth."""
    return Response(
        generate_latest(request.app.state.served.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )


@router.post(
    "/translate",
    response_model=TranslateResponse,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": TranslateRequest.model_json_schema()}},
        }
    },
)
async def translate(request: Request) -> TranslateResponse:
    """Translates one sentence or a list of them; the answer holds one translation per sentence, in order."""
    served: Served = request.app.state.served
    asked = parse_request(await read_body(request, served.limits.max_body_bytes))
    texts = [asked.text] if isinstance(asked.text, str) else asked.text
    settings = check_settings(asked, served.limits)
    sources = check_sentences(texts, served.translator, served.limits)
    if not served.ready or served.batcher is None:
        raise RequestError(503, None, "the model is still warming up; retry shortly", {"Retry-After": "1"})
    request.state.arrived()  # its sentences join the queue now
    try:
        found = await served.batcher.translate(sources, [len(ids) for ids in sources], settings)
    except QueueFull as full:
        raise RequestError(
            503, None, f"the server is at capacity ({full}); retry shortly", {"Retry-After": "1"}
        ) from None
    return TranslateResponse(
        translations=[
            Translation(
                text=nbest[0][0],
                score=nbest[0][1].normalized,
                hypotheses=[Hypothesis(text=t, score=h.normalized) for t, h in nbest],
            )
            for nbest in found
        ]
    )
