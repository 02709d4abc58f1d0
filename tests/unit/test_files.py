"""Atomic writes: a finished write replaces the file whole; a failed one, a full disk included, keeps the old one."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from seq2seq.errors import DiskFull
from seq2seq.files import atomic_folder, atomic_write, atomic_write_bytes
from seq2seq.training.checkpoint_io import AtomicCheckpointIO


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    atomic_write_bytes(path, b"old")
    with pytest.raises(KeyError), atomic_write(path) as handle:
        handle.write(b"half of the new")
        raise KeyError("the writer failed")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_a_folder_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    folder = tmp_path / "prepared"
    with atomic_folder(folder) as staging:
        (staging / "a").write_text("1")
    with pytest.raises(KeyError), atomic_folder(folder) as staging:
        (staging / "b").write_text("2")
        raise KeyError("the writer failed")
    assert [p.name for p in folder.iterdir()] == ["a"] and [p.name for p in tmp_path.iterdir()] == [
        "prepared"
    ]


def test_a_full_disk_names_the_file_and_the_space_and_keeps_the_old_file(small_disk: Path, fill_disk) -> None:
    path = small_disk / "results.json"
    atomic_write_bytes(path, b"old")
    fill_disk(small_disk, leave=64 * 1024)
    with pytest.raises(DiskFull) as raised:
        atomic_write_bytes(path, b"x" * 1024 * 1024)
    message = str(raised.value)
    assert f"writing {path} stopped after" in message and "MiB free on its file system" in message
    assert "resume=true" in message and "Traceback" not in message
    assert path.read_bytes() == b"old" and sorted(p.name for p in small_disk.iterdir()) == [
        "filler",
        "results.json",
    ]


def test_a_checkpoint_that_fills_the_disk_keeps_the_previous_one(small_disk: Path, fill_disk) -> None:
    """torch.save reports a full disk as a RuntimeError raised while handling the OSError: still DiskFull."""
    io, path = AtomicCheckpointIO(), small_disk / "last.ckpt"
    io.save_checkpoint({"step": 1}, path)
    fill_disk(small_disk, leave=128 * 1024)
    with pytest.raises(DiskFull, match="last.ckpt"):
        io.save_checkpoint({"step": 2, "weights": torch.zeros(1_000_000)}, path)
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler", "last.ckpt"]
