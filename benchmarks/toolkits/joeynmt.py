"""JoeyNMT 2.3.0 as a peer: its YAML config for the peers' model, its training and translation."""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from toolkits.harness import (
    DEC_HIDDEN,
    EMBED,
    ENC_HIDDEN,
    LR,
    MAX_TOKENS,
    SEED,
    Corpus,
    ensure_venv,
    median_of,
    run,
    train_for,
    train_log,
)

# The peers table's optimisation and batching in JoeyNMT's `training` section.
TRAINING = {
    "random_seed": SEED,
    "use_cuda": False,
    "optimizer": "adam",
    "learning_rate": LR,
    "learning_rate_min": 1e-6,
    "scheduling": "exponential",
    "decrease_factor": 1.0,
    "clip_grad_norm": 1.0,
    "label_smoothing": 0.1,
    "normalization": "tokens",
    "batch_size": MAX_TOKENS,
    "batch_type": "token",
    "epochs": 1000,
    "sample_dev_subset": 100,
    "eval_metrics": ["bleu"],
    "early_stopping_metric": "loss",
    "keep_best_ckpts": 1,
    "shuffle": True,
    "num_workers": 0,
    "print_valid_sents": [0],
}


def model(input_feeding: bool) -> dict:
    """The peers table's model in JoeyNMT's `model` section."""
    return {
        "encoder": {
            "type": "recurrent",
            "rnn_type": "lstm",
            "hidden_size": ENC_HIDDEN,
            "bidirectional": True,
            "num_layers": 1,
            "dropout": 0.1,
            "embeddings": {"embedding_dim": EMBED},
        },
        "decoder": {
            "type": "recurrent",
            "rnn_type": "lstm",
            "hidden_size": DEC_HIDDEN,
            "num_layers": 1,
            "dropout": 0.1,
            "hidden_dropout": 0.1,
            "attention": "luong",
            "input_feeding": input_feeding,
            "init_hidden": "bridge",
            "embeddings": {"embedding_dim": EMBED},
        },
    }


def train(args: argparse.Namespace, corpus: Corpus, run_dir: Path, env: dict) -> tuple[float, list[dict]]:
    side = {"level": "word", "lowercase": False, "max_length": 250, "voc_min_freq": 1}
    config = {
        "name": "peers",
        "joeynmt_version": "2.3.0",
        "data": {
            "train": f"{corpus.pieces}/train",
            "dev": f"{corpus.pieces}/valid",
            "test": f"{corpus.pieces}/test",
            "dataset_type": "plain",
            "src": {"lang": "src", **side},
            "trg": {"lang": "tgt", **side},
        },
        "training": {
            "model_dir": str(run_dir / "model"),
            "overwrite": True,
            **TRAINING,
            # It runs a few times slower than the others: it checkpoints (at validation) 5x as often,
            # on 100 dev sentences, so that it has a checkpoint within the budget.
            "validation_freq": max(2, args.save_every // 5),
            "logging_freq": max(1, args.save_every // 10),
        },
        "testing": {
            "load_model": str(run_dir / "model" / "latest.ckpt"),
            "beam_size": 1,
            "batch_size": 64,
            "batch_type": "sentence",
            "eval_metrics": ["bleu"],
        },
        "model": model(args.input_feeding),
    }
    config_path = run_dir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    bin_dir = ensure_venv(args.work, "joeynmt")
    command = [str(bin_dir / "python"), "-m", "joeynmt", "train", str(config_path)]
    snapshots = train_for(command, run_dir, "model/[0-9]*.ckpt", args.curve, env)
    return median_of(r"Tokens per Sec:\s+([\d.]+)", train_log(run_dir).read_text()), snapshots


def translate(
    args: argparse.Namespace, corpus: Corpus, run_dir: Path, env: dict, checkpoint: Path
) -> list[str]:
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["testing"]["load_model"] = str(checkpoint)
    config_path = checkpoint.with_suffix(".yaml")
    config_path.write_text(yaml.safe_dump(config))
    output = checkpoint.with_suffix(".hyp")
    run(
        [
            str(ensure_venv(args.work, "joeynmt") / "python"),
            "-m",
            "joeynmt",
            "test",
            str(config_path),
            "-o",
            str(output),
        ],
        checkpoint.with_suffix(".log"),
        env,
        run_dir,
    )
    return Path(f"{output}.test").read_text().splitlines()
