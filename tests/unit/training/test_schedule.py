"""The learning-rate warm-up and schedules, driven by a real Trainer on a tiny model."""

from __future__ import annotations

import math
from functools import partial

import lightning as L
import pytest
import torch
from training_helpers import batches, tiny_module, tiny_trainer

from seq2seq.errors import InputError
from seq2seq.training.schedule import WarmupDecay


class LearningRates(L.Callback):
    """Records the learning rate after each training step (and after a per-step scheduler's update)."""

    def __init__(self) -> None:
        self.seen: list[float] = []
        self.at_start: list[
            float
        ] = []  # before each step: a WarmupDecay step's rate (the module's warm-up comes later)

    def on_train_batch_start(self, trainer: L.Trainer, *args) -> None:
        self.at_start.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        self.seen.append(trainer.optimizers[0].param_groups[0]["lr"])


def train_rates(warmup_steps: int, steps: int, scheduler=None, **trainer_args) -> list[float]:
    return train(warmup_steps, steps, scheduler, **trainer_args).seen


def train(warmup_steps: int, steps: int, scheduler=None, **trainer_args) -> LearningRates:
    rates = LearningRates()
    trainer = tiny_trainer(**({"max_steps": steps} | trainer_args), limit_val_batches=0, callbacks=[rates])
    trainer.fit(tiny_module(warmup_steps, scheduler), train_dataloaders=batches(steps))
    return rates


def test_learning_rate_rises_linearly_over_the_warmup_then_holds() -> None:
    assert train_rates(warmup_steps=4, steps=6) == pytest.approx([0.0025, 0.005, 0.0075, 0.01, 0.01, 0.01])


def test_no_warmup_leaves_the_learning_rate_alone() -> None:
    assert train_rates(warmup_steps=0, steps=3) == pytest.approx([0.01] * 3)


def test_warmup_composes_with_a_scheduler_that_moves_the_rate() -> None:
    halve_each_step = partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5)
    # StepLR halves after every step; the warm-up multiplies its ramp on top instead of overwriting it,
    # so the steps run at 0.005, 0.005, 0.0025 and the rates seen after each step's halving are half that.
    rates = train_rates(warmup_steps=2, steps=3, scheduler=halve_each_step)
    assert rates == pytest.approx([0.0025, 0.0025, 0.00125])


def test_cosine_warms_up_then_decays_to_its_final_rate_at_max_steps() -> None:
    cosine = partial(WarmupDecay, warmup_steps=2, decay="cosine", final_ratio=0.1)
    rates = train(warmup_steps=2, steps=10, scheduler=cosine).at_start
    # the module's own warm-up gives way to the scheduler's: no second ramp on top
    expected = [
        0.01 * min(1, (k + 1) / 2) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / 10))) for k in range(10)
    ]
    assert rates == pytest.approx(expected)


def test_inverse_sqrt_peaks_at_the_end_of_the_warmup() -> None:
    rates = train(
        warmup_steps=4, steps=16, scheduler=partial(WarmupDecay, warmup_steps=4, decay="inverse_sqrt")
    )
    assert rates.at_start[:4] == pytest.approx([0.0025, 0.005, 0.0075, 0.01])
    assert rates.at_start[15] == pytest.approx(0.01 * math.sqrt(4 / 16))


def test_cosine_follows_the_time_budget_when_time_ends_the_run_first() -> None:
    """max_time 2 s and a step budget far beyond it: the rate falls with the clock, to near 0 at the end."""
    cosine = partial(WarmupDecay, decay="cosine")
    rates = train(warmup_steps=0, steps=1_000_000, scheduler=cosine, max_time={"seconds": 2}).at_start
    assert 10 < len(rates) < 1_000_000  # the clock stopped it
    assert rates == sorted(rates, reverse=True)
    assert rates[-1] < 0.01 * 0.05  # within the last 5% of the cosine's height: the decay followed the time
    assert rates[len(rates) // 2] < 0.01 * 0.95  # and had begun by half-way in steps


def test_cosine_without_any_budget_says_which_limit_to_set() -> None:
    with pytest.raises(InputError, match="trainer.max_steps, trainer.max_epochs or trainer.max_time"):
        train(
            warmup_steps=0,
            steps=3,
            scheduler=partial(WarmupDecay, decay="cosine"),
            max_steps=-1,
            max_epochs=-1,
        )


def test_an_unknown_decay_is_named() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(InputError, match="model.scheduler.decay='linear'"):
        WarmupDecay(optimizer, decay="linear")


def test_cooldown_holds_the_rate_then_falls_in_a_line_over_the_budgets_last_share() -> None:
    cooldown = partial(WarmupDecay, warmup_steps=2, decay="cooldown", cooldown=0.4, final_ratio=0.1)
    rates = train(warmup_steps=2, steps=10, scheduler=cooldown).at_start
    # steps 0-5 hold (after the warm-up), steps 6-9 spend the last 40% of the budget falling to 0.1 * lr
    falling = [0.01 * (0.1 + 0.9 * (10 - k) / 4) for k in range(6, 10)]
    expected = [0.005, 0.01, 0.01, 0.01, 0.01, 0.01] + falling
    assert rates == pytest.approx(expected)
