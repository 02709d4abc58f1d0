"""The learning-rate warm-up, driven by a real Trainer on a tiny model."""

from __future__ import annotations

from functools import partial

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from seq2seq.data.batch import collate
from seq2seq.models.decoder import RecurrentDecoder
from seq2seq.models.encoders import SelfAttentionEncoder
from seq2seq.models.seq2seq import Seq2Seq
from seq2seq.models.state_init import ZeroInit
from seq2seq.padding import MaskingStrategy
from seq2seq.training.module import Seq2SeqModule

PAIRS = [(0, [5, 6, 7], [8, 9]), (1, [4, 5, 6, 7, 8], [9, 10, 11])]


class LearningRates(L.Callback):
    """Records the learning rate after each training step (and after a per-step scheduler's update)."""

    def __init__(self) -> None:
        self.seen: list[float] = []

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        self.seen.append(trainer.optimizers[0].param_groups[0]["lr"])


def train_rates(warmup_steps: int, steps: int, scheduler=None) -> list[float]:
    torch.manual_seed(0)
    encoder = partial(SelfAttentionEncoder, hidden_size=8, num_heads=2, num_layers=1, feedforward_size=16)
    decoder = partial(RecurrentDecoder, partial(torch.nn.GRU), hidden_size=8, init=ZeroInit)
    net = Seq2Seq(encoder, decoder, MaskingStrategy(), src_vocab_size=16, tgt_vocab_size=16, embedding_dim=8)
    module = Seq2SeqModule(
        net,
        partial(torch.optim.Adam, lr=0.01),
        scheduler=scheduler,
        scheduler_options={"interval": "step"},
        warmup_steps=warmup_steps,
    )
    rates = LearningRates()
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        callbacks=[rates],
    )
    trainer.fit(module, train_dataloaders=DataLoader([collate(PAIRS)] * steps, batch_size=None))
    return rates.seen


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
