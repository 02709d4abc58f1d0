"""OpenNMT-py 3.0.4 as a peer: its YAML config for the peers' model, onmt_train and onmt_translate."""

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
    log_every,
    median_of,
    run,
    train_for,
    train_log,
)

# The peers table's model and optimisation in OpenNMT-py's options.
MODEL = {
    "encoder_type": "brnn",
    "decoder_type": "rnn",
    "rnn_type": "LSTM",
    "word_vec_size": EMBED,
    "layers": 1,
    "enc_hid_size": 2 * ENC_HIDDEN,
    "dec_hid_size": DEC_HIDDEN,
    "global_attention": "general",
    "bridge": True,
    "dropout": [0.1],
    "optim": "adam",
    "learning_rate": LR,
    "max_grad_norm": 1.0,
    "label_smoothing": 0.1,
    "batch_type": "tokens",
    "batch_size": MAX_TOKENS,
    "valid_batch_size": 64,
    "bucket_size": 32768,
    "normalization": "tokens",
    "seed": SEED,
    "num_workers": 0,
}


# OpenNMT-py's own defaults, what its quickstart trains: no model or optimisation options at all (a
# 2-layer unidirectional LSTM encoder and decoder of 500 with input feeding, SGD at 1.0, batches of 64
# sentences), with the same seed and no data loader workers, as the peers' row.
DEFAULTS = {"seed": SEED, "num_workers": 0}


def train(
    args: argparse.Namespace, corpus: Corpus, run_dir: Path, env: dict, model: dict = MODEL
) -> tuple[float, list[dict]]:
    """Trains `model` (options: the peers table's model, or `DEFAULTS`) on the corpus's pieces."""
    sides = {
        split: {f"path_{side}": f"{corpus.pieces}/{split}.{side}" for side in ("src", "tgt")}
        for split in ("train", "valid")
    }
    config = {
        "save_data": str(run_dir / "onmt"),
        "src_vocab": str(run_dir / "vocab.src"),
        "tgt_vocab": str(run_dir / "vocab.tgt"),
        "overwrite": True,
        "src_vocab_size": len(corpus.vocabs.src),  # every piece: the same output layer as ours
        "tgt_vocab_size": len(corpus.vocabs.tgt),
        "src_seq_length": 250,
        "tgt_seq_length": 250,
        "data": {"corpus_1": sides["train"], "valid": sides["valid"]},
        **model,
        **({"input_feed": int(args.input_feeding)} if model is MODEL else {}),
        "train_steps": args.steps or 1_000_000,
        "save_checkpoint_steps": args.save_every,
        "valid_steps": args.save_every,
        "report_every": log_every(args),
        "save_model": str(run_dir / "model"),
    }
    config_path = run_dir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    bin_dir = ensure_venv(args.work, "opennmt")
    run(
        [str(bin_dir / "onmt_build_vocab"), "-config", str(config_path), "-n_sample", "-1"],
        run_dir / "vocab.log",
        env,
        run_dir,
    )
    command = [str(bin_dir / "onmt_train"), "-config", str(config_path)]
    snapshots = train_for(command, run_dir, "model_step_*.pt", args.curve, env)
    return median_of(r"[\d.]+/\s*([\d.]+) tok/s", train_log(run_dir).read_text()), snapshots


def translate(
    args: argparse.Namespace, corpus: Corpus, run_dir: Path, env: dict, checkpoint: Path
) -> list[str]:
    output = checkpoint.with_suffix(".hyp")
    run(
        [
            str(ensure_venv(args.work, "opennmt") / "onmt_translate"),
            "-model",
            str(checkpoint),
            "-src",
            f"{corpus.pieces}/test.src",
            "-output",
            str(output),
            "-beam_size",
            "1",
            "-batch_size",
            "64",
            "-max_length",
            "250",
        ],
        checkpoint.with_suffix(".log"),
        {**env, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"},
        run_dir,
    )
    return output.read_text().splitlines()
