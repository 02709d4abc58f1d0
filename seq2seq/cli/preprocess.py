"""seq2seq-preprocess: prepare a corpus once (sentencepiece + memory-mapped token arrays) for train.py.

Takes the same data config as `python train.py`, so the folder it writes is the one training maps:

    seq2seq-preprocess data=parallel data.path=DIR data.src_lang=de data.tgt_lang=en --workers 8
    python train.py data=parallel data.path=DIR data.src_lang=de data.tgt_lang=en

`train.py` prepares on its own when no matching folder exists; this command does it ahead of a job
(e.g. on a login node or a CPU job before the GPU job), and says what it kept and left out.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf import open_dict

from seq2seq.cli.common import run_command
from seq2seq.config import CONFIG_DIR, setup_hydra
from seq2seq.data.encoding import Shard
from seq2seq.data.prepare import Prepared
from seq2seq.data.shards import merge_shards, prepare_shard
from seq2seq.errors import InputError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="seq2seq-preprocess",
        description="Prepare the corpus of a train.py data config: train or reuse its sentencepiece model, encode "
        "train/valid/test with worker processes into memory-mapped arrays, write a manifest. Prints the folder "
        "and the counts as JSON.",
    )
    parser.add_argument(
        "overrides", nargs="*", help="train.py config overrides, e.g. data=parallel data.path=DIR"
    )
    parser.add_argument("--workers", type=int, help="encoding processes (default: data.prepare_workers)")
    jobs = parser.add_mutually_exclusive_group()
    jobs.add_argument(
        "--shard",
        type=shard_argument,
        metavar="I/N",
        help="prepare only shard I of N of the training split "
        "(one job per shard, e.g. a SLURM array), then --merge N",
    )
    jobs.add_argument(
        "--merge", type=int, metavar="N", help="assemble the N finished shards into the prepared folder"
    )
    return parser.parse_args(argv)


def shard_argument(value: str) -> Shard:
    index, _, count = value.partition("/")
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise argparse.ArgumentTypeError(f"{value!r}: give the shard as I/N with 0 <= I < N, e.g. 3/8")
    return Shard(int(index), int(count))


def run_job(datamodule, args: argparse.Namespace) -> Prepared:
    if args.shard is None and args.merge is None:
        return datamodule.prepare()
    where = (
        datamodule.corpus_files(),
        datamodule.prepare_settings(),
        datamodule.prepared_dir,
        datamodule.cache_dir,
    )
    if args.shard is not None:
        return prepare_shard(*where, args.shard, datamodule.prepare_workers)
    return merge_shards(*where, args.merge, datamodule.prepare_workers)


def main(argv: list[str] | None = None) -> None:
    run_command(lambda: preprocess(parse_args(argv)))


def preprocess(args: argparse.Namespace) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    setup_hydra()
    try:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
            cfg = compose(config_name="train", overrides=args.overrides)
    except HydraException as error:
        raise InputError(
            f"{error} (seq2seq-preprocess takes the overrides train.py takes, e.g. data.path=DIR)"
        ) from None
    with open_dict(cfg):
        if args.workers is not None:
            cfg.data.prepare_workers = args.workers
    datamodule = instantiate(cfg.data)
    started = time.perf_counter()
    prepared = run_job(datamodule, args)
    seconds = time.perf_counter() - started
    prepared.log_counts()
    splits = prepared.manifest["splits"]
    summary = {
        "folder": str(prepared.folder),
        "prepared_now": prepared.built,
        "seconds": round(seconds, 2),
        "pairs": {split: counts["pairs"] for split, counts in splits.items()},
        "tokens": {split: counts["tokens"] for split, counts in splits.items()},
        "train_lines_per_corpus": splits["train"]["lines"],
    }
    if prepared.built and args.shard is None:
        summary["pairs_per_second"] = round(sum(sum(counts["lines"]) for counts in splits.values()) / seconds)
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
