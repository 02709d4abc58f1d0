"""Lightning's EMA weight averaging, with the checkpoint's average scored after training too.

`EMAWeightAveraging` (Lightning 2.6) keeps the average, swaps it in for validation during training and
saves it as the checkpoint's `state_dict`, with the raw weights beside it (`current_model_state`). Two
of its hooks do not fit the runs `train.py` makes after training, `trainer.validate(ckpt_path=best)` and
`trainer.test(ckpt_path=best)`: loading the checkpoint puts its raw weights back into the model, and
validation swaps in the callback's own latest average; both would score other weights than the best
checkpoint's average, which validation chose it by and `seq2seq-translate` loads. This subclass runs
those two hooks only while fitting (resuming a run restores both weight sets as Lightning does), so a
validate or test run scores the checkpoint's `state_dict`. Everything else is Lightning's.
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.trainer.states import TrainerFn


class AveragedWeights(EMAWeightAveraging):
    """`EMAWeightAveraging` whose validate and test runs score the checkpoint's averaged weights as loaded."""

    def on_load_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_validation_epoch_start(trainer, pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_validation_epoch_end(trainer, pl_module)
