"""Training entry point: compose the config, build everything through `instantiate`, fit, test, report."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from seq2seq.config import CONFIG_DIR, FILLED_IN_BY_TRAINING, setup_hydra, unset_keys
from seq2seq.errors import InputError, Preempted, exit_with, user_error
from seq2seq.files import atomic_write_bytes
from seq2seq.tracking.dashboard import finishing, report_results
from seq2seq.training.callbacks import PaddingMonitor
from seq2seq.training.console import quiet_lightning
from seq2seq.training.distributed import log_files_on_rank_zero, lost_rank_error
from seq2seq.training.resume import check_resumable, checkpoint_to_resume

log = logging.getLogger(__name__)


def require_settings(cfg: DictConfig) -> None:
    """Raises InputError naming every mandatory setting left unset (e.g. `data.path` of `data=parallel`)."""
    unset = [key for key in unset_keys(cfg) if key not in FILLED_IN_BY_TRAINING]
    if unset:
        given = " ".join(f"{key}=..." for key in unset)
        raise InputError(
            f"the config leaves {', '.join(unset)} unset (`???`): add {given} to the command line; the "
            f"comments in conf/ say what each means (data.path: the folder of the corpus files, "
            f"{{train,valid,test}}.{{src_lang,tgt_lang}}, plain or .gz)"
        )


def train(cfg: DictConfig) -> dict[str, float | int | str | None]:
    """Trains, evaluates the best checkpoint on valid and test, and writes `results.json`.

    Returns:
        The results dictionary (metric name -> value).
    """
    started = time.perf_counter()
    require_settings(cfg)
    log_files_on_rank_zero()
    L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    log.info("run folder: %s", output_dir)

    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    vocabs = datamodule.vocabs
    # The run config goes in after instantiation: instantiate would build every _target_ inside it.
    build_module = instantiate(cfg.model, net=datamodule.net_sizes(), vocabs=vocabs, _partial_=True)
    module = build_module(run_config=OmegaConf.to_container(cfg, resolve=True))
    if cfg.get("compile"):
        module.net.compile(dynamic=True)  # in place: parameter names, and so checkpoints, stay as they are
    trainer = build_trainer(cfg)
    checkpoint = trainer.checkpoint_callback
    checkpoint_dir = Path(checkpoint.dirpath or output_dir / "checkpoints") if checkpoint else None
    resume_from = checkpoint_to_resume(cfg.get("ckpt_path"), cfg.get("resume", False), checkpoint_dir)
    if resume_from is not None:
        check_resumable(resume_from, vocabs)
        log.info("resuming from %s", resume_from)
    with finishing(trainer.loggers):
        results = _fit_and_evaluate(cfg, trainer, module, datamodule, resume_from)
        results["wall_time_s"] = time.perf_counter() - started
        if trainer.is_global_zero:
            datamodule.save_vocabs(output_dir)
            atomic_write_bytes(output_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True).encode())
            atomic_write_bytes(output_dir / "results.json", (json.dumps(results, indent=2) + "\n").encode())
            log.info("results: %s", json.dumps(results))
            report_results(trainer.loggers, results, output_dir / "results.json")
    return results


def build_trainer(cfg: DictConfig) -> L.Trainer:
    """The Trainer with the callbacks and loggers that are switched on (`callbacks.NAME=null` and
    `logger=none` switch them off); checkpointing follows `callbacks.model_checkpoint` unless
    `trainer.enable_checkpointing` says otherwise."""
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    checkpointing = cfg.trainer.get("enable_checkpointing")
    if checkpointing is None:
        checkpointing = any(isinstance(c, ModelCheckpoint) for c in callbacks)
    return instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, enable_checkpointing=checkpointing
    )


def _fit_and_evaluate(
    cfg: DictConfig,
    trainer: L.Trainer,
    module: L.LightningModule,
    datamodule: L.LightningDataModule,
    resume_from: Path | None,
) -> dict[str, float | int | str | None]:
    """Fits, then evaluates the kept model on valid (and test); the metrics plus padding and step totals."""
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    except Exception as raised:  # a failed collective of a multi-node run: name the rank that was lost
        lost = lost_rank_error(raised, trainer)  # (or the preemption this rank was stopping for)
        if lost is None:
            raise
        raise lost from raised
    checkpoint = trainer.checkpoint_callback
    best = (checkpoint.best_model_path or checkpoint.last_model_path or None) if checkpoint else None
    # Report the model that is kept: the best checkpoint, or the final weights if none was saved. A loop
    # switched off (trainer.limit_val_batches=0, limit_test_batches=0) returns no metrics: none reported.
    results: dict = {}
    for metrics in trainer.validate(module, datamodule=datamodule, ckpt_path=best, verbose=False):
        results.update(metrics)
    if cfg.get("test"):
        for metrics in trainer.test(module, datamodule=datamodule, ckpt_path=best, verbose=False):
            results.update(metrics)
    monitor = next((c for c in trainer.callbacks if isinstance(c, PaddingMonitor)), None)
    results.update(monitor.summary() if monitor else {})
    results.update(steps=trainer.global_step, best_checkpoint=best)
    return results


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def _main(cfg: DictConfig) -> float | None:
    try:
        results = train(cfg)
    except Exception as raised:
        error = user_error(raised)
        # In a sweep, a bad trial is the sweeper's to record; a preempted process must stop either way.
        if error is None or (HydraConfig.get().mode == RunMode.MULTIRUN and not isinstance(error, Preempted)):
            raise
        log.error("%s", error)
        exit_with(error)
    return results.get("val/bleu")  # what hyperparameter sweepers maximise


def main() -> None:
    setup_hydra()
    quiet_lightning()
    _main()


if __name__ == "__main__":
    main()
