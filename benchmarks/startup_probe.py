"""A callback for benchmarks/data_scale.py: what one training process costs by the end of its first step.

`python train.py +callbacks.startup_probe._target_=startup_probe.StartupProbe +callbacks.startup_probe.out=DIR`
with this folder on PYTHONPATH. At the end of the first training batch each rank writes
`DIR/rank{N}.json`: seconds since the process started (from /proc, so the interpreter's own start-up
counts); then, after reading every page of the mapped training arrays once (as an epoch does, so
that the corpus shows in memory at all), peak RSS (VmHWM) and PSS (smaps_rollup: pages shared with
other processes, such as a mapped corpus, count once in the sum over processes).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np


def process_age_s() -> float:
    """Seconds since this process started, by the kernel's clock (field 22 of /proc/self/stat)."""
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    started_ticks = int(fields[19])
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - started_ticks / os.sysconf("SC_CLK_TCK")


def proc_kib(path: str, key: str) -> int:
    for line in Path(path).read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def touch_training_arrays(trainer: L.Trainer) -> int:
    """Reads each memory-mapped array of the training split once; returns their bytes (0 without any)."""
    train = trainer.datamodule.splits["train"]
    arrays = [
        getattr(getattr(train, side, None), name, None)
        for side in ("src", "tgt")
        for name in ("tokens", "offsets", "lengths")
    ]
    arrays = [array for array in arrays if isinstance(array, np.memmap)]
    for array in arrays:
        int(array.sum())
    return sum(array.nbytes for array in arrays)


class StartupProbe(L.Callback):
    """At the end of the first training batch, writes this rank's start-up seconds and memory to `out`."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.done = False

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.done:
            return
        self.done = True
        seconds = process_age_s()
        touched = touch_training_arrays(trainer)
        record = {
            "rank": trainer.global_rank,
            "seconds_to_first_step": seconds,
            "touched_mb": touched / 2**20,
            "peak_rss_mb": proc_kib("/proc/self/status", "VmHWM") / 1024,
            "rss_mb": proc_kib("/proc/self/status", "VmRSS") / 1024,
            "pss_mb": proc_kib("/proc/self/smaps_rollup", "Pss") / 1024,
            "written_at": time.time(),
        }
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))
