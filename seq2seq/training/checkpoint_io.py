"""Checkpoints written atomically: a kill while saving leaves the previous file whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from seq2seq.files import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint through `seq2seq.files.atomic_write`: a temporary, fsynced, renamed over `path`.

    Lightning's own writer opens the target and writes into it, so a run killed mid-save (preemption,
    out of memory, a full disk) would leave a truncated `last.ckpt` and nothing to resume from. A full
    disk ends the run with one paragraph (`DiskFull`) and the previous checkpoint kept.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options (got {storage_options!r})")
        path = Path(path)
        for stale in path.parent.glob(f".{path.name}.*.tmp"):  # a save killed by SIGKILL leaves its temporary
            stale.unlink(missing_ok=True)
        with atomic_write(path) as handle:
            torch.save(checkpoint, handle)
