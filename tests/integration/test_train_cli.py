"""`python train.py` as users run it: a real subprocess, the real config, the real Trainer."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from seq2seq.config import PROJECT_ROOT

pytestmark = pytest.mark.slow

ENCODERS = ["lstm", "gru", "attention"]
STRATEGIES = ["naive", "masking", "packing", "state_reset"]
RESULT_KEYS = {
    "val/loss",
    "val/bleu",
    "test/bleu",
    "test/exact_match",
    "train/pad_fraction",
    "train/tokens_per_sec",
    "steps",
    "wall_time_s",
    "best_checkpoint",
}


def run_train(
    run_dir: Path, cache_dir: Path, *overrides: str, env: dict | None = None
) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "train.py",
        "debug=tiny",
        f"hydra.run.dir={run_dir}",
        f"paths.cache_dir={cache_dir}",
        *overrides,
    ]
    return subprocess.run(
        command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600, env=env, check=False
    )


def read_results(run_dir: Path) -> dict:
    results = json.loads((run_dir / "results.json").read_text())
    assert RESULT_KEYS <= results.keys()
    for key, value in results.items():
        if key != "best_checkpoint":
            assert math.isfinite(value), key
    return results


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("encoder", ENCODERS)
def test_every_encoder_and_strategy_trains_and_reports(
    encoder: str, strategy: str, tmp_path: Path, cache_dir: Path
) -> None:
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
            lines = (
                gzip.decompress((bundled / f"{split}.{side}.gz").read_bytes()).decode().splitlines()[:size]
            )
            target = corpus / f"{split}.{lang}"
            if side == "src":
                target.write_text("\n".join(lines) + "\n")
            else:
                target.with_name(target.name + ".gz").write_bytes(
                    gzip.compress(("\n".join(lines) + "\n").encode())
                )
    run_dir = tmp_path / "run"
    done = run_train(
        run_dir,
        cache_dir,
        "data=parallel",
        f"data.path={corpus}",
        "data.src_lang=de",
        "data.tgt_lang=en",
        "data.vocab.vocab_size=300",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    read_results(run_dir)


def test_missing_corpus_gives_one_clear_error(tmp_path: Path, cache_dir: Path) -> None:
    run_dir = tmp_path / "run"
    done = run_train(
        run_dir,
        cache_dir,
        "data=parallel",
        f"data.path={tmp_path / 'nowhere'}",
        "data.src_lang=de",
        "data.tgt_lang=en",
    )
    assert done.returncode != 0
    assert "Missing corpus file" in done.stderr and "train.de" in done.stderr
    assert not (run_dir / "results.json").exists()


# Dropout off (ranks draw other dropout masks than one process does) and no clipping, so that the
# captured gradients can be compared with a reference computed here. Random batches: their real token
# counts differ a lot (554 and 702 in the first two), so a mean of per-rank means is far off (1e-3).
SAME_BATCHES = [
    "decoder.dropout=0",
    "trainer.gradient_clip_val=0",
    "trainer.max_steps=4",
    "trainer.limit_val_batches=4",
    "data.bucketing=false",
]


def capture_grads(path: Path) -> list[str]:
    return [
        "+callbacks.grad_capture._target_=grad_capture.GradCapture",
        f"+callbacks.grad_capture.path={path}",
    ]


def reference_grads(cfg) -> dict[str, torch.Tensor]:
    """The first step's gradient computed directly: both batches' summed losses over their total target tokens."""
    L.seed_everything(
        cfg.seed, workers=True
    )  # the same sequence as seq2seq.train.train, so the same initial weights
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    sizes = {"src_vocab_size": len(datamodule.vocabs.src), "tgt_vocab_size": len(datamodule.vocabs.tgt)}
    module = instantiate(cfg.model, net=sizes, vocabs=datamodule.vocabs).train()
    first_two = list(
        itertools.islice(datamodule.train_dataloader(), 2)
    )  # one replica: batches 0 and 1 of epoch 0
    sums, counts = zip(*(module.token_loss(batch) for batch in first_two), strict=True)
    (sum(sums) / sum(counts)).backward()
    return {name: p.grad for name, p in module.named_parameters() if p.grad is not None}


def test_two_ddp_ranks_give_the_gradient_of_their_batches_together(
    tmp_path: Path, cache_dir: Path, compose_config
) -> None:
    """`device=ddp` on two gloo CPU processes: rank r trains on batches r, r+2, ... The first step's gradient
    must be that of both batches' summed loss over their total real target tokens (a mean of per-rank means
    weighs a short batch's tokens more), and it must equal one process accumulating the same two batches;
    so must the validation loss after 4 steps."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    for run_dir, overrides in (
        (ddp, ["device=ddp", "trainer.devices=2", "trainer.accelerator=cpu"]),
        (single, ["trainer.accumulate_grad_batches=2"]),
    ):
        done = run_train(
            run_dir, cache_dir, *SAME_BATCHES, *overrides, *capture_grads(run_dir / "grads.pt"), env=env
        )
        assert done.returncode == 0, done.stderr[-3000:]
    ddp_results, single_results = read_results(ddp), read_results(single)
    assert ddp_results["steps"] == single_results["steps"] == 4
    assert abs(ddp_results["val/loss"] - single_results["val/loss"]) < 1e-4
    expected = reference_grads(compose_config(["debug=tiny", *SAME_BATCHES]))
    for run_dir in (ddp, single):
        grads = torch.load(run_dir / "grads.pt")
        assert grads.keys() == expected.keys()
        for name, grad in grads.items():
            torch.testing.assert_close(
                grad, expected[name], atol=1e-6, rtol=1e-4, msg=f"{run_dir.name}: {name}"
            )


def test_torchrun_launches_the_same_ddp_run(tmp_path: Path, cache_dir: Path) -> None:
    """torchrun starts the ranks itself; Lightning joins them instead of spawning its own. Every rank
    must write into one run directory, so `hydra.run.dir` is given (the default has a timestamp)."""
    run_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "train.py",
        "debug=tiny",
        "device=ddp",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        f"hydra.run.dir={run_dir}",
        f"paths.cache_dir={cache_dir}",
    ]
    done = subprocess.run(
        command,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert read_results(run_dir)["steps"] == 5


def test_compile_trains_and_keeps_checkpoints_loadable(tmp_path: Path, cache_dir: Path) -> None:
    """`compile=true` compiles the network in place: training runs and the checkpoint's parameter names are the plain ones."""
    run_dir = tmp_path / "run"
    done = run_train(
        run_dir,
        cache_dir,
        "compile=true",
        "trainer.max_steps=2",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = read_results(run_dir)
    state = torch.load(results["best_checkpoint"], map_location="cpu", weights_only=False)["state_dict"]
    assert state and not any("_orig_mod" in name for name in state)


def test_any_trainer_argument_is_set_without_a_plus_and_the_console_stays_quiet(
    tmp_path: Path, cache_dir: Path
) -> None:
    run_dir = tmp_path / "run"
    done = run_train(
        run_dir,
        cache_dir,
        "trainer.max_time=00:00:30:00",
        "trainer.limit_val_batches=1",
        "trainer.min_steps=2",
        "trainer.enable_progress_bar=false",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert read_results(run_dir)["steps"] == 5
    console = done.stdout + done.stderr
    assert f"run folder: {run_dir}" in console and "results: {" in console
    for noise in ("litlogger", "litmodels", "LeafSpec"):
        assert noise not in console


CALLBACKS = list(OmegaConf.load(PROJECT_ROOT / "conf" / "callbacks" / "default.yaml"))


@pytest.mark.parametrize(
    "switch", [f"callbacks.{name}=null" for name in CALLBACKS] + ["logger=none", "~logger", "~callbacks"]
)
def test_each_callback_and_the_logger_switch_off_with_null(
    switch: str, tmp_path: Path, cache_dir: Path
) -> None:
    run_dir = tmp_path / "run"
    done = run_train(run_dir, cache_dir, switch)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["steps"] == 5 and math.isfinite(results["val/bleu"])
    checkpoints_off = switch in ("callbacks.model_checkpoint=null", "~callbacks")
    assert (run_dir / "checkpoints").exists() != checkpoints_off
    assert (results["best_checkpoint"] is None) == checkpoints_off
    assert ("train/pad_fraction" in results) == (
        switch not in ("callbacks.padding_monitor=null", "~callbacks")
    )


def test_resuming_without_checkpoints_says_why_in_one_line(tmp_path: Path, cache_dir: Path) -> None:
    done = run_train(tmp_path / "run", cache_dir, "callbacks.model_checkpoint=null", "resume=true")
    assert done.returncode != 0
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith(
        "error: resume=true resumes from this run's last.ckpt, but callbacks.model_checkpoint=null"
    )
    assert "Traceback" not in done.stderr


def test_a_run_with_evaluation_switched_off_ends_with_its_training_totals(
    tmp_path: Path, cache_dir: Path
) -> None:
    """trainer.limit_val_batches=0 and limit_test_batches=0: no metrics to report, and no traceback."""
    run_dir = tmp_path / "run"
    done = run_train(
        run_dir, cache_dir, "trainer.limit_val_batches=0", "trainer.limit_test_batches=0",
        "callbacks.model_checkpoint.monitor=null",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["steps"] == 5 and "train/pad_fraction" in results
    assert not any(key.startswith(("val/", "test/")) for key in results)


def test_ema_validates_saves_and_reports_the_average_of_the_best_checkpoint(
    tmp_path: Path, cache_dir: Path
) -> None:
    """averaging=ema: the checkpoint holds the average, and the final validate and test runs score it."""
    run_dir, seen = tmp_path / "run", tmp_path / "evaluated.pt"
    done = run_train(
        run_dir, cache_dir, "averaging=ema", "callbacks.ema.decay=0.5", "callbacks.ema.update_starting_at_step=0",
        "trainer.max_steps=8", "trainer.val_check_interval=4", "callbacks.model_checkpoint.save_last=false",
        "+callbacks.evaluated._target_=grad_capture.EvaluatedWeights", f"+callbacks.evaluated.path={seen}",
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    best = torch.load(read_results(run_dir)["best_checkpoint"], weights_only=False)
    average, raw = best["state_dict"], best["current_model_state"]
    assert any(not torch.equal(average[name], raw[name]) for name in average)
    evaluated = torch.load(seen, weights_only=False)
    assert set(evaluated) == {"validate", "test"}
    for weights in evaluated.values():
        assert all(torch.equal(weights[name], average[name]) for name in average)
