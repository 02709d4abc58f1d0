"""A callback for the data-path tests: writes every training step's loss, per rank, as JSON.

Used from `python train.py` through `+callbacks.loss_capture._target_=loss_capture.LossCapture` with
this folder on PYTHONPATH. Each rank writes `rank{N}.json` at the end of fit: a list of
[global step, summed token loss, target tokens, summed pair indices] per training batch, so a changed
batch (other pairs, other order) shows as well as a changed loss.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L


class LossCapture(L.Callback):
    """Records each step's loss, target tokens and pair indices, saved into `folder`."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)
        self.steps: list[list[float]] = []

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.steps.append([trainer.global_step, float(loss), batch.num_tgt_tokens, int(batch.indices.sum())])

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / f"rank{trainer.global_rank}.json").write_text(json.dumps(self.steps))
