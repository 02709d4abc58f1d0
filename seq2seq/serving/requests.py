"""What a translation request may hold and what it gets back: the JSON schema, and every check a request passes.

Each refusal is a `RequestError`: the HTTP status, the field at fault and a message that names the
limit and says how to fix the request; the app answers it as `{"error": {"field": ..., "message": ...}}`.
"""

from __future__ import annotations

import json

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, ValidationError

from seq2seq.inference.translator import Translator
from seq2seq.models.search import DEFAULT_ALPHA, DEFAULT_BEAM_SIZE
from seq2seq.serving.batcher import Settings
from seq2seq.serving.limits import Limits


class TranslateRequest(BaseModel):
    """One sentence or a list of them, with the search settings for this request."""

    model_config = ConfigDict(extra="forbid")

    text: StrictStr | list[StrictStr] = Field(description="a sentence, or a list of sentences")
    beam_size: StrictInt = Field(DEFAULT_BEAM_SIZE, description="beams per sentence; 1 is greedy search")
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


def check_sentences(texts: list[str], translator: Translator, limits: Limits) -> list[list[int]]:
    """The source piece ids of each sentence, once the request's size and every sentence's length are
    within limits (encoded here once: the batcher decodes these ids)."""
    if not texts:
        raise RequestError(422, "text", "text is an empty list; send at least one sentence")
    if len(texts) > limits.max_request_sentences:
        raise RequestError(
            413,
            "text",
            f"the request holds {len(texts)} sentences; the server takes at most "
            f"{limits.max_request_sentences} per request: split it",
        )
    encoded = [
        ids if text.strip() else []
        for text, ids in zip(texts, translator.vocabs.src.encode(texts), strict=True)
    ]
    for index, count in enumerate(len(ids) for ids in encoded):
        if count > limits.max_length:
            field = "text" if len(texts) == 1 else f"text.{index}"
            raise RequestError(
                422,
                field,
                f"sentence {index} has {count} pieces; the server takes at most {limits.max_length}",
            )
    return encoded
