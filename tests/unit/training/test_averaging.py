"""The EMA of the weights: the warmed-up decay, driven by the real Trainer and Lightning's callback."""

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from seq2seq.training.averaging import AveragedWeights, warmed_up_decay


class Regression(L.LightningModule):
    """A linear regression that records its weights after every optimizer step."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 1)
        self.seen: list[list[torch.Tensor]] = []

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        return nn.functional.mse_loss(self.layer(inputs), targets)

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self.seen.append([p.detach().clone() for p in self.layer.parameters()])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def averaged_after_training(steps: int, **options) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """Fits with `AveragedWeights(**options)`; returns the weights the module ends with (Lightning copies
    the average in at the end of training) and the raw weights after each step."""
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(steps * 4, 3), torch.randn(steps * 4, 1))
    module = Regression()
    trainer = L.Trainer(
        max_steps=steps,
        callbacks=[AveragedWeights(update_starting_at_step=0, use_buffers=False, **options)],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, DataLoader(data, batch_size=4))
    return [p.detach() for p in module.layer.parameters()], module.seen


def moving_average(seen: list[list[torch.Tensor]], decays: list[float]) -> list[torch.Tensor]:
    """The first weights copied, then each later one mixed in with its update's decay."""
    average = [p.clone() for p in seen[0]]
    for weights, keep in zip(seen[1:], decays, strict=True):
        average = [keep * a + (1 - keep) * w for a, w in zip(average, weights, strict=True)]
    return average


def test_the_decay_rises_as_tensorflows_num_updates_schedule_to_its_ceiling() -> None:
    assert warmed_up_decay(0.999, 1) == pytest.approx(2 / 11)
    assert warmed_up_decay(0.999, 90) == pytest.approx(0.91)
    assert warmed_up_decay(0.999, 100_000) == 0.999


def test_the_average_takes_each_update_with_its_warmed_up_decay() -> None:
    steps, decay = 12, 0.99
    final, seen = averaged_after_training(steps, decay=decay)
    assert len(seen) == steps
    expected = moving_average(seen, [warmed_up_decay(decay, n) for n in range(1, steps)])
    for got, want in zip(final, expected, strict=True):
        torch.testing.assert_close(got, want)
    # The first weights weigh far less than under Lightning's fixed decay, which warmup=False keeps.
    fixed, seen_fixed = averaged_after_training(steps, decay=decay, warmup=False)
    for got, want in zip(fixed, moving_average(seen_fixed, [decay] * (steps - 1)), strict=True):
        torch.testing.assert_close(got, want)
    assert not torch.allclose(final[0], fixed[0])


@pytest.mark.gpu
def test_an_update_on_the_gpu_never_waits_for_the_device() -> None:
    """The warmed-up decay is computed where the count lives: no synchronising call per optimizer step."""
    from seq2seq.training.averaging import warmed_up_ema

    averaged = [torch.ones(4, device="cuda"), torch.ones(2, 2, device="cuda", dtype=torch.bfloat16)]
    current = [torch.zeros_like(a) for a in averaged]
    update = warmed_up_ema(0.999)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        update(averaged, current, torch.tensor(5, device="cuda"))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    keep = warmed_up_decay(0.999, 5)
    torch.testing.assert_close(averaged[0].cpu(), torch.full((4,), keep))
