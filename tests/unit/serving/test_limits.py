"""The server's limits are checked together when it starts, each error naming the options at fault."""

from __future__ import annotations

import pytest

from seq2seq.errors import InputError
from seq2seq.serving.limits import Limits


def test_a_request_larger_than_the_queue_is_refused_at_start_up() -> None:
    with pytest.raises(InputError, match=r"--max-request-sentences \(10\) is larger than --max-queue \(4\)"):
        Limits(max_request_sentences=10, max_queue=4)


@pytest.mark.parametrize("name", ["max_length", "max_tokens", "max_wait_ms", "max_delay_ms", "max_beam"])
def test_every_limit_must_be_positive(name) -> None:
    with pytest.raises(InputError, match=f"--{name.replace('_', '-')} must be positive; got 0"):
        Limits(**{name: 0})


def test_the_defaults_hold() -> None:
    assert Limits().max_request_sentences <= Limits().max_queue


def test_a_delay_shorter_than_the_quiet_gap_is_refused_at_start_up() -> None:
    with pytest.raises(InputError, match=r"--max-delay-ms \(5.0\) is shorter than --max-wait-ms \(10.0\)"):
        Limits(max_wait_ms=10.0, max_delay_ms=5.0)
