"""Callbacks for the train.py tests: what the model held at one moment of a run, saved for the test to read.

`GradCapture`, for the DDP tests, saves the gradients of the first optimizer step, as the optimizer saw
them; `EvaluatedWeights` the weights that the validate and test runs after training scored. Used from
`python train.py` through `+callbacks.grad_capture._target_=grad_capture.GradCapture` with
this folder on PYTHONPATH. Gradients are still in place at `on_train_batch_end`: Lightning zeroes
them before the next backward. Only rank 0 writes (after DDP's all-reduce every rank holds the same).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch


class GradCapture(L.Callback):
    """Saves {parameter name: gradient} of the first optimizer step to `path` (rank 0)."""

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


class EvaluatedWeights(L.Callback):
    """Saves {stage: state_dict} as each validate or test run after training begins."""

    def __init__(self, path: str) -> None:
        self.path, self.seen = Path(path), {}

    def _save(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn != "fit":
            self.seen[trainer.state.fn.value] = {
                k: v.detach().clone() for k, v in pl_module.state_dict().items()
            }
            torch.save(self.seen, self.path)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer, pl_module)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(trainer, pl_module)
