"""Preparing one corpus in shards on several machines, then merging them into the folder training maps.

Shard i of N takes the i-th of N equal runs of the training split's lines (its corpora in order): it
counts the lines of each file in large blocks, skips to its first line, and reads and encodes only
its run, into `{key}.shards/{i}-of-{N}/` beside the prepared folder. The merge concatenates
the runs in order and prepares valid/test, so the result is byte for byte what one machine would
have prepared. Every shard and the merge use the same
sentencepiece model: the first job to need it trains it under a lock in the shared vocabulary cache,
the others wait and load it. With SLURM:

    sbatch --array=0-7 --wrap 'seq2seq-preprocess data.path=DIR ... --shard $SLURM_ARRAY_TASK_ID/8'
    seq2seq-preprocess data.path=DIR ... --merge 8        # after the array: seconds, reads and copies
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from seq2seq.data.corpus import CorpusError
from seq2seq.data.encoding import Shard, encoding_pool
from seq2seq.data.prepare import (
    MAX_EMPTY_SHOWN,
    Prepared,
    build_once,
    finish_folder,
    split_rules,
    train_vocabs,
    write_split,
)
from seq2seq.data.prepared_format import SIDES, MappedSide, SplitCounts, SplitWriter, read_manifest
from seq2seq.data.sources import CorpusFiles, PrepareSettings, describe_sources, manifest_matches


def shard_folder(
    prepared_dir: str | Path, files: CorpusFiles, settings: PrepareSettings, shard: Shard
) -> Path:
    return Path(prepared_dir) / f"{files.key(settings)}.shards" / f"{shard.index}-of-{shard.count}"


def prepare_shard(
    files: CorpusFiles,
    settings: PrepareSettings,
    prepared_dir: str | Path,
    vocab_cache: str | Path,
    shard: Shard,
    workers: int | None = None,
) -> Prepared:
    """Encodes shard `shard.index` of `shard.count` of the training split (reused if it already matches)."""
    if not 0 <= shard.index < shard.count:
        raise CorpusError(
            f"--shard {shard.index}/{shard.count}: the shard number must be 0 to {shard.count - 1}."
        )
    folder = shard_folder(prepared_dir, files, settings, shard)

    def make(staging: Path) -> dict:
        sources = describe_sources(files)
        vocabs = train_vocabs(files, settings, sources, Path(vocab_cache))
        with encoding_pool(vocabs, workers) as pool:
            train = write_split(pool, files.splits["train"], split_rules("train", settings), staging, shard)
        return finish_folder(
            staging, settings, sources, vocabs, {"train": train}, shard=[shard.index, shard.count]
        )

    manifest, built = build_once(folder, lambda manifest: manifest_matches(manifest, files, settings), make)
    return Prepared(folder, manifest, built)


def merge_shards(
    files: CorpusFiles,
    settings: PrepareSettings,
    prepared_dir: str | Path,
    vocab_cache: str | Path,
    count: int,
    workers: int | None = None,
) -> Prepared:
    """The prepared folder of `files`, assembled from `count` finished shards (reused if it already matches)."""
    shards = [Shard(index, count) for index in range(count)]
    folder = Path(prepared_dir) / files.key(settings)

    def make(staging: Path) -> dict:
        manifests = [finished_shard(files, settings, prepared_dir, shard) for shard in shards]
        sources = describe_sources(files)
        vocabs = train_vocabs(files, settings, sources, Path(vocab_cache))  # cached by the shard jobs
        folders = [shard_folder(prepared_dir, files, settings, shard) for shard in shards]
        splits = {"train": concatenate(folders, manifests, staging)}
        with encoding_pool(vocabs, workers) as pool:
            for split in ("valid", "test"):
                splits[split] = write_split(pool, files.splits[split], split_rules(split, settings), staging)
        return finish_folder(staging, settings, sources, vocabs, splits, merged_from=count)

    manifest, built = build_once(folder, lambda manifest: manifest_matches(manifest, files, settings), make)
    return Prepared(folder, manifest, built)


def finished_shard(
    files: CorpusFiles, settings: PrepareSettings, prepared_dir: str | Path, shard: Shard
) -> dict:
    folder = shard_folder(prepared_dir, files, settings, shard)
    manifest = read_manifest(folder)
    if manifest is None or not manifest_matches(manifest, files, settings):
        state = (
            "is missing or unfinished" if manifest is None else "was prepared from other files or settings"
        )
        raise CorpusError(
            f"Cannot merge: shard {shard.index} of {shard.count} ({folder}) {state}. Run seq2seq-preprocess with the "
            f"same overrides and --shard {shard.index}/{shard.count} first, then merge again."
        )
    return manifest


def concatenate(folders: list[Path], manifests: list[dict], staging: Path) -> SplitCounts:
    """Writes the training split as the shards' runs of lines one after the other (corpus order)."""
    merged = SplitCounts(lines=manifests[0]["splits"]["train"]["lines"])
    with SplitWriter(staging, "train", np.dtype(manifests[0]["token_dtype"]).type) as writer:
        for folder, manifest in zip(folders, manifests, strict=True):
            for side in SIDES:
                shard = MappedSide(folder, "train", side, manifest)
                for start in range(0, len(shard.tokens), 1 << 24):  # copied in slices: bounded memory
                    writer.add_ids(side, shard.tokens[start : start + (1 << 24)])
                writer.add_lengths(side, shard.lengths)
            add_counts(merged, manifest["splits"]["train"])
        writer.finish(merged.longest)
    return merged


def add_counts(merged: SplitCounts, counts: dict) -> None:
    merged.pairs += counts["pairs"]
    merged.too_long += counts["too_long"]
    for side in SIDES:
        merged.tokens[side] += counts["tokens"][side]
        merged.longest[side] = max(merged.longest[side], counts["longest"][side])
    for path, (count, shown) in counts["empty"].items():
        total, lines = merged.empty.get(path, [0, []])
        merged.empty[path] = [total + count, sorted(lines + shown)[:MAX_EMPTY_SHOWN]]
