"""Loggers as users run them: real wandb (offline), TensorBoard and CSV files read back after a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from wandb_run_files import OfflineRun

from seq2seq.config import PROJECT_ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """One tiny run with every logger, no W&B account (no key, no netrc) and the best model as an artifact."""
    run_dir = tmp_path_factory.mktemp("logged") / "run"
    home = tmp_path_factory.mktemp("home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")} | {
        "HOME": str(home),
        "NETRC": str(home / ".netrc"),
    }
    command = [
        sys.executable,
        "train.py",
        "debug=tiny",
        "logger=many",
        "encoder=gru",
        "encoder.hidden_size=24",
        "trainer.max_steps=8",
        "trainer.val_check_interval=4",
        "logger.wandb.log_model=true",
        "logger.wandb.tags=[ci]",
        f"hydra.run.dir={run_dir}",
        f"paths.cache_dir={cache_dir}",
    ]
    done = subprocess.run(
        command,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    (run_dir / "console.txt").write_text(done.stdout)
    return run_dir


def test_wandb_runs_offline_without_an_account_and_says_how_to_sync(logged_run: Path) -> None:
    console = (logged_run / "console.txt").read_text()
    assert "W&B: no API key" in console and f"wandb sync {logged_run}/wandb/offline-run-*" in console


def test_wandb_history_config_and_summary(logged_run: Path) -> None:
    run = OfflineRun.load(logged_run / "wandb")
    bleu = run.values("val/bleu")
    assert len(bleu) >= 2 and all(
        isinstance(b, float) for b in bleu
    )  # two validations in training, one final
    for key in ("train/loss", "train/pad_fraction", "train/tokens_per_sec", "val/loss", "test/bleu"):
        assert run.values(key), key
    assert any(key.startswith("train/pad_fraction_bucket/") for row in run.history for key in row)
    assert run.values("data/src_length/_type") == ["histogram"]
    # The resolved config, flattened: command-line overrides are columns of their own.
    assert run.config["encoder.hidden_size"] == 24 and run.config["choices.encoder"] == "gru"
    assert run.config["trainer.max_steps"] == 8 and run.config["choices.logger"] == "many"
    assert len(run.config["git.commit"]) == 40
    results = json.loads((logged_run / "results.json").read_text())
    assert run.summary["results/val/bleu"] == pytest.approx(results["val/bleu"])
    assert run.summary["results/steps"] == 8


def test_wandb_translations_heatmaps_results_and_model(logged_run: Path) -> None:
    run = OfflineRun.load(logged_run / "wandb")
    files = run.folder / "files"
    tables = sorted((files / "media" / "table" / "val").glob("translations_*.table.json"))
    assert len(tables) == len(run.values("val/translations/_type")) >= 2  # one per validation
    table = json.loads(tables[-1].read_text())
    assert table["columns"] == ["source", "reference", "hypothesis"] and len(table["data"]) == 8
    assert all(isinstance(cell, str) and cell for row in table["data"] for cell in row[:2])
    images = sorted((files / "media" / "images" / "val").glob("attention_*.png"))
    assert len(images) == 2 * len(tables) and all(p.read_bytes()[:4] == b"\x89PNG" for p in images)
    assert json.loads((files / "results.json").read_text()) == json.loads(
        (logged_run / "results.json").read_text()
    )
    models = [a for a in run.artifacts if a.type == "model"]
    assert len(models) == 1 and set(models[0].aliases) == {"best", "latest"}
    assert [entry.path for entry in models[0].manifest.contents] == ["best.ckpt"]


def test_tensorboard_and_csv_get_the_same_run(logged_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(
        str(logged_run / "tensorboard"), size_guidance={"images": 0, "tensors": 0}
    ).Reload()
    tags = events.Tags()
    assert {"val/bleu", "train/pad_fraction", "train/tokens_per_sec"} <= set(tags["scalars"])
    assert {"val/attention/0", "val/attention/1"} <= set(tags["images"])
    assert {"data/src_length", "data/tgt_length"} <= set(tags["histograms"])
    assert {"val/translations/text_summary", "results/text_summary"} <= set(tags["tensors"])
    hparams = yaml.safe_load((logged_run / "csv" / "hparams.yaml").read_text())
    assert hparams["encoder.hidden_size"] == 24 and hparams["choices.strategy"] == "masking"
