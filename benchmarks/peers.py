"""Ours against JoeyNMT, OpenNMT-py and fairseq: training throughput and BLEU after the same wall-clock budget.

Every framework trains the same model on the same corpus with the same batching and thread count:
a corpus (the bundled one, or any other chosen with `--data` as Hydra data overrides) cut into our
sentencepiece pieces (so all share one vocabulary, every piece of it kept by every framework), a
bidirectional LSTM encoder (embeddings 128, 128 per direction, 1 layer), an LSTM decoder (256)
with Luong "general" attention and input feeding (`--input-feeding false` turns it off for ours,
JoeyNMT and OpenNMT-py; fairseq's LSTM decoder has no such switch), dropout 0.1, Adam at 0.002, label smoothing 0.1,
gradient norm clipping at 1, batches of at most 2048 padded tokens. Each training process is started,
run for `--budget` seconds of wall-clock time from its start (startup included), or for the largest of
the `--curve` seconds, and killed. At the budget, or at each curve second, the newest checkpoint it has
saved (every `--save-every` steps by all) is copied aside; after training each copy translates the
corpus's test split greedily, and the sentencepiece-decoded output is scored with sacreBLEU against
the split's raw references.
Throughput is what each framework reports for real target tokens per second of training (median over
its log).

Each peer is installed into its own virtualenv under the work folder, torch 2.13.0 first and pinned
with a pip constraint file; nothing is added to this project's dependencies.

    python benchmarks/peers.py                       # all four, 300 s each, 2 threads
    python benchmarks/peers.py --input-feeding false --tools ours joeynmt opennmt --out benchmarks/results/peers_no_feeding.json
    python benchmarks/peers.py --tools ours joeynmt --budget 120 --threads 1
    python benchmarks/peers.py --tools ours opennmt fairseq --curve 60 180 600     # a learning curve
    python benchmarks/peers.py --tools ours fairseq --steps 750 --out benchmarks/results/x.json   # equal steps
    python benchmarks/peers.py --tools ours --steps 750 --append --out benchmarks/results/x.json \
        --overrides model.net.param_init=0.1                                        # a variant of ours beside them
    python benchmarks/peers.py --tools ours opennmt fairseq --budget 240 --out benchmarks/results/peers_tatoeba.json \
        --data data=parallel data.path=../shared/data/tatoeba-deu-eng data.src_lang=de data.tgt_lang=en
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from common import RESULTS, build, machine, write_json

from seq2seq.config import PROJECT_ROOT
from seq2seq.data.corpus import find_split_file, read_parallel
from seq2seq.data.vocab import Vocabs
from seq2seq.training.metrics import corpus_bleu, exact_match

TORCH = "torch==2.13.0"
PACKAGES = {  # versions that install and train on Python 3.11 with torch 2.13 (see benchmarks/README.md)
    "joeynmt": ["joeynmt==2.3.0", "importlib-metadata"],
    "opennmt": ["OpenNMT-py==3.0.4"],
    "fairseq": ["fairseq-fixed==0.12.3.1"],
}
EMBED, ENC_HIDDEN, DEC_HIDDEN, MAX_TOKENS, LR, SEED = 128, 128, 256, 2048, 0.002, 1234


def run(command: list[str], log: Path, env: dict | None = None, cwd: Path | None = None) -> None:
    """Runs `command` to completion with its output in `log`; a failure names the log."""
    with log.open("w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, check=False)
    if done.returncode != 0:
        sys.exit(f"error: `{' '.join(map(str, command))}` failed with exit code {done.returncode}; see {log}")


def ensure_venv(work: Path, tool: str) -> Path:
    """The tool's virtualenv (created and installed on first use); returns its bin folder."""
    venv = work / "venvs" / tool
    marker = venv / "installed.txt"
    if not marker.is_file():
        constraints = work / "constraints.txt"
        constraints.write_text(TORCH + "\n")
        print(f"installing {tool} into {venv} ...", flush=True)
        run([sys.executable, "-m", "venv", "--clear", str(venv)], work / f"{tool}-venv.log")
        pip = [str(venv / "bin" / "pip"), "install", "-c", str(constraints)]
        run(pip + [TORCH], work / f"{tool}-install-torch.log")
        run(pip + PACKAGES[tool], work / f"{tool}-install.log")
        marker.write_text(" ".join(PACKAGES[tool]) + "\n")
    return venv / "bin"


@dataclass(frozen=True)
class Corpus:
    """The corpus every framework trains on, as `prepare_data` wrote it.

    Attributes:
        name: a short name for run folders: the data config's folder name and a hash of the overrides.
        overrides: the Hydra data overrides that chose it (passed on to our own training run).
        pieces: folder of space-separated sentencepiece pieces, {train,valid,test}.{src,tgt}.
        test_src: the raw test-split source file (what our evaluate command reads).
        test_tgt: the raw test-split reference file.
        references: the raw test-split references, a line each.
        vocabs: our vocabularies (the peers' outputs are decoded from pieces with the target one).
    """

    name: str
    overrides: tuple[str, ...]
    pieces: Path
    test_src: Path
    test_tgt: Path
    references: list[str]
    vocabs: Vocabs


def prepare_data(work: Path, overrides: list[str]) -> Corpus:
    """Writes the corpus that the data `overrides` choose as space-separated sentencepiece pieces."""
    _, datamodule, _ = build(overrides)
    vocabs = datamodule.vocabs
    path, src_lang, tgt_lang = Path(datamodule.path), datamodule.src_lang, datamodule.tgt_lang
    digest = hashlib.sha1(" ".join(overrides).encode()).hexdigest()[:8]
    name = f"{path.name}-{digest}"
    folder = work / "data" / name
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        text = read_parallel(path, split, src_lang, tgt_lang)
        for side, lines, vocab in (("src", text.src, vocabs.src), ("tgt", text.tgt, vocabs.tgt)):
            pieces = vocab.processor.encode(lines, out_type=str)
            (folder / f"{split}.{side}").write_text("".join(" ".join(p) + "\n" for p in pieces))
    return Corpus(
        name=name,
        overrides=tuple(overrides),
        pieces=folder,
        test_src=find_split_file(path, "test", src_lang),
        test_tgt=find_split_file(path, "test", tgt_lang),
        references=read_parallel(path, "test", src_lang, tgt_lang).tgt,
        vocabs=vocabs,
    )


def train_log(run_dir: Path) -> Path:
    """Where a framework's training output goes: beside its run folder."""
    return run_dir.parent / f"{run_dir.name}-train.log"


def train_for(
    command: list[str],
    run_dir: Path,
    checkpoints: str,
    curve: list[float],
    env: dict,
    cwd: Path | None = None,
) -> list[dict]:
    """Starts training (output in `train_log(run_dir)`), at each second in `curve` copies the newest
    checkpoint matching `checkpoints` (a glob under `run_dir`) to `run_dir/curve`, and kills the
    training's process group at the last of them. An empty `curve` (`--steps`) lets the training run
    until it stops by itself and copies its last checkpoint then.

    Returns:
        One snapshot per curve point: at_s (the point, or when the training ended), saved_s (when the
        copied checkpoint was written, in seconds since the start), path (the copy; None if no
        checkpoint existed yet).
    """
    start, started_at = time.perf_counter(), time.time()
    snapshots, pending = [], sorted(curve)
    folder = run_dir / "curve"
    folder.mkdir(exist_ok=True)
    log = train_log(run_dir)
    with log.open("w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd or run_dir, start_new_session=True
        )
        try:
            if not pending:
                code = process.wait()
                if code != 0:
                    sys.exit(f"error: training exited with code {code}; see {log}")
                return [snapshot(run_dir, checkpoints, folder, time.perf_counter() - start, started_at)]
            while pending:
                try:
                    code = process.wait(timeout=max(0.0, pending[0] - (time.perf_counter() - start)))
                except subprocess.TimeoutExpired:
                    snapshots.append(snapshot(run_dir, checkpoints, folder, pending.pop(0), started_at))
                    continue
                sys.exit(f"error: training exited with code {code} before the budget; see {log}")
        finally:  # also when a snapshot fails: no training process outlives the benchmark
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return snapshots


def snapshot(run_dir: Path, pattern: str, folder: Path, at: float, started_at: float) -> dict:
    """Copies the newest complete checkpoint matching `pattern` to `folder` (see `train_for`).

    The framework keeps writing and deleting checkpoints meanwhile: one that vanishes while it is
    looked at is passed over for the one before it.
    """
    found = []
    for path in run_dir.glob(pattern):
        try:
            if path.is_file():
                found.append((path.stat().st_mtime, path))
        except FileNotFoundError:
            continue
    for _, path in sorted(found, reverse=True):
        try:
            size = path.stat().st_size
            time.sleep(0.2)  # one being written now grows: take the one before it
            if path.stat().st_size != size:
                continue
            copy = folder / f"{at:g}s{path.suffix}"
            shutil.copyfile(path, copy)
            return {"at_s": at, "saved_s": path.stat().st_mtime - started_at, "path": copy}
        except FileNotFoundError:
            continue
    return {"at_s": at, "saved_s": None, "path": None}


def median_of(pattern: str, text: str) -> float:
    """Median of a reported throughput over a log, leaving out the first report (warm-up)."""
    values = [float(v) for v in re.findall(pattern, text)]
    if not values:
        raise RuntimeError(f"no throughput matching {pattern!r} in the log")
    return statistics.median(values[1:] or values)


def log_every(args: argparse.Namespace) -> int:
    """Steps between throughput reports: 50, or fewer when checkpoints come more often."""
    return max(1, min(50, args.save_every // 2))


# --- one function per framework: train, then translate the test set into pieces ------------------------------


def ours(args: argparse.Namespace, corpus: Corpus, run_dir: Path, env: dict) -> tuple[float, list[dict]]:
    overrides = [
        *corpus.overrides,
        f"decoder.input_feeding={str(args.input_feeding).lower()}",
        f"data.max_tokens={MAX_TOKENS}",
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


def ours_translate(
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


def joeynmt(args: argparse.Namespace, corpus: Corpus, run_dir: Path, env: dict) -> tuple[float, list[dict]]:
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
            # It runs a few times slower than the others: it checkpoints (at validation) 5x as often,
            # on 100 dev sentences, so that it has a checkpoint within the budget.
            "validation_freq": max(2, args.save_every // 5),
            "logging_freq": max(1, args.save_every // 10),
            "sample_dev_subset": 100,
            "eval_metrics": ["bleu"],
            "early_stopping_metric": "loss",
            "keep_best_ckpts": 1,
            "shuffle": True,
            "num_workers": 0,
            "print_valid_sents": [0],
        },
        "testing": {
            "load_model": str(run_dir / "model" / "latest.ckpt"),
            "beam_size": 1,
            "batch_size": 64,
            "batch_type": "sentence",
            "eval_metrics": ["bleu"],
        },
        "model": {
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
                "input_feeding": args.input_feeding,
                "init_hidden": "bridge",
                "embeddings": {"embedding_dim": EMBED},
            },
        },
    }
    config_path = run_dir / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    bin_dir = ensure_venv(args.work, "joeynmt")
    command = [str(bin_dir / "python"), "-m", "joeynmt", "train", str(config_path)]
    snapshots = train_for(command, run_dir, "model/[0-9]*.ckpt", args.curve, env)
    return median_of(r"Tokens per Sec:\s+([\d.]+)", train_log(run_dir).read_text()), snapshots


def joeynmt_translate(
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


def opennmt(args: argparse.Namespace, corpus: Corpus, run_dir: Path, env: dict) -> tuple[float, list[dict]]:
    config = {
        "save_data": str(run_dir / "onmt"),
        "src_vocab": str(run_dir / "vocab.src"),
        "tgt_vocab": str(run_dir / "vocab.tgt"),
        "overwrite": True,
        "src_vocab_size": len(corpus.vocabs.src),  # every piece: the same output layer as ours
        "tgt_vocab_size": len(corpus.vocabs.tgt),
        "src_seq_length": 250,
        "tgt_seq_length": 250,
        "data": {
            "corpus_1": {"path_src": f"{corpus.pieces}/train.src", "path_tgt": f"{corpus.pieces}/train.tgt"},
            "valid": {"path_src": f"{corpus.pieces}/valid.src", "path_tgt": f"{corpus.pieces}/valid.tgt"},
        },
        "encoder_type": "brnn",
        "decoder_type": "rnn",
        "rnn_type": "LSTM",
        "word_vec_size": EMBED,
        "layers": 1,
        "enc_hid_size": 2 * ENC_HIDDEN,
        "dec_hid_size": DEC_HIDDEN,
        "global_attention": "general",
        "input_feed": int(args.input_feeding),
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
        "train_steps": args.steps or 1_000_000,
        "save_checkpoint_steps": args.save_every,
        "valid_steps": args.save_every,
        "report_every": log_every(args),
        "save_model": str(run_dir / "model"),
        "seed": SEED,
        "num_workers": 0,
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


def opennmt_translate(
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


def fairseq(args: argparse.Namespace, corpus: Corpus, run_dir: Path, env: dict) -> tuple[float, list[dict]]:
    bin_dir = ensure_venv(args.work, "fairseq")
    binarized = run_dir / "bin"
    run(
        [
            str(bin_dir / "fairseq-preprocess"),
            "--source-lang",
            "src",
            "--target-lang",
            "tgt",
            "--trainpref",
            f"{corpus.pieces}/train",
            "--validpref",
            f"{corpus.pieces}/valid",
            "--testpref",
            f"{corpus.pieces}/test",
            "--destdir",
            str(binarized),
            "--workers",
            "1",
        ],
        run_dir / "preprocess.log",
        env,
        run_dir,
    )
    command = [
        str(bin_dir / "fairseq-train"),
        str(binarized),
        "--cpu",
        "--arch",
        "lstm",
        "--encoder-embed-dim",
        str(EMBED),
        "--encoder-hidden-size",
        str(ENC_HIDDEN),
        "--encoder-layers",
        "1",
        "--encoder-bidirectional",
        "--decoder-embed-dim",
        str(EMBED),
        "--decoder-hidden-size",
        str(DEC_HIDDEN),
        "--decoder-layers",
        "1",
        "--decoder-out-embed-dim",
        str(DEC_HIDDEN),
        "--decoder-attention",
        "True",
        "--dropout",
        "0.1",
        "--optimizer",
        "adam",
        "--lr",
        str(LR),
        "--clip-norm",
        "1.0",
        "--criterion",
        "label_smoothed_cross_entropy",
        "--label-smoothing",
        "0.1",
        "--max-tokens",
        str(MAX_TOKENS),
        "--max-epoch",
        "1000",
        "--max-update",
        str(args.steps or 0),  # 0: no limit
        "--save-dir",
        str(run_dir / "ckpt"),
        "--save-interval-updates",
        str(args.save_every),
        "--keep-interval-updates",
        "1",
        "--no-epoch-checkpoints",
        "--log-format",
        "simple",
        "--log-interval",
        str(log_every(args)),
        "--num-workers",
        "0",
        "--seed",
        str(SEED),
    ]
    snapshots = train_for(command, run_dir, "ckpt/checkpoint_*.pt", args.curve, env)
    return median_of(r"wps=([\d.]+)", train_log(run_dir).read_text()), snapshots


def fairseq_translate(
    args: argparse.Namespace, corpus: Corpus, run_dir: Path, env: dict, checkpoint: Path
) -> list[str]:
    generated = subprocess.run(
        [
            str(ensure_venv(args.work, "fairseq") / "fairseq-generate"),
            str(run_dir / "bin"),
            "--cpu",
            "--path",
            str(checkpoint),
            "--gen-subset",
            "test",
            "--beam",
            "1",
            "--batch-size",
            "64",
            "--max-len-a",
            "1.5",
            "--max-len-b",
            "10",
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


TOOLS = {  # name -> (train: rate and checkpoint snapshots, translate one checkpoint into test-set lines)
    "ours": (ours, ours_translate),
    "joeynmt": (joeynmt, joeynmt_translate),
    "opennmt": (opennmt, opennmt_translate),
    "fairseq": (fairseq, fairseq_translate),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tools", nargs="+", choices=list(TOOLS), default=list(TOOLS))
    parser.add_argument(
        "--budget", type=float, default=300.0, help="wall-clock seconds of training per framework"
    )
    parser.add_argument(
        "--curve",
        type=float,
        nargs="+",
        help="seconds at which to take the newest checkpoint and score it (a learning curve); the budget "
        "is the largest (default: the budget alone)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        help="train every framework for this many updates instead of a time budget (equal steps: compares "
        "what each learns per step, whatever its speed), and score its checkpoint then",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--data",
        nargs="*",
        default=[],
        metavar="OVERRIDE",
        help="Hydra data overrides choosing the corpus for all (default: the bundled one), e.g. data=parallel "
        "data.path=DIR data.src_lang=de data.tgt_lang=en",
    )
    parser.add_argument("--overrides", nargs="*", default=[], help="more Hydra overrides for our run")
    parser.add_argument(
        "--input-feeding",
        type=lambda v: v.lower() == "true",
        default=True,
        metavar="true|false",
        help="feed the previous attentional output into the next decoder step (fairseq's LSTM always does)",
    )
    parser.add_argument(
        "--save-every", type=int, default=250, help="steps between checkpoints (and validations)"
    )
    parser.add_argument(
        "--work", type=Path, default=PROJECT_ROOT / "benchmarks" / ".peers", help="venvs, data and runs"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "peers.json")
    parser.add_argument(
        "--append",
        action="store_true",
        help="add the rows to those already in --out (a row of the same framework, overrides and decoder "
        "replaces its older one): how variants of our run measured one at a time end up in one table",
    )
    args = parser.parse_args()
    args.work = args.work.resolve()
    if args.steps is not None:
        if args.curve or "joeynmt" in args.tools:
            sys.exit(
                "error: --steps runs each training to its end: leave out --curve and joeynmt (no step limit)"
            )
        args.save_every, args.curve, args.budget = args.steps, [], None
    else:
        args.curve = sorted(args.curve or [args.budget])
        args.budget = args.curve[-1]
    if not args.input_feeding and "fairseq" in args.tools:
        sys.exit(
            "error: fairseq's LSTM decoder always uses input feeding; leave fairseq out of --tools with --input-feeding false"
        )
    args.work.mkdir(parents=True, exist_ok=True)
    corpus = prepare_data(args.work, args.data)
    references = corpus.references
    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "PYTHONHASHSEED": "0"}
    for tool in args.tools:  # install first, so that no install runs beside a timed training
        if tool != "ours":
            ensure_venv(args.work, tool)
    torch.set_num_threads(args.threads)
    measured_on = machine()  # before any training starts: the probe must not run beside one
    rows = []
    points = ", ".join(f"{t:g} s" for t in args.curve) if args.curve else f"step {args.steps}"
    print(f"{'framework':<10} {'tgt tok/s':>10}  test BLEU at {points}")
    for tool in args.tools:
        run_dir = args.work / "runs" / corpus.name / f"{tool}-feed{int(args.input_feeding)}"
        if run_dir.exists():
            shutil.rmtree(run_dir)  # checkpoints of an earlier run must not be taken for this one's
        run_dir.mkdir(parents=True)
        train, translate = TOOLS[tool]
        rate, snapshots = train(args, corpus, run_dir, env)  # translations run after training, untimed
        curve = []
        for taken in snapshots:
            point = {
                "at_s": taken["at_s"],
                "saved_s": taken["saved_s"],
                "test_bleu": None,
                "exact_match": None,
            }
            if taken["path"] is not None:  # None: no checkpoint yet at that time
                output = translate(args, corpus, run_dir, env, taken["path"])
                hypotheses = (
                    output
                    if tool == "ours"
                    else [corpus.vocabs.tgt.processor.decode_pieces(line.split()) for line in output]
                )
                if len(hypotheses) != len(references):
                    sys.exit(
                        f"error: {tool} translated {len(hypotheses)} of {len(references)} test sentences; see {run_dir}"
                    )
                point |= {
                    "test_bleu": corpus_bleu(hypotheses, references),
                    "exact_match": exact_match(hypotheses, references),
                }
            curve.append(point)
        rows.append(
            {
                "framework": tool,
                "tokens_per_sec": rate,
                "test_bleu": curve[-1]["test_bleu"],  # at the budget
                "exact_match": curve[-1]["exact_match"],
                "curve": curve,
                "input_feeding": args.input_feeding,
                "budget_s": args.budget,
                "steps": args.steps,
                "threads": args.threads,
                "corpus": list(corpus.overrides),
                "overrides": list(args.overrides) if tool == "ours" else [],
                "machine": measured_on,
            }
        )
        shown = ", ".join(
            "no checkpoint" if p["test_bleu"] is None else f"{p['test_bleu']:.1f}" for p in curve
        )
        print(f"{tool:<10} {rate:>10,.0f}  {shown}", flush=True)
    if "ours" in args.tools:
        ours_rate = rows[args.tools.index("ours")]["tokens_per_sec"]
        for row in rows:
            row["ours_speedup"] = ours_rate / row["tokens_per_sec"]
    if args.append and args.out.is_file():
        new = {row_key(row) for row in rows}
        rows = [row for row in json.loads(args.out.read_text()) if row_key(row) not in new] + rows
    write_json(args.out, rows)


def row_key(row: dict) -> tuple:
    """What `--append` tells rows apart by."""
    return row["framework"], tuple(row.get("overrides", [])), row["input_feeding"], row.get("steps")


if __name__ == "__main__":
    main()
