"""fairseq 0.12.3.1 as a peer: its binarised data, `lstm` model flags, fairseq-train and fairseq-generate."""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

from toolkits.harness import (
    DEC_HIDDEN,
    EMBED,
    ENC_HIDDEN,
    LR,
    MAX_TOKENS,
    SEED,
    Corpus,
    ensure_venv,
    flags,
    log_every,
    median_of,
    run,
    train_for,
    train_log,
)

# The peers table's model and optimisation in fairseq's `lstm` flags.
MODEL = {
    "--arch": "lstm",
    "--encoder-embed-dim": EMBED,
    "--encoder-hidden-size": ENC_HIDDEN,
    "--encoder-layers": 1,
    "--encoder-bidirectional": True,
    "--decoder-embed-dim": EMBED,
    "--decoder-hidden-size": DEC_HIDDEN,
    "--decoder-layers": 1,
    "--decoder-out-embed-dim": DEC_HIDDEN,
    "--decoder-attention": "True",
    "--dropout": 0.1,
    "--optimizer": "adam",
    "--lr": LR,
    "--clip-norm": 1.0,
    "--criterion": "label_smoothed_cross_entropy",
    "--label-smoothing": 0.1,
    "--max-tokens": MAX_TOKENS,
    "--num-workers": 0,
    "--seed": SEED,
}


# fairseq's own small recipe, what a fairseq user would train instead: the IWSLT'14 German-English
# Transformer of its examples/translation README (6+6 layers of 512, 4 heads, inverse square-root
# schedule), on the same pieces, with the same seed and checkpoint cadence. (fairseq documents no LSTM
# recipe; its `lstm` architecture is the peers table's own fairseq row above.)
TRANSFORMER = {
    "--arch": "transformer_iwslt_de_en",
    "--share-decoder-input-output-embed": True,
    "--optimizer": "adam",
    "--adam-betas": "(0.9, 0.98)",
    "--clip-norm": 0.0,
    "--lr": 5e-4,
    "--lr-scheduler": "inverse_sqrt",
    "--warmup-updates": 4000,
    "--dropout": 0.3,
    "--weight-decay": 0.0001,
    "--criterion": "label_smoothed_cross_entropy",
    "--label-smoothing": 0.1,
    "--max-tokens": 4096,
    "--num-workers": 0,
    "--seed": SEED,
}


def train(
    args: argparse.Namespace, corpus: Corpus, run_dir: Path, env: dict, model: dict = MODEL
) -> tuple[float, list[dict]]:
    """Trains `model` (flags: the peers table's LSTM, or `TRANSFORMER`) on the corpus's pieces."""
    bin_dir = ensure_venv(args.work, "fairseq")
    binarized = run_dir / "bin"
    splits = {f"--{split}pref": f"{corpus.pieces}/{split}" for split in ("train", "valid", "test")}
    preprocess = {
        "--source-lang": "src",
        "--target-lang": "tgt",
        **splits,
        "--destdir": binarized,
        "--workers": 1,
    }
    run([str(bin_dir / "fairseq-preprocess"), *flags(preprocess)], run_dir / "preprocess.log", env, run_dir)
    schedule = {
        "--max-epoch": 1000,
        "--max-update": args.steps or 0,  # 0: no limit
        "--save-dir": run_dir / "ckpt",
        "--save-interval-updates": args.save_every,
        "--keep-interval-updates": 1,
        "--no-epoch-checkpoints": True,
        "--log-format": "simple",
        "--log-interval": log_every(args),
    }
    command = [str(bin_dir / "fairseq-train"), str(binarized), "--cpu", *flags(model), *flags(schedule)]
    snapshots = train_for(command, run_dir, "ckpt/checkpoint_*.pt", args.curve, env)
    return median_of(r"wps=([\d.]+)", train_log(run_dir).read_text()), snapshots


def translate(
    args: argparse.Namespace, corpus: Corpus, run_dir: Path, env: dict, checkpoint: Path
) -> list[str]:
    generated = subprocess.run(
        [
            str(ensure_venv(args.work, "fairseq") / "fairseq-generate"),
            str(run_dir / "bin"),
            "--cpu",
            "--path",
            str(checkpoint),
            *flags(
                {
                    "--gen-subset": "test",
                    "--beam": 1,
                    "--batch-size": 64,
                    "--max-len-a": 1.5,
                    "--max-len-b": 10,
                }
            ),
        ],
        capture_output=True,
        text=True,
        env={**env, "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"},
        cwd=run_dir,
        check=True,
    )
    found = {
        int(m[1]): m[2] for m in re.finditer(r"^H-(\d+)\t\S+\t(.*)$", generated.stdout, flags=re.MULTILINE)
    }
    return [found[i] for i in range(len(found))]
