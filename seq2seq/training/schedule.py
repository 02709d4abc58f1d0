"""Learning-rate schedules that know the run's budget: a linear warm-up, then inverse square root, cosine
decay, or a hold and a linear cool-down over the budget's last share.

PyTorch's schedulers take their length in steps when they are built; none follows a wall-clock budget,
and users compare runs at equal compute (`trainer.max_time`). `WarmupDecay` is a PyTorch `LRScheduler`
(Lightning steps it after every optimizer step and saves it in checkpoints) whose cosine or cool-down follows
whichever of the trainer's limits ends the run first: `RunBudget` reads `max_steps` and `max_epochs`
from the Trainer's own step estimate and the elapsed time from Lightning's `Timer` callback, which
`trainer.max_time` switches on and checkpoints save, so a resumed run continues the same curve.
Under `max_time` the rate depends on the machine's speed, so two runs of a time budget are not
step-for-step identical; a step budget keeps them so.
"""

from __future__ import annotations

import math

import lightning as L
from lightning.pytorch.callbacks import Timer
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from seq2seq.errors import InputError

DECAYS = ("constant", "inverse_sqrt", "cosine", "cooldown")


class RunBudget:
    """How far a run is through its budget, from the Trainer's limits: the largest of the fractions used."""

    def __init__(self, trainer: L.Trainer) -> None:
        self.trainer = trainer
        self._steps: float | None = None

    def fraction(self) -> float | None:
        """Share of the budget spent, in [0, 1]; None when the run has no limit (max_steps, max_epochs, max_time)."""
        trainer = self.trainer
        if self._steps is None:
            self._steps = float(trainer.estimated_stepping_batches)  # inf without max_steps or max_epochs
        spent = [trainer.global_step / self._steps] if math.isfinite(self._steps) and self._steps > 0 else []
        timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
        remaining = None if timer is None else timer.time_remaining("train")
        if remaining is not None:
            elapsed = timer.time_elapsed("train")
            spent.append(elapsed / max(elapsed + remaining, 1e-9))
        return min(1.0, max(spent)) if spent else None


class WarmupDecay(LRScheduler):
    """lr * warm-up(step) * decay: the rate rises linearly over `warmup_steps`, then decays.

    Args:
        optimizer: the optimizer whose rates it sets.
        warmup_steps: steps of the linear rise from lr / warmup_steps to lr (0: none).
        decay: `constant`; `inverse_sqrt`, lr * sqrt(warmup_steps / step) after the warm-up (Vaswani et
            al., 2017; the rate at step 1000 of a 100-step warm-up is lr / sqrt(10)); `cosine`, half a
            cosine from lr down to lr * final_ratio over the run's budget (`RunBudget`); `cooldown`, lr until
            the last `cooldown` share of the budget, then a straight line down to lr * final_ratio at its end
            (warm-up, stable, decay: the rate stays high for as long as the run still learns fast at it).
        final_ratio: the last rate of the cosine or the cool-down as a share of lr.
        cooldown: the share of the budget the cool-down takes, in (0, 1].
        last_epoch: PyTorch's resume argument (the last step taken).
    """

    warms_up = True  # the module leaves the warm-up to it

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_steps: int = 0,
        decay: str = "cosine",
        final_ratio: float = 0.0,
        cooldown: float = 0.2,
        last_epoch: int = -1,
    ) -> None:
        if decay not in DECAYS:
            raise InputError(
                f"model.scheduler.decay={decay!r} is not a decay WarmupDecay knows: use one of {', '.join(DECAYS)}"
            )
        if warmup_steps < 0 or not 0.0 <= final_ratio <= 1.0 or not 0.0 < cooldown <= 1.0:
            raise InputError(
                f"model.scheduler: warmup_steps={warmup_steps} must be >= 0, final_ratio={final_ratio} in [0, 1] "
                f"and cooldown={cooldown} in (0, 1]"
            )
        self.warmup_steps, self.decay, self.final_ratio = warmup_steps, decay, final_ratio
        self.cooldown = cooldown
        # set by the module as training starts (cosine and cooldown need it)
        self.budget: RunBudget | None = None
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        """The rate of optimizer step `step` (0-based) as a share of lr."""
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        if self.decay == "inverse_sqrt":
            return warm * min(1.0, math.sqrt(max(self.warmup_steps, 1) / (step + 1)))
        if self.decay == "cosine":
            spent = self.spent()
            return warm * (self.final_ratio + (1 - self.final_ratio) * 0.5 * (1 + math.cos(math.pi * spent)))
        if self.decay == "cooldown":
            # 1 until the cool-down starts, 0 at the end
            left = min(1.0, (1.0 - self.spent()) / self.cooldown)
            return warm * (self.final_ratio + (1 - self.final_ratio) * left)
        return warm

    def spent(self) -> float:
        """The budget's spent share; 0 before the Trainer is known (when PyTorch sets the first rate)."""
        if self.budget is None:
            return 0.0
        spent = self.budget.fraction()
        if spent is None:
            raise InputError(
                f"model.scheduler.decay={self.decay} decays over the run's budget, and this run has none: set "
                "trainer.max_steps, trainer.max_epochs or trainer.max_time, or use scheduler=inverse_sqrt"
            )
        return spent

    def get_lr(self) -> list[float]:
        factor = self.factor(self.last_epoch)
        return [base * factor for base in self.base_lrs]

    def state_dict(self) -> dict:
        return {key: value for key, value in super().state_dict().items() if key != "budget"}
