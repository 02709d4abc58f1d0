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
    python benchmarks/peers.py --tools ours-default fairseq-transformer opennmt-defaults --save-every 50 ...

Beside the shared model, three rows train each framework's own recipe, what its user would pick:
`ours-default` (`train.py` with the corpus overrides alone), `fairseq-transformer` (the IWSLT'14
Transformer recipe of fairseq's examples) and `opennmt-defaults` (OpenNMT-py with none of its model or
optimisation options set), on the same pieces, budget and threads.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import torch
from common import RESULTS, machine, write_json
from toolkits import SHARED_MODEL, TOOLS, package_of
from toolkits.harness import Corpus, ensure_venv, prepare_data

from seq2seq.config import PROJECT_ROOT
from seq2seq.training.metrics import corpus_bleu, exact_match


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tools",
        nargs="+",
        choices=list(TOOLS),
        default=list(SHARED_MODEL),
        help="the rows: the four frameworks on the peers table's model (default), and the frameworks' own "
        "recipes: ours-default, fairseq-transformer and opennmt-defaults",
    )
    add_budget_arguments(parser)
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
        "--work", type=Path, default=PROJECT_ROOT / "benchmarks" / ".peers", help="venvs, data and runs"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "peers.json")
    parser.add_argument(
        "--append",
        action="store_true",
        help="add the rows to those already in --out (a row of the same framework, corpus, overrides and decoder "
        "replaces its older one): how variants of our run measured one at a time end up in one table",
    )
    args = parser.parse_args()
    args.work = args.work.resolve()
    check_args(args)
    return args


def add_budget_arguments(parser: argparse.ArgumentParser) -> None:
    """How long each framework trains (a time budget, its curve, or --steps) and how often it saves."""
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
    parser.add_argument(
        "--save-every", type=int, default=250, help="steps between checkpoints (and validations)"
    )


def check_args(args: argparse.Namespace) -> None:
    """Settles the budget (a time budget, its curve, or --steps) and refuses settings a peer cannot run."""
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


def train_and_score(args: argparse.Namespace, tool: str, corpus: Corpus, env: dict) -> dict:
    """Trains `tool` in a fresh run folder, then scores each checkpoint taken (untimed): its table row."""
    name = f"{tool}-feed{int(args.input_feeding)}" if tool in SHARED_MODEL else tool  # recipes: their own
    run_dir = args.work / "runs" / corpus.name / name
    if run_dir.exists():
        shutil.rmtree(run_dir)  # checkpoints of an earlier run must not be taken for this one's
    run_dir.mkdir(parents=True)
    rate, snapshots = TOOLS[tool].train(args, corpus, run_dir, env)
    curve = [score(args, tool, corpus, run_dir, env, taken) for taken in snapshots]
    return {
        "framework": tool,
        "tokens_per_sec": rate,
        "test_bleu": curve[-1]["test_bleu"],  # at the budget
        "exact_match": curve[-1]["exact_match"],
        "curve": curve,
        "input_feeding": args.input_feeding if tool in SHARED_MODEL else None,  # a recipe's own
        "recipe": "shared" if tool in SHARED_MODEL else "own",
        "budget_s": args.budget,
        "steps": args.steps,
        "threads": args.threads,
        "corpus": list(corpus.overrides),
        "overrides": list(args.overrides) if tool.startswith("ours") else [],
    }


def main() -> None:
    args = parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    corpus = prepare_data(args.work, args.data)
    threads = str(args.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "PYTHONHASHSEED": "0"}
    for tool in args.tools:  # install first, so that no install runs beside a timed training
        if package_of(tool) != "ours":
            ensure_venv(args.work, package_of(tool))
    torch.set_num_threads(args.threads)
    measured_on = machine()  # before any training starts: the probe must not run beside one
    rows = []
    points = ", ".join(f"{t:g} s" for t in args.curve) if args.curve else f"step {args.steps}"
    print(f"{'framework':<20} {'tgt tok/s':>10}  test BLEU at {points}")
    for tool in args.tools:
        row = train_and_score(args, tool, corpus, env)
        rows.append({**row, "machine": measured_on})
        rate, curve = row["tokens_per_sec"], row["curve"]
        shown = ", ".join(
            "no checkpoint" if p["test_bleu"] is None else f"{p['test_bleu']:.1f}" for p in curve
        )
        print(f"{tool:<20} {rate:>10,.0f}  {shown}", flush=True)
    if "ours" in args.tools:
        ours_rate = rows[args.tools.index("ours")]["tokens_per_sec"]
        for row in rows:
            row["ours_speedup"] = ours_rate / row["tokens_per_sec"]
    if args.append and args.out.is_file():
        new = {row_key(row) for row in rows}
        rows = [row for row in json.loads(args.out.read_text()) if row_key(row) not in new] + rows
    write_json(args.out, rows)


def score(args: argparse.Namespace, tool: str, corpus, run_dir: Path, env: dict, taken: dict) -> dict:
    """One point of the curve: the snapshot's checkpoint translates the test split, scored with sacreBLEU."""
    point = {"at_s": taken["at_s"], "saved_s": taken["saved_s"], "test_bleu": None, "exact_match": None}
    if taken["path"] is None:  # no checkpoint yet at that time
        return point
    output = TOOLS[tool].translate(args, corpus, run_dir, env, taken["path"])
    hypotheses = (
        output
        if package_of(tool) == "ours"
        else [corpus.vocabs.tgt.processor.decode_pieces(line.split()) for line in output]
    )
    references = corpus.references
    if len(hypotheses) != len(references):
        sys.exit(
            f"error: {tool} translated {len(hypotheses)} of {len(references)} test sentences; see {run_dir}"
        )
    return point | {
        "test_bleu": corpus_bleu(hypotheses, references),
        "exact_match": exact_match(hypotheses, references),
    }


def row_key(row: dict) -> tuple:
    """What `--append` tells rows apart by: the corpus too, since an experiment file chosen with `--data`
    (e.g. `experiment=tatoeba_lstm`) is a row of its own."""
    return (
        row["framework"],
        tuple(row.get("corpus", [])),
        tuple(row.get("overrides", [])),
        row["input_feeding"],
        row.get("steps"),
    )


if __name__ == "__main__":
    main()
