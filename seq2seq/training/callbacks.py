"""Callbacks that measure padding waste and throughput during training."""

from __future__ import annotations

import time
from bisect import bisect_left
from typing import Any

import lightning as L

from seq2seq.data.batch import Batch

TOTALS = ("pad_tokens", "all_tokens", "tgt_tokens", "pad_flops", "all_flops", "step_seconds")


class PaddingMonitor(L.Callback):
    """Logs `train/pad_fraction`, `train/pad_compute_fraction` and `train/tokens_per_sec` every step, with run totals.

    `train/pad_compute_fraction` is the share of the step's matrix-multiply FLOPs spent at pad
    positions (encoder, decoder, attention and output layer; `Seq2Seq.flops`): what bucketing and
    the padding strategy leave of the pads' cost.

    Throughput counts real target tokens over the time of the training step (forward, backward and
    optimizer), excluding validation. At each epoch end the pad fraction of the epoch is also logged
    per length bucket, `train/pad_fraction_bucket/LO-HI`, where a batch falls in the bucket of its
    padded length (the longer side), so that waste on a corpus shows where it comes from.

    Args:
        bucket_edges: upper bounds (inclusive) of the length buckets; longer batches form a last bucket.
    """

    def __init__(self, bucket_edges: list[int] = (8, 16, 32, 64, 128)) -> None:
        self.bucket_edges = sorted(bucket_edges)
        self._epoch_buckets: dict[int, list[int]] = {}
        self.pad_tokens = 0
        self.all_tokens = 0
        self.tgt_tokens = 0
        self.pad_flops = 0.0
        self.all_flops = 0.0
        self.step_seconds = 0.0
        self._start = 0.0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Batch, batch_idx: int
    ) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Batch, batch_idx: int
    ) -> None:
        seconds = time.perf_counter() - self._start
        self.pad_tokens += batch.num_slots - batch.num_real_tokens
        self.all_tokens += batch.num_slots
        self.tgt_tokens += batch.num_tgt_tokens
        flops = pl_module.net.flops(batch)
        self.pad_flops += flops.pad
        self.all_flops += flops.total
        self.step_seconds += seconds
        bucket = self._epoch_buckets.setdefault(
            bisect_left(self.bucket_edges, max(batch.src.size(1), batch.tgt_out.size(1))), [0, 0]
        )
        bucket[0] += batch.num_slots - batch.num_real_tokens
        bucket[1] += batch.num_slots
        pl_module.log_dict(
            {
                "train/pad_fraction": batch.pad_fraction,
                "train/pad_compute_fraction": flops.pad_fraction,
                "train/tokens_per_sec": batch.num_tgt_tokens / max(seconds, 1e-9),
            },
            batch_size=len(batch),
        )

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        buckets, self._epoch_buckets = self._epoch_buckets, {}
        pl_module.log_dict(
            {
                f"train/pad_fraction_bucket/{self.bucket_name(i)}": pad / total
                for i, (pad, total) in sorted(buckets.items())
            }
        )

    def state_dict(self) -> dict[str, Any]:
        # Run totals travel in checkpoints, so a resumed run reports the whole run's pad fraction.
        return {name: getattr(self, name) for name in TOTALS} | {"epoch_buckets": dict(self._epoch_buckets)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in TOTALS:
            setattr(self, name, state.get(name, 0))  # checkpoints from before the FLOP totals lack them
        self._epoch_buckets = {int(k): list(v) for k, v in state["epoch_buckets"].items()}

    def bucket_name(self, index: int) -> str:
        """Its name: "1-8", "9-16", ..., "129+" for the default edges."""
        low = 1 if index == 0 else self.bucket_edges[index - 1] + 1
        return f"{low}-{self.bucket_edges[index]}" if index < len(self.bucket_edges) else f"{low}+"

    def summary(self) -> dict[str, float]:
        """Run-level pad fraction and throughput (token-weighted, not a mean of per-step values)."""
        return {
            "train/pad_fraction": self.pad_tokens / max(1, self.all_tokens),
            "train/pad_compute_fraction": self.pad_flops / max(1.0, self.all_flops),
            "train/tokens_per_sec": self.tgt_tokens / max(self.step_seconds, 1e-9),
        }
