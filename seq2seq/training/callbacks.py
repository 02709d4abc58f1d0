"""Callbacks that measure padding waste and throughput during training."""

from __future__ import annotations

import time
from typing import Any

import lightning as L

from seq2seq.data.batch import Batch


class PaddingMonitor(L.Callback):
    """Logs `train/pad_fraction` and `train/tokens_per_sec` every step and keeps run totals.

    Throughput counts real target tokens over the time of the training step (forward, backward and
    optimizer), excluding validation.
    """

    def __init__(self) -> None:
        self.pad_tokens = 0
        self.all_tokens = 0
        self.tgt_tokens = 0
        self.step_seconds = 0.0
        self._start = 0.0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Batch, batch_idx: int) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Batch, batch_idx: int) -> None:
        seconds = time.perf_counter() - self._start
        self.pad_tokens += batch.num_slots - batch.num_real_tokens
        self.all_tokens += batch.num_slots
        self.tgt_tokens += batch.num_tgt_tokens
        self.step_seconds += seconds
        pl_module.log_dict(
            {"train/pad_fraction": batch.pad_fraction, "train/tokens_per_sec": batch.num_tgt_tokens / max(seconds, 1e-9)},
            batch_size=len(batch),
        )

    def summary(self) -> dict[str, float]:
        """Run-level pad fraction and throughput (token-weighted, not a mean of per-step values)."""
        return {
            "train/pad_fraction": self.pad_tokens / max(1, self.all_tokens),
            "train/tokens_per_sec": self.tgt_tokens / max(self.step_seconds, 1e-9),
        }
