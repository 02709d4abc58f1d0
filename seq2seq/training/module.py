"""The LightningModule: teacher-forced training, greedy-decoding evaluation, optimisation from config."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import lightning as L
import torch

from seq2seq.data.batch import Batch
from seq2seq.data.vocab import Vocabs
from seq2seq.errors import TrainingDiverged
from seq2seq.models.loss import masked_cross_entropy
from seq2seq.models.search import DEFAULT_ALPHA, DEFAULT_MAX_LEN_A, DEFAULT_MAX_LEN_B, beam_search
from seq2seq.models.seq2seq import Seq2Seq
from seq2seq.training.checkpoint import metadata, saved_rng
from seq2seq.training.metrics import corpus_bleu, exact_match
from seq2seq.training.rng import every_rank_rng_state, set_rng_state
from seq2seq.training.schedule import RunBudget

SPLIT_OF_STAGE = {"val": "valid", "test": "test"}
log = logging.getLogger(__name__)


class Seq2SeqModule(L.LightningModule):
    """Wires a `Seq2Seq` net to loss, metrics and optimisation.

    Args:
        net: the model.
        optimizer: builds the optimizer from `params` (a `_partial_` config).
        vocabs: the sentencepiece vocabularies, stored in checkpoints so that they are self-contained.
        scheduler: builds the LR scheduler from `optimizer`, or None.
        scheduler_options: Lightning's lr_scheduler settings (monitor, interval, frequency).
        label_smoothing: label smoothing of the training loss.
        max_len_a: evaluation decoding limit slope (see `beam_search`).
        max_len_b: evaluation decoding limit offset.
        beam_size: beams for validation and test decoding (1: greedy search, the fast default).
        alpha: length penalty exponent of that beam search (see `beam_search`).
        num_samples: sample translations printed at each validation.
        warmup_steps: the learning rate rises linearly from lr / N to lr over the first N optimizer steps
            (0: no warm-up). Transformer layers need it; the recurrent models learn without. A scheduler
            that warms up itself (`WarmupDecay`, `warms_up`) takes it over.
        run_config: the run's resolved config, saved into checkpoints and shown on dashboards.
    """

    def __init__(
        self,
        net: Seq2Seq,
        optimizer: Callable[..., torch.optim.Optimizer],
        vocabs: Vocabs | None = None,
        scheduler: Callable[..., Any] | None = None,
        scheduler_options: dict | None = None,
        label_smoothing: float = 0.0,
        max_len_a: float = DEFAULT_MAX_LEN_A,
        max_len_b: int = DEFAULT_MAX_LEN_B,
        beam_size: int = 1,
        alpha: float = DEFAULT_ALPHA,
        num_samples: int = 3,
        warmup_steps: int = 0,
        run_config: dict | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.scheduler_options = dict(scheduler_options or {})
        self.vocabs = vocabs
        self.label_smoothing = label_smoothing
        self.max_len_a, self.max_len_b = max_len_a, max_len_b
        self.beam_size, self.alpha, self.num_samples = beam_size, alpha, num_samples
        self.warmup_steps = warmup_steps
        self._scheduler_warms_up = False  # set by configure_optimizers
        self._step_tokens = torch.zeros(())  # counted target tokens since the last optimizer step
        self.run_config = run_config
        self._eval: list[tuple[list[int], list[list[int]], float, int]] = []
        self.last_samples: list[
            tuple[str, str, str]
        ] = []  # (source, reference, hypothesis) of the last validation, corpus order

    def token_loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced loss summed over the counted target tokens, and their number (the padding strategy decides which count)."""
        counted = self.net.padding.loss_mask(batch.tgt_mask)
        logits, targets = self.net.teacher_forced(batch, counted)  # logits at the counted positions only
        return masked_cross_entropy(logits, targets, counted, self.label_smoothing)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss_sum, count = self.token_loss(batch)
        if not torch.isfinite(loss_sum):
            self._stop_on_non_finite(loss_sum, batch, batch_idx)
        self._step_tokens = self._step_tokens + count.detach()
        self.log("train/loss", loss_sum.detach() / count.clamp_min(1), prog_bar=True, batch_size=len(batch))
        # The summed loss is returned; on_before_optimizer_step divides the gradients by the tokens of
        # the whole effective batch, so no rank or accumulation step is weighted by its own size.
        return loss_sum

    def _stop_on_non_finite(self, loss: torch.Tensor, batch: Batch, batch_idx: int) -> None:
        """Stops before the bad gradient reaches the weights; checkpoints on disk are from earlier, good steps."""
        pairs = batch.indices.tolist()
        shown = ", ".join(map(str, pairs[:8])) + (", ..." if len(pairs) > 8 else "")
        checkpoint = self.trainer.checkpoint_callback
        kept = (checkpoint.last_model_path or checkpoint.best_model_path) if checkpoint else ""
        raise TrainingDiverged(
            f"The training loss became {loss.item()} at step {self.global_step} (epoch {self.current_epoch}, batch "
            f"{batch_idx}: {len(pairs)} training pairs, indices {shown}; source length up to {batch.src.size(1)}, "
            f"target up to {batch.tgt_out.size(1)}). Training stopped before this update; the last good checkpoint is "
            f"{kept or 'none yet (no checkpoint was written before this step)'}. Lower model.optimizer.lr, keep "
            f"trainer.gradient_clip_val on, or use device.precision=32-true if mixed precision overflowed; "
            f"then resume with ckpt_path=last or start over."
        )

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Gradients -> gradient of (summed loss / real target tokens) over all ranks and accumulated batches.

        Lightning divides each returned loss by `accumulate_grad_batches` and DDP averages gradients
        over ranks; both factors are undone here and the total token count, summed over ranks, takes
        their place: a 2-rank step equals a 1-rank step over the same batches with accumulation 2.
        Runs before gradient clipping and after the fp16 grad scaler's unscale.
        """
        self._warm_up(optimizer)
        tokens, self._step_tokens = self._step_tokens, torch.zeros((), device=self.device)
        total = self.trainer.strategy.reduce(tokens.to(self.device, torch.float32), reduce_op="sum")
        scale = self.trainer.world_size * self.trainer.accumulate_grad_batches / total.clamp_min(1.0)
        for parameter in self.parameters():
            if parameter.grad is not None:
                parameter.grad.mul_(scale.to(parameter.grad.dtype))

    def _warm_up(self, optimizer: torch.optim.Optimizer) -> None:
        """Sets the learning rate of the coming step to lr * min(1, (step + 1) / warmup_steps).

        Applied as the ratio to the previous step's factor, so it composes with whatever else moves
        the rate (ReduceLROnPlateau), and a resumed run continues from the rate its checkpoint holds.
        """
        step = self.global_step
        if step >= self.warmup_steps or self._scheduler_warms_up:
            return
        ratio = (step + 1) / self.warmup_steps / (step / self.warmup_steps if step else 1.0)
        for group in optimizer.param_groups:
            group["lr"] *= ratio

    def _evaluation_step(self, batch: Batch) -> None:
        # The reported loss counts real tokens only, whatever the strategy trains on.
        nll, count = masked_cross_entropy(*self.net.teacher_forced(batch, batch.tgt_mask), batch.tgt_mask)
        found = beam_search(  # beam_size=1 is greedy search
            self.net,
            batch.src,
            batch.src_lengths,
            batch.src_mask,
            self.beam_size,
            alpha=self.alpha,
            max_len_a=self.max_len_a,
            max_len_b=self.max_len_b,
        )
        hypotheses = [best[0].tokens for best in found]
        self._eval.append((batch.indices.tolist(), hypotheses, float(nll), int(count)))

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluation_step(batch)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluation_step(batch)

    def on_validation_epoch_end(self) -> None:
        self._log_evaluation("val")

    def on_test_epoch_end(self) -> None:
        self._log_evaluation("test")

    def _log_evaluation(self, stage: str) -> None:
        outputs, self._eval = self._eval, []
        if not outputs:
            return
        indices = [i for ids, _, _, _ in outputs for i in ids]
        hypotheses = self.vocabs.tgt.decode([h for _, hyps, _, _ in outputs for h in hyps])
        text = self.trainer.datamodule.references(SPLIT_OF_STAGE[stage])
        references = [text.tgt[i] for i in indices]
        if stage == "val":
            self.last_samples = [
                row[1:]
                for row in sorted(
                    zip(indices, [text.src[i] for i in indices], references, hypotheses, strict=True)
                )
            ]
            self._print_samples()
        loss = sum(nll for _, _, nll, _ in outputs) / max(1, sum(count for _, _, _, count in outputs))
        metrics = {
            f"{stage}/loss": loss,
            f"{stage}/ppl": math.exp(min(loss, 50.0)),
            f"{stage}/bleu": corpus_bleu(hypotheses, references),
            f"{stage}/exact_match": exact_match(hypotheses, references),
        }
        # Every rank evaluates the whole split, so the values already agree across ranks.
        self.log_dict(metrics, prog_bar=stage == "val", sync_dist=False)

    def _print_samples(self) -> None:
        """The first few validation sentences (in corpus order) with their current translations."""
        if self.num_samples <= 0 or not self.trainer.is_global_zero:
            return
        lines = [f"sample translations at step {self.global_step}:"]
        for src, ref, hyp in self.last_samples[: self.num_samples]:
            lines += [f"  source     {src}", f"  reference  {ref}", f"  hypothesis {hyp}"]
        log.info("\n".join(lines))

    def on_train_start(self) -> None:
        # A schedule over the run's budget (WarmupDecay) reads the Trainer's limits and clock from here.
        for config in self.trainer.lr_scheduler_configs:
            if hasattr(config.scheduler, "budget"):
                config.scheduler.budget = RunBudget(self.trainer)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        self._scheduler_warms_up = getattr(scheduler, "warms_up", False)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, **self.scheduler_options}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Everything needed to rebuild the model and its tokenisation travels inside the checkpoint, and the
        # random states: a run resumed from this checkpoint draws the dropout masks the uninterrupted run would.
        checkpoint["seq2seq"] = metadata(self.run_config, self.vocabs, every_rank_rng_state())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.trainer.state.fn != "fit":
            return
        if rng := saved_rng(checkpoint, self.trainer.global_rank, self.trainer.world_size):
            set_rng_state(rng)
