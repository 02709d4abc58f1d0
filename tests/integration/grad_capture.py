"""A callback for the DDP tests: saves the gradients of the first optimizer step, as the optimizer saw them.

Used from `python train.py` through `+callbacks.grad_capture._target_=grad_capture.GradCapture` with
this folder on PYTHONPATH. Gradients are still in place at `on_train_batch_end`: Lightning zeroes
them before the next backward. Only rank 0 writes (after DDP's all-reduce every rank holds the same).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch


class GradCapture(L.Callback):
    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step == 1 and trainer.is_global_zero and not self.path.exists():
            grads = {
                name: p.grad.detach().clone()
                for name, p in pl_module.named_parameters()
                if p.grad is not None
            }
            torch.save(grads, self.path)
