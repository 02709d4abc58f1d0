"""What a run puts on its dashboards (W&B, TensorBoard), beyond the metrics Lightning logs itself.

CSV logging gets the flattened config (hparams.yaml) and nothing else: tables and images need a
dashboard. Everything here runs on rank 0 only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import Logger, TensorBoardLogger, WandbLogger

from seq2seq.config import PROJECT_ROOT
from seq2seq.training.module import Seq2SeqModule

log = logging.getLogger(__name__)


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> {"encoder.rnn.num_layers": 1, ...}: one dashboard column per config key."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def git_state(folder: Path = PROJECT_ROOT) -> dict[str, Any]:
    """The commit the code runs from and whether the work tree has uncommitted changes (None outside git)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=folder, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git.commit": commit, "git.dirty": bool(status) if status is not None else None}


def hydra_choices() -> dict[str, str]:
    """The config group options of this run (`choices.encoder: lstm`, ...), when Hydra runs it."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    return {
        f"choices.{k}": v for k, v in HydraConfig.get().runtime.choices.items() if not k.startswith("hydra")
    }


class DashboardCallback(L.Callback):
    """Config, corpus statistics, sample translations and attention heatmaps for every logger that shows them.

    Args:
        num_samples: validation sentences (first in corpus order) in the translations table.
        num_heatmaps: of those, how many get an attention heatmap image at each validation.
    """

    def __init__(self, num_samples: int = 8, num_heatmaps: int = 2) -> None:
        self.num_samples, self.num_heatmaps = num_samples, num_heatmaps

    def on_fit_start(self, trainer: L.Trainer, pl_module: Seq2SeqModule) -> None:
        if not trainer.is_global_zero:
            return
        config = {**flatten(pl_module.run_config or {}), **hydra_choices(), **git_state()}
        for logger in trainer.loggers:
            logger.log_hyperparams(config)
        if trainer.datamodule is not None:
            for side, lengths in zip(("src", "tgt"), trainer.datamodule.train_lengths(), strict=True):
                log_histogram(trainer.loggers, f"data/{side}_length", lengths, step=0)

    def on_validation_end(self, trainer: L.Trainer, pl_module: Seq2SeqModule) -> None:
        samples = pl_module.last_samples[: self.num_samples]
        if trainer.sanity_checking or not trainer.is_global_zero or not samples:
            return
        if not any(isinstance(logger, (WandbLogger, TensorBoardLogger)) for logger in trainer.loggers):
            return
        step = trainer.global_step
        log_table(trainer.loggers, "val/translations", ["source", "reference", "hypothesis"], samples, step)
        from seq2seq.tracking.attention_map import translation_heatmap

        images = []
        for source, _, hypothesis in samples[: self.num_heatmaps]:
            image = translation_heatmap(pl_module.net, pl_module.vocabs, source, hypothesis)
            if image is not None:
                images.append(image)
        if images:
            log_images(trainer.loggers, "val/attention", images, step)


def log_histogram(loggers: list[Logger], key: str, values: list[int], step: int) -> None:
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            logger.experiment.log({key: wandb.Histogram(values), "trainer/global_step": step})
        elif isinstance(logger, TensorBoardLogger):
            import numpy as np

            logger.experiment.add_histogram(key, np.asarray(values), step)


def log_table(loggers: list[Logger], key: str, columns: list[str], rows: list, step: int) -> None:
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.log_table(key, columns=columns, data=[list(row) for row in rows], step=step)
        elif isinstance(logger, TensorBoardLogger):
            header = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
            body = "".join(
                "| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |\n" for row in rows
            )
            logger.experiment.add_text(key, header + body, step)


def log_images(loggers: list[Logger], key: str, images: list, step: int) -> None:
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key, images=images, step=step)
        elif isinstance(logger, TensorBoardLogger):
            for i, image in enumerate(images):
                logger.experiment.add_image(f"{key}/{i}", image, step, dataformats="HWC")


def report_results(loggers: list[Logger], results: dict[str, Any], results_path: Path) -> None:
    """Final metrics as summary, `results.json` as a run file, and the best checkpoint when asked for."""
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            run = logger.experiment
            run.summary.update({f"results/{k}": v for k, v in results.items() if v is not None})
            run.save(str(results_path), base_path=str(results_path.parent), policy="now")
            best = results.get("best_checkpoint")
            if getattr(logger, "log_best_model", False) and best:
                import wandb

                artifact = wandb.Artifact(
                    f"model-{run.id}", type="model", metadata=json.loads(json.dumps(results, default=str))
                )
                artifact.add_file(best, name="best.ckpt")
                run.log_artifact(artifact, aliases=["best", "latest"])
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_text("results", "```\n" + json.dumps(results, indent=2) + "\n```")


@contextlib.contextmanager
def finishing(loggers: list[Logger]) -> Iterator[None]:
    """Closes the W&B runs when the block ends, marked failed on an exception.

    Jobs of a sweep run one after another in one process; an open run would swallow the next job's logs.
    """
    try:
        yield
    except BaseException:
        _finish(loggers, exit_code=1)
        raise
    _finish(loggers, exit_code=0)


def _finish(loggers: list[Logger], exit_code: int) -> None:
    for logger in loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger.experiment.finish(exit_code=exit_code)
