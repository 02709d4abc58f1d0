"""Preemption: on SIGTERM or SIGUSR1, checkpoint at the next step boundary and exit with a retry code."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L

from seq2seq.errors import Preempted

log = logging.getLogger(__name__)


class PreemptionCheckpoint(L.Callback):
    """Turns a termination signal into a resumable stop.

    The handler only records the signal; after the current optimizer step the callback writes
    `checkpoints/last.ckpt` (atomically, with loop, optimizer, RNG and data-position state), asks
    SLURM to requeue the job when running under sbatch, and raises `Preempted` as the next batch
    starts (once Lightning has logged the saved step), which `train.py` turns into exit code 75
    (EX_TEMPFAIL). Why it stopped is logged before the requeue: SLURM terminates a job it requeues, so
    under sbatch the closing `error:` line may not be reached. `python train.py ... hydra.run.dir=SAME
    resume=true` continues exactly there. Lightning's own SIGTERM/SIGUSR1 handlers are replaced while
    fitting (its SLURM handler saves in the middle of a step) and put back afterwards.

    Args:
        signals: names of the signals that stop training.
        requeue: on SLURM (SLURM_JOB_ID set), run `scontrol requeue` before exiting.
    """

    def __init__(self, signals: list[str] = ("SIGTERM", "SIGUSR1"), requeue: bool = True) -> None:
        self.signals = [signal.Signals[name] for name in signals]
        self.requeue = requeue
        self.received: signal.Signals | None = None
        self._stopping: str | None = None  # set once the checkpoint is written: the message to stop with
        self._previous: dict[signal.Signals, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        # Only a flag: logging or printing here can re-enter a stream write the signal interrupted
        # ("RuntimeError: reentrant call"); the step boundary below does the talking.
        self.received = signal.Signals(signum)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.received, self._stopping = None, None
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._handle)
        log.info(
            "on %s: checkpoint after the current step and exit %d",
            "/".join(s.name for s in self.signals),
            Preempted.exit_code,
        )

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()
        self._stop_if_saved()

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._stop_if_saved()

    def saved_stop(self) -> Preempted | None:
        """The stop this process has saved for and not raised yet: a failure on the way there (a rank that
        stopped first ends the others' collectives) is that stop, not a new error."""
        return Preempted(self._stopping) if self._stopping is not None else None

    def _stop_if_saved(self) -> None:
        # Raised a batch later than the save, so that Lightning has logged the saved step's metrics.
        if self._stopping is not None:
            message, self._stopping = self._stopping, None
            raise Preempted(message)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        stop = self.received is not None and self._stopping is None
        if trainer.world_size > 1:  # every rank must stop at the same step, or the others wait forever
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop or (batch_idx + 1) % trainer.accumulate_grad_batches != 0:
            return  # in the middle of gradient accumulation: stop after the optimizer step
        name = self.received.name if self.received else "a signal on another rank"
        log.warning("received %s: saving a checkpoint after step %d, then exiting", name, trainer.global_step)
        path = (
            Path(
                trainer.checkpoint_callback.dirpath
                if trainer.checkpoint_callback
                else trainer.default_root_dir
            )
            / "last.ckpt"
        )
        trainer.save_checkpoint(path)
        stopping = (
            f"Stopped by {name} after step {trainer.global_step} (epoch {trainer.current_epoch}, batch {batch_idx}); "
            f"the state is saved in {path}. Resume with the same command plus resume=true (same hydra.run.dir), "
            f"or ckpt_path={path}."
        )
        # Said before the requeue: SLURM ends the job's processes (SIGTERM) as soon as it requeues it, which
        # can come before this process reaches its closing `error:` line.
        log.warning("%s", stopping)
        if trainer.is_global_zero and self.requeue and os.environ.get("SLURM_JOB_ID"):
            array = os.environ.get("SLURM_ARRAY_JOB_ID")
            job = f"{array}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array else os.environ["SLURM_JOB_ID"]
            done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, check=False)
            log.warning(
                "scontrol requeue %s: %s", job, "done" if done.returncode == 0 else done.stderr.strip()
            )
        self._stopping = stopping
