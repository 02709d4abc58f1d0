"""The server's Prometheus series, in a registry of its own: requests, latency, batches, pads, model time,
the queue."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from seq2seq.serving.batcher import BatchReport


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
        self.batch_seconds = Histogram(
            "seq2seq_batch_seconds",
            "model time per decoded batch (its sum over a time span: the share the model was busy)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.sentences = Counter("seq2seq_sentences", "sentences translated", registry=self.registry)
        depth = Gauge("seq2seq_queue_depth", "sentences waiting for a batch", registry=self.registry)
        depth.set_function(queue_depth)

    def batch(self, report: BatchReport) -> None:
        self.batch_sentences.observe(report.sentences)
        self.batch_pads.observe(report.pad_fraction)
        self.batch_seconds.observe(report.seconds)
        self.sentences.inc(report.sentences)
