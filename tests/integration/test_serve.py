"""seq2seq-serve as users run it: a real uvicorn process on a free port, real HTTP clients, tiny checkpoints."""

from __future__ import annotations

import gzip
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from seq2seq.cli.translate import main as translate_main
from seq2seq.config import PROJECT_ROOT

pytestmark = pytest.mark.slow

SOURCES = (
    gzip.decompress((PROJECT_ROOT / "data" / "bundled" / "test.src.gz").read_bytes())
    .decode()
    .splitlines()[:48]
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A running seq2seq-serve process: its base URL, its log so far, and the process."""

    def __init__(self, process: subprocess.Popen, url: str, log: Path) -> None:
        self.process, self.url, self.log = process, url, log

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def serving(checkpoint: Path, tmp_path: Path, *options: str) -> Iterator[Server]:
    """Starts `seq2seq-serve --checkpoint CHECKPOINT ...` and waits until /ready answers 200."""
    port = free_port()
    log = tmp_path / f"serve-{port}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "seq2seq.cli.serve",
                "--checkpoint",
                str(checkpoint),
                "--port",
                str(port),
                "--threads",
                "1",
                *options,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ | {"PYTHONUNBUFFERED": "1"},
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, server.text()[-3000:]
            try:
                if httpx.get(f"{server.url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, server.text()[-3000:]
            time.sleep(0.2)
        yield server
    finally:
        process.kill()
        process.wait()


HOLD = ["--max-wait-ms", "5000", "--max-delay-ms", "5000"]  # a batch waits 5 s for company


def queued(url: str, sentences: int) -> None:
    """Waits until the server's queue holds `sentences` (its batch waits for company)."""
    deadline = time.monotonic() + 4
    while f"seq2seq_queue_depth {sentences:.1f}" not in httpx.get(f"{url}/metrics").text:
        assert time.monotonic() < deadline, f"the queue never held {sentences} sentences"
        time.sleep(0.05)


def samples(text: str) -> dict[str, float]:
    """/metrics read with Prometheus' own text parser: `name{label="value",...}` -> value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
            found[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return found


def alone(checkpoint: Path, tmp_path: Path, beam: int) -> list[str]:
    """`seq2seq-translate --batch-size 1` over SOURCES: each sentence decoded on its own."""
    source, output = tmp_path / "sources.txt", tmp_path / f"alone-{beam}.txt"
    source.write_text("\n".join(SOURCES) + "\n")
    translate_main(
        [
            "--checkpoint",
            str(checkpoint),
            "--input",
            str(source),
            "--output",
            str(output),
            "--batch-size",
            "1",
            "--beam-size",
            str(beam),
        ]
    )
    return output.read_text().splitlines()


def under_load(url: str, beam: int, seed: int) -> list[str]:
    """SOURCES sent by 8 concurrent clients in random groups (single sentences and lists); the answers in order."""
    rng = random.Random(seed)
    order = rng.sample(range(len(SOURCES)), len(SOURCES))
    groups, start = [], 0
    while start < len(order):
        size = rng.choice([1, 1, 2, 3, 5])
        groups.append(order[start : start + size])
        start += size
    answers: dict[int, str] = {}

    def send(group: list[int]) -> None:
        text = SOURCES[group[0]] if len(group) == 1 else [SOURCES[i] for i in group]
        response = httpx.post(f"{url}/translate", json={"text": text, "beam_size": beam}, timeout=120)
        assert response.status_code == 200, response.text
        for i, translation in zip(group, response.json()["translations"], strict=True):
            answers[i] = translation["text"]

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, groups))
    return [answers[i] for i in range(len(SOURCES))]


@pytest.mark.parametrize("name", ["masking", "masking_outputs", "naive_sharp"])
def test_answers_under_concurrent_load_equal_each_sentence_translated_alone(
    name, tiny_checkpoint, tmp_path
) -> None:
    """Byte for byte what `seq2seq-translate --batch-size 1` gives, whoever shares the batch; a checkpoint of a
    strategy that is not exact (masking_outputs, naive) is served with state_reset, and the log says so."""
    checkpoint = tiny_checkpoint(name)
    with serving(checkpoint, tmp_path, "--max-wait-ms", "20") as server:
        for beam in (1, 5):
            expected = alone(checkpoint, tmp_path, beam)
            assert under_load(server.url, beam, seed=beam) == expected
        metrics = samples(httpx.get(f"{server.url}/metrics").text)
        log = server.text()
    assert metrics["seq2seq_sentences_total"] >= 2 * len(SOURCES)
    assert metrics["seq2seq_batch_sentences_count"] < 2 * len(SOURCES)  # sentences did share batches
    assert metrics["seq2seq_batch_pad_fraction_count"] == metrics["seq2seq_batch_sentences_count"]
    assert 0 <= metrics["seq2seq_batch_pad_fraction_sum"] < metrics["seq2seq_batch_pad_fraction_count"]
    assert metrics["seq2seq_batch_seconds_count"] == metrics["seq2seq_batch_sentences_count"]
    assert metrics["seq2seq_batch_seconds_sum"] > 0
    if name == "masking":
        assert "checkpoint's own padding strategy, MaskingStrategy(), which is exact" in log
    else:
        trained = {"masking_outputs": "MaskingOutputsStrategy()", "naive_sharp": "NaiveStrategy()"}[name]
        assert f"trained with {trained}, which is not exact: decoding with StateResetStrategy()" in log


BAD_REQUESTS = [  # body, status, field, words of the message
    (b'{"text": "ein Satz"', 400, None, "not valid JSON"),
    (b'{"text": "\xff\xfe"}', 400, None, "not valid UTF-8"),
    (b'["ein Satz"]', 422, None, "must be a JSON object"),
    (b'{"text": 5}', 422, "text", "text"),
    (b'{"text": []}', 422, "text", "empty list"),
    (b'{"text": "ein Satz", "beam": 3}', 422, "beam", "unknown field 'beam'"),
    (b'{"text": "ein Satz", "beam_size": 9}', 422, "beam_size", "between 1 and 8"),
    (b'{"text": "ein Satz", "beam_size": 2, "n_best": 3}', 422, "n_best", "between 1 and beam_size (2)"),
    (b'{"text": ["a", "b", "c", "d", "e"]}', 413, "text", "at most 4 per request"),
    (b'{"text": ["kurz", "' + b"lang " * 40 + b'"]}', 422, "text.1", "at most 30"),
    (b'{"text": "' + b"x" * 3000 + b'"}', 413, None, "at most 2000"),
]


def test_bad_requests_get_a_json_error_naming_the_field_and_the_limit(tiny_checkpoint, tmp_path) -> None:
    limits = [
        "--max-beam",
        "8",
        "--max-request-sentences",
        "4",
        "--max-length",
        "30",
        "--max-body-bytes",
        "2000",
    ]
    with serving(tiny_checkpoint("masking"), tmp_path, *limits) as server:
        for body, status, field, words in BAD_REQUESTS:
            response = httpx.post(
                f"{server.url}/translate", content=body, headers={"content-type": "application/json"}
            )
            assert response.status_code == status, (body[:60], response.text)
            error = response.json()["error"]
            assert error["field"] == field and words in error["message"], (body[:60], error)
        ok = httpx.post(f"{server.url}/translate", json={"text": SOURCES[0], "n_best": 2, "beam_size": 2})
        assert ok.status_code == 200 and len(ok.json()["translations"][0]["hypotheses"]) == 2
        metrics = samples(httpx.get(f"{server.url}/metrics").text)
        assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
        assert "TranslateRequest" in httpx.get(f"{server.url}/openapi.json").text
        assert httpx.get(f"{server.url}/docs").status_code == 200
    assert metrics['seq2seq_requests_total{route="/translate",status="422"}'] == 7
    assert metrics['seq2seq_requests_total{route="/translate",status="200"}'] == 1
    assert metrics['seq2seq_requests_total{route="/translate",status="413"}'] == 2


def test_a_full_queue_answers_503_with_retry_after(tiny_checkpoint, tmp_path) -> None:
    """The first request waits for company (HOLD); the second would overflow the queue."""
    queue = ["--max-queue", "4", "--max-request-sentences", "4", *HOLD]
    with serving(tiny_checkpoint("masking"), tmp_path, *queue) as server, ThreadPoolExecutor(1) as pool:
        first = pool.submit(httpx.post, f"{server.url}/translate", json={"text": SOURCES[:3]}, timeout=60)
        queued(server.url, 3)
        refused = httpx.post(f"{server.url}/translate", json={"text": SOURCES[3:5]})
        assert first.result().status_code == 200
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1", refused.text
    assert "at capacity" in refused.json()["error"]["message"]


def test_sigterm_finishes_the_requests_in_flight_then_exits_0(tiny_checkpoint, tmp_path) -> None:
    with serving(tiny_checkpoint("masking"), tmp_path, *HOLD) as server:
        answers: list[httpx.Response] = []
        clients = [
            threading.Thread(
                target=lambda text=text: answers.append(
                    httpx.post(f"{server.url}/translate", json={"text": text}, timeout=60)
                )
            )
            for text in SOURCES[:4]
        ]
        for client in clients:
            client.start()
        queued(server.url, 4)
        server.process.send_signal(signal.SIGTERM)
        for client in clients:
            client.join(60)
        assert server.process.wait(60) == 0, server.text()[-3000:]
    assert [a.status_code for a in answers] == [200] * 4
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/health", timeout=2)


@pytest.mark.parametrize("damage", ["missing", "damaged"])
def test_start_up_fails_in_one_line_on_a_bad_checkpoint(damage, tmp_path) -> None:
    checkpoint = tmp_path / "model.ckpt"
    if damage == "damaged":
        checkpoint.write_bytes(b"not a checkpoint")
    done = subprocess.run(
        [sys.executable, "-m", "seq2seq.cli.serve", "--checkpoint", str(checkpoint)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert str(checkpoint) in line
