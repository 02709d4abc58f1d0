"""Our framework as a peer: `train.py` with the peers' model, and `seq2seq-translate`."""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

from seq2seq.config import PROJECT_ROOT
from toolkits.harness import (
    MAX_TOKENS,
    Corpus,
    run,
    train_for,
)


def train(
    args: argparse.Namespace, corpus: Corpus, run_dir: Path, env: dict, shared: bool = True
) -> tuple[float, list[dict]]:
    """Trains the peers table's model (`shared`), or our default recipe as `train.py` gives it."""
    model = [f"decoder.input_feeding={str(args.input_feeding).lower()}", f"data.max_tokens={MAX_TOKENS}"]
    overrides = [
        *corpus.overrides,
        *(model if shared else []),
        "trainer.max_epochs=1000",
        f"trainer.max_steps={args.steps or -1}",
        f"+callbacks.model_checkpoint.every_n_train_steps={args.save_every}",
        "callbacks.model_checkpoint.monitor=null",
        "callbacks.model_checkpoint.filename='step{step}'",
        f"hydra.run.dir={run_dir}",
        "test=false",
        *args.overrides,
    ]
    command = [sys.executable, "train.py", *overrides]
    snapshots = train_for(command, run_dir, "checkpoints/*.ckpt", args.curve, env, cwd=PROJECT_ROOT)
    with (run_dir / "csv" / "metrics.csv").open() as metrics:
        rates = [
            float(row["train/tokens_per_sec"])
            for row in csv.DictReader(metrics)
            if row.get("train/tokens_per_sec")
        ]
    return statistics.median(rates[1:] or rates), snapshots


def translate(
    args: argparse.Namespace, corpus: Corpus, run_dir: Path, env: dict, checkpoint: Path
) -> list[str]:
    hypotheses = checkpoint.with_suffix(".hyp")
    run(
        [
            sys.executable,
            "-m",
            "seq2seq.cli.evaluate",
            "--checkpoint",
            str(checkpoint),
            "--beam-size",
            "1",
            "--src",
            str(corpus.test_src),
            "--ref",
            str(corpus.test_tgt),
            "--json",
            str(checkpoint.with_suffix(".json")),
            "--hypotheses",
            str(hypotheses),
        ],
        checkpoint.with_suffix(".log"),
        env,
    )
    return hypotheses.read_text().splitlines()
