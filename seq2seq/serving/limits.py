"""The server's limits on a request, a batch and the queue: its command-line options, checked together."""

from __future__ import annotations

from dataclasses import dataclass

from seq2seq.errors import InputError


@dataclass(frozen=True)
class Limits:
    """What one request and the queue may hold (the server's command-line limits)."""

    max_length: int = 256  # source pieces per sentence
    max_request_sentences: int = 256
    max_body_bytes: int = 1_000_000
    max_beam: int = 16
    max_queue: int = 4096  # sentences waiting for a batch
    max_tokens: int = 4096  # padded source pieces per batch
    max_wait_ms: float = 2.0  # the quiet gap that starts a batch: an idle server answers this much later
    max_delay_ms: float = 25.0  # the longest a batch waits for company once it could start

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value > 0:
                raise InputError(f"--{name.replace('_', '-')} must be positive; got {value}")
        if self.max_delay_ms < self.max_wait_ms:
            raise InputError(
                f"--max-delay-ms ({self.max_delay_ms}) is shorter than --max-wait-ms ({self.max_wait_ms}): a batch "
                f"would never wait for its quiet gap; raise --max-delay-ms to at least --max-wait-ms"
            )
        if self.max_request_sentences > self.max_queue:
            raise InputError(
                f"--max-request-sentences ({self.max_request_sentences}) is larger than --max-queue "
                f"({self.max_queue}): such a request could never be queued; raise --max-queue or lower it"
            )
