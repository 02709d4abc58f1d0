"""Try the most expensive batch before training, so an out-of-memory error shows at step 0, not hours in."""

from __future__ import annotations

import logging

import lightning as L
import torch

from seq2seq.errors import InputError, OutOfMemoryAtStart

log = logging.getLogger(__name__)


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator's "can't allocate memory"."""
    text = str(error)
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)
    )


class LargestBatchFirst(L.Callback):
    """Runs forward and backward on the epoch's largest padded batch once, before training starts.

    Batches are bounded by `data.max_tokens`, but the batch that costs the most memory (the most
    padded slots, usually a bucket of long sentences) may come late in an epoch. Trying it first
    turns a late out-of-memory crash into an immediate error that says which budget to lower.
    Random states are forked and gradients cleared, so training itself is unchanged.

    Args:
        enabled: "auto" (only on CUDA, where running out of memory raises an error rather than the
            operating system killing the process), or true/false.
    """

    def __init__(self, enabled: bool | str = "auto") -> None:
        if enabled not in (True, False, "auto"):
            raise InputError(f"callbacks.memory_probe.enabled={enabled!r}: use true, false or auto")
        self.enabled = enabled
        self.probed: tuple[int, int] | None = None  # (sentences, padded slots) of the batch tried

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        device = trainer.strategy.root_device
        if stage != "fit" or self.enabled is False or (self.enabled == "auto" and device.type != "cuda"):
            return
        largest = trainer.datamodule.largest_train_batch()
        batch = largest.batch.to(device)
        sentences = len(batch.indices)
        self.probed = (sentences, largest.padded_tokens)
        pl_module.to(device).train()
        try:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                with trainer.precision_plugin.forward_context():
                    loss_sum, count = pl_module.token_loss(batch)
                (loss_sum / count.clamp_min(1)).backward()
        except (torch.OutOfMemoryError, RuntimeError) as error:
            if not is_out_of_memory(error):
                raise
            budget = trainer.datamodule.max_tokens
            raise OutOfMemoryAtStart(
                f"The largest training batch ({sentences} sentences, {largest.padded_tokens} padded tokens, up to "
                f"{largest.longest} tokens long) does not fit in memory on {device} "
                f"(data.max_tokens={budget}). Lower data.max_tokens (e.g. data.max_tokens={budget // 2}), cap "
                f"data.max_length, or use a smaller model or device.precision=bf16-mixed. ({str(error).splitlines()[0]})"
            ) from None
        finally:
            pl_module.zero_grad(set_to_none=True)
            del batch
            if device.type == "cuda":
                torch.cuda.empty_cache()
        log.info("largest training batch fits: %d sentences, %d padded tokens", *self.probed)
