"""The translation server's HTTP API (FastAPI): /translate, /health, /ready, /metrics and the OpenAPI docs.

Requests are read and checked here, each problem answered with a 4xx JSON error that names the field
and the limit (`{"error": {"field": ..., "message": ...}}`); the sentences then go to the `Batcher`.
The model decodes with an exact padding strategy (`exact_padding`), so a sentence's translation is
the same whichever other requests share its batch.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, ValidationError

from seq2seq.inference.translator import Translator
from seq2seq.models.search import DEFAULT_ALPHA, DEFAULT_MAX_LEN_A, DEFAULT_MAX_LEN_B
from seq2seq.models.seq2seq import Seq2Seq
from seq2seq.padding import StateResetStrategy
from seq2seq.serving.batcher import Batcher, BatchReport, QueueFull, Settings
from seq2seq.serving.limits import Limits

log = logging.getLogger(__name__)


class TranslateRequest(BaseModel):
    """One sentence or a list of them, with the search settings for this request."""

    model_config = ConfigDict(extra="forbid")

    text: StrictStr | list[StrictStr] = Field(description="a sentence, or a list of sentences")
    beam_size: StrictInt = Field(5, description="beams per sentence; 1 is greedy search")
    n_best: StrictInt = Field(1, description="hypotheses returned per sentence, best first")
    alpha: StrictFloat | StrictInt = Field(DEFAULT_ALPHA, description="length penalty exponent; 0: none")


class Hypothesis(BaseModel):
    """A translation and its length-normalised log-probability."""

    text: str
    score: float


class Translation(BaseModel):
    """The best translation of one sentence and its n-best list."""

    text: str
    score: float
    hypotheses: list[Hypothesis]


class TranslateResponse(BaseModel):
    """The translations, in the order of the request's sentences."""

    translations: list[Translation]


class RequestError(Exception):
    """A request the server refuses: the HTTP status, the field at fault and a message saying how to fix it."""

    def __init__(self, status: int, field: str | None, message: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.field, self.message, self.headers = status, field, message, headers


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


class Metrics:
    """The Prometheus series the server exports, in a registry of its own."""

    def __init__(self, queue_depth: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "seq2seq_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "seq2seq_request_seconds", "time to answer a request", ["route"], registry=self.registry
        )
        self.batch_sentences = Histogram(
            "seq2seq_batch_sentences",
            "sentences per decoded batch",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.registry,
        )
        self.batch_pads = Histogram(
            "seq2seq_batch_pad_fraction",
            "share of source pads in each decoded batch",
            buckets=(0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0),
            registry=self.registry,
        )
        self.sentences = Counter("seq2seq_sentences", "sentences translated", registry=self.registry)
        depth = Gauge("seq2seq_queue_depth", "sentences waiting for a batch", registry=self.registry)
        depth.set_function(queue_depth)

    def batch(self, report: BatchReport) -> None:
        self.batch_sentences.observe(report.sentences)
        self.batch_pads.observe(report.pad_fraction)
        self.sentences.inc(report.sentences)


def create_app(translator: Translator, limits: Limits, strategy_note: str = "") -> FastAPI:
    """The app serving `translator`, whose net decodes with an exact strategy (`exact_padding`)."""

    def decode(texts: list[str], settings: Settings) -> list:
        beam_size, n_best, alpha = settings
        return translator.translate(
            texts, beam_size, n_best, alpha=alpha, max_len_a=DEFAULT_MAX_LEN_A, max_len_b=DEFAULT_MAX_LEN_B
        )

    state = {"ready": False}
    batcher: Batcher | None = None
    metrics = Metrics(lambda: batcher.depth if batcher else 0)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal batcher
        batcher = Batcher(decode, limits.max_tokens, limits.max_wait_ms, limits.max_queue, metrics.batch)
        batcher.start()
        await batcher.translate(["warm up"], [2], (1, 1, DEFAULT_ALPHA))  # the first batch pays the start-up
        state["ready"] = True
        log.info("ready: %s", strategy_note or "decoding with an exact padding strategy")
        yield
        state["ready"] = False
        await batcher.stop()  # uvicorn has finished every request in flight by now

    app = FastAPI(
        title="seq2seq translation server",
        description="Translations that never depend on which other requests share a batch.",
        lifespan=lifespan,
    )

    @app.middleware("http")
    async def count(request: Request, call_next):
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = route.path if route is not None else "other"
        metrics.requests.labels(path, str(response.status_code)).inc()
        metrics.latency.labels(path).observe(time.perf_counter() - start)
        return response

    @app.exception_handler(RequestError)
    async def refused(request: Request, error: RequestError) -> JSONResponse:
        body = {"error": {"field": error.field, "message": error.message}}
        return JSONResponse(body, status_code=error.status, headers=error.headers)

    @app.get("/health")
    async def health() -> dict:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        """Readiness: the model is loaded and has decoded its warm-up batch."""
        return JSONResponse({"ready": state["ready"]}, status_code=200 if state["ready"] else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        """Prometheus text format: requests, latency, batch sizes and pads, queue depth."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post(
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
        body = await read_body(request, limits.max_body_bytes)
        asked = parse_request(body)
        texts = [asked.text] if isinstance(asked.text, str) else asked.text
        settings = check_settings(asked, limits)
        pieces = check_sentences(texts, translator, limits)
        if not state["ready"] or batcher is None:
            raise RequestError(
                503, None, "the model is still warming up; retry shortly", {"Retry-After": "1"}
            )
        try:
            found = await batcher.translate(texts, pieces, settings)
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

    return app


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) past `limit` bytes, however it is sent."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, None, f"the body has {declared} bytes; the server takes at most {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise RequestError(413, None, f"the body is over the server's limit of {limit} bytes")
    return bytes(body)


def parse_request(body: bytes) -> TranslateRequest:
    """The request's JSON, decoded and checked against `TranslateRequest`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RequestError(
            400, None, f"the body is not valid UTF-8 (byte {error.start}); send JSON encoded as UTF-8"
        ) from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        raise RequestError(
            400,
            None,
            f"the body is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno}); "
            'send e.g. {"text": "Hallo Welt"}',
        ) from None
    try:
        return TranslateRequest.model_validate(payload)
    except ValidationError as invalid:
        first = invalid.errors()[0]
        loc = first["loc"]
        field = None if not loc else ".".join([str(loc[0]), *(str(p) for p in loc[1:] if isinstance(p, int))])
        if first["type"] == "extra_forbidden":
            allowed = ", ".join(TranslateRequest.model_fields)
            message = f"unknown field {field!r}; a request may hold {allowed}"
        elif first["type"] == "model_type":
            message = 'the body must be a JSON object, e.g. {"text": "Hallo Welt"}'
        elif loc and loc[0] == "text":
            message = f"{field} must be a string, or text a list of strings ({first['msg']})"
        else:
            message = f"{field}: {first['msg']}"
        raise RequestError(422, field, message) from None


def check_settings(asked: TranslateRequest, limits: Limits) -> Settings:
    """(beam_size, n_best, alpha) within the server's limits."""
    if not 1 <= asked.beam_size <= limits.max_beam:
        raise RequestError(
            422, "beam_size", f"beam_size must be between 1 and {limits.max_beam}; got {asked.beam_size}"
        )
    if not 1 <= asked.n_best <= asked.beam_size:
        raise RequestError(
            422, "n_best", f"n_best must be between 1 and beam_size ({asked.beam_size}); got {asked.n_best}"
        )
    if not 0.0 <= asked.alpha <= 10.0:
        raise RequestError(422, "alpha", f"alpha must be between 0 and 10; got {asked.alpha}")
    return asked.beam_size, asked.n_best, float(asked.alpha)


def check_sentences(texts: list[str], translator: Translator, limits: Limits) -> list[int]:
    """The piece count of each sentence, once the request's size and every sentence's length are within limits."""
    if not texts:
        raise RequestError(422, "text", "text is an empty list; send at least one sentence")
    if len(texts) > limits.max_request_sentences:
        raise RequestError(
            413,
            "text",
            f"the request holds {len(texts)} sentences; the server takes at most "
            f"{limits.max_request_sentences} per request: split it",
        )
    pieces = [len(ids) for ids in translator.vocabs.src.encode(texts)]
    for index, count in enumerate(pieces):
        if count > limits.max_length:
            field = "text" if len(texts) == 1 else f"text.{index}"
            raise RequestError(
                422,
                field,
                f"sentence {index} has {count} pieces; the server takes at most {limits.max_length}",
            )
    return pieces
