"""`python train.py` as users run it: a real subprocess, the real config, the real Trainer."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from seq2seq.config import PROJECT_ROOT

pytestmark = pytest.mark.slow

ENCODERS = ["lstm", "gru", "attention"]
STRATEGIES = ["naive", "masking", "packing", "state_reset"]
RESULT_KEYS = {
    "val/loss", "val/bleu", "test/bleu", "test/exact_match", "train/pad_fraction",
    "train/tokens_per_sec", "steps", "wall_time_s", "best_checkpoint",
}


def run_train(run_dir: Path, cache_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "train.py", "debug=tiny", f"hydra.run.dir={run_dir}", f"paths.cache_dir={cache_dir}", *overrides]
    return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600)


def read_results(run_dir: Path) -> dict:
    results = json.loads((run_dir / "results.json").read_text())
    assert RESULT_KEYS <= results.keys()
    for key, value in results.items():
        if key != "best_checkpoint":
            assert math.isfinite(value), key
    return results


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("encoder", ENCODERS)
def test_every_encoder_and_strategy_trains_and_reports(encoder: str, strategy: str, tmp_path: Path, cache_dir: Path) -> None:
    run_dir = tmp_path / "run"
    done = run_train(run_dir, cache_dir, f"encoder={encoder}", f"strategy={strategy}")
    assert done.returncode == 0, done.stderr[-3000:]
    results = read_results(run_dir)
    assert results["steps"] == 5
    assert Path(results["best_checkpoint"]).is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "spm.joint.model").is_file()
    assert f"_target_: seq2seq.padding.{type_name(strategy)}" in (run_dir / "config.yaml").read_text()
    assert "train/pad_fraction_bucket/" in (run_dir / "csv" / "metrics.csv").read_text()


def type_name(strategy: str) -> str:
    return "".join(part.title() for part in strategy.split("_")) + "Strategy"


def test_checkpoint_carries_config_and_vocabulary(tmp_path: Path, cache_dir: Path) -> None:
    run_dir = tmp_path / "run"
    assert run_train(run_dir, cache_dir).returncode == 0
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["seq2seq"]["config"]["strategy"]["_target_"] == "seq2seq.padding.MaskingStrategy"
    assert checkpoint["seq2seq"]["vocabs"]["src"] == (run_dir / "spm.joint.model").read_bytes()


def test_own_parallel_files_plain_and_gzipped(tmp_path: Path, cache_dir: Path) -> None:
    """`data=parallel` reads DIR/{train,valid,test}.{de,en}, mixing plain and .gz files."""
    import gzip

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    bundled = PROJECT_ROOT / "data" / "bundled"
    for split, size in (("train", 2000), ("valid", 40), ("test", 40)):
        for side, lang in (("src", "de"), ("tgt", "en")):
            lines = gzip.open(bundled / f"{split}.{side}.gz", "rt").read().splitlines()[:size]
            target = corpus / f"{split}.{lang}"
            if side == "src":
                target.write_text("\n".join(lines) + "\n")
            else:
                target.with_name(target.name + ".gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    run_dir = tmp_path / "run"
    done = run_train(run_dir, cache_dir, "data=parallel", f"data.path={corpus}", "data.src_lang=de", "data.tgt_lang=en", "data.vocab.vocab_size=300")
    assert done.returncode == 0, done.stderr[-3000:]
    read_results(run_dir)


def test_missing_corpus_gives_one_clear_error(tmp_path: Path, cache_dir: Path) -> None:
    run_dir = tmp_path / "run"
    done = run_train(run_dir, cache_dir, "data=parallel", f"data.path={tmp_path / 'nowhere'}", "data.src_lang=de", "data.tgt_lang=en")
    assert done.returncode != 0
    assert "Missing corpus file" in done.stderr and "train.de" in done.stderr
    assert not (run_dir / "results.json").exists()


def test_ddp_on_two_cpu_processes(tmp_path: Path, cache_dir: Path) -> None:
    """`device=ddp` runs two gloo processes on the CPU; each rank trains on its own shard."""
    run_dir = tmp_path / "run"
    done = run_train(run_dir, cache_dir, "device=ddp", "trainer.devices=2", "trainer.accelerator=cpu")
    assert done.returncode == 0, done.stderr[-3000:]
    results = read_results(run_dir)
    assert results["steps"] == 5
