"""Atomic checkpoint writes: a process killed while saving leaves the previous checkpoint loadable."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from seq2seq.training.checkpoint_io import AtomicCheckpointIO

WRITER = """
import sys, torch
from seq2seq.training.checkpoint_io import AtomicCheckpointIO
io, path = AtomicCheckpointIO(), sys.argv[1]
io.save_checkpoint({"step": 1, "weights": torch.ones(4)}, path)
print("first saved", flush=True)
io.save_checkpoint({"step": 2, "weights": torch.zeros(150_000_000, dtype=torch.uint8)}, path)  # killed while writing this
print("second saved", flush=True)
"""


def test_kill_during_save_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline() == "first saved\n"
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".last.ckpt.*.tmp")):  # the second write has begun
        assert time.monotonic() < deadline and writer.poll() is None
        time.sleep(0.001)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    saved = torch.load(path, weights_only=True)
    assert saved["step"] == 1 and saved["weights"].tolist() == [1.0] * 4
    AtomicCheckpointIO().save_checkpoint({"step": 3}, path)  # the next save sweeps the killed one's temporary
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_save_replaces_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    io, path = AtomicCheckpointIO(), tmp_path / "sub" / "last.ckpt"
    io.save_checkpoint({"step": 1}, path)
    io.save_checkpoint({"step": 2}, path)
    assert torch.load(path, weights_only=True) == {"step": 2}
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]
