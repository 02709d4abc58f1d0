"""Lightning's EMA weight averaging, with a warm-up of its decay and the checkpoint's average scored
after training too.

`EMAWeightAveraging` (Lightning 2.6) keeps the average, swaps it in for validation during training and
saves it as the checkpoint's `state_dict`, with the raw weights beside it (`current_model_state`). Two
things are ours, both where Lightning and PyTorch leave them to the user:

- **The decay warms up** (`warmup=True`): update n uses min(decay, (1 + n) / (10 + n)), the schedule of
  TensorFlow's `ExponentialMovingAverage(num_updates=...)`, passed to PyTorch's `AveragedModel` as its
  `multi_avg_fn`. With a fixed decay of 0.999 the first averaged weights still carry 0.999^n of the
  weight n updates later (54% after 624), so on Tatoeba the average trailed the raw weights by 22
  validation BLEU after the first epoch (benchmarks/README.md, "Recipes at 30 CPU-minutes"). With the
  warm-up the average spans about the last tenth of the updates until it reaches `decay`. Its count,
  `n_averaged`, travels in the checkpoint (`averaging_state`), so a resumed run goes on with the same
  decays.
- **Validate and test runs score the checkpoint's average.** Two of Lightning's hooks do not fit the
  runs `train.py` makes after training, `trainer.validate(ckpt_path=best)` and
  `trainer.test(ckpt_path=best)`: loading the checkpoint puts its raw weights back into the model, and
  validation swaps in the callback's own latest average; both would score other weights than the best
  checkpoint's average, which validation chose it by and `seq2seq-translate` loads. This subclass runs
  those two hooks only while fitting (resuming a run restores both weight sets as Lightning does).

Everything else is Lightning's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.trainer.states import TrainerFn
from torch import Tensor


def warmed_up_decay(decay: float, updates: int) -> float:
    """The decay of update `updates` (1 for the first after the copy): min(decay, (1 + n) / (10 + n))."""
    return min(decay, (1 + updates) / (10 + updates))


def warmed_up_ema(decay: float) -> Callable[[list[Tensor], list[Tensor], Tensor], None]:
    """An `AveragedModel` `multi_avg_fn`: the exponential moving average with the warmed-up decay.

    The decay is computed from `num_averaged` where the count lives, as a tensor, and applied by the
    foreach ops' tensor overloads: reading the count into Python (or passing a tensor where a Scalar is
    taken) would wait for the device at every optimizer step.
    """

    @torch.no_grad()
    def update(averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
        count = num_averaged.to(torch.float32)
        keep = torch.clamp((1 + count) / (10 + count), max=decay)  # warmed_up_decay, on the device
        floats = [(a, c) for a, c in zip(averaged, current, strict=True) if a.is_floating_point()]
        if floats:
            targets = [a for a, _ in floats]
            torch._foreach_mul_(targets, keep)
            torch._foreach_add_(targets, torch._foreach_mul([c for _, c in floats], 1 - keep))
        for a, c in zip(averaged, current, strict=True):
            if not a.is_floating_point():  # integer buffers (use_buffers=True) follow the model
                a.copy_(c)

    return update


class AveragedWeights(EMAWeightAveraging):
    """`EMAWeightAveraging` with a warmed-up decay, whose validate and test runs score the checkpoint's
    averaged weights as loaded.

    Args:
        decay: the decay the warm-up rises to.
        warmup: False keeps Lightning's fixed decay from the first update on.
        kwargs: `EMAWeightAveraging`'s (`update_starting_at_step`, `use_buffers`, ...).
    """

    def __init__(self, decay: float = 0.999, warmup: bool = True, **kwargs: Any) -> None:
        super().__init__(decay=decay, **kwargs)
        if warmup:  # AveragedModel takes one of the two: ours in place of Lightning's fixed-decay avg_fn
            del self._kwargs["avg_fn"]
            self._kwargs["multi_avg_fn"] = warmed_up_ema(decay)

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
