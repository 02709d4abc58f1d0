"""Preparing a corpus once: the sentencepiece ids of every split as flat arrays that training memory-maps.

One prepared folder per corpus files + settings, under `data.prepared_dir`, in the format that
`prepared_format.py` owns. One process prepares at a time (a file lock beside the folder); the others
wait, then map the same files. A manifest whose source files (size and modification time, else their
SHA-256) or settings differ is not used: the folder is rebuilt. Files are read line by line (plain or
.gz) and encoded by worker processes in chunks, so no file is ever held in memory whole.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from seq2seq.data.corpus import (
    CorpusError,
    decode_line,
    iter_raw_pairs,
)
from seq2seq.data.encoding import (
    WHOLE,
    Chunk,
    Encoders,
    Rules,
    Shard,
    chunks,
    encode_chunk,
    encoding_pool,
)
from seq2seq.data.locking import file_lock
from seq2seq.data.prepared_format import (
    SIDES,
    SPLITS,
    SplitCounts,
    SplitWriter,
    read_manifest,
    write_manifest,
)
from seq2seq.data.sources import CorpusFiles, PrepareSettings, describe_sources, manifest_matches
from seq2seq.data.vocab import Vocab, Vocabs, build_vocabs
from seq2seq.files import atomic_folder

log = logging.getLogger(__name__)

MAX_EMPTY_SHOWN = 10


@dataclass
class Prepared:
    """A prepared folder that matches its corpus and settings; `built` says whether this call made it."""

    folder: Path
    manifest: dict
    built: bool

    def vocabs(self) -> Vocabs:
        return Vocabs.load(self.folder, self.manifest["vocab"]["joint"])

    def log_counts(self) -> None:
        """The same warnings a run prints whether it prepared the data now or maps an earlier preparation."""
        settings = self.manifest["settings"]
        for split, counts in self.manifest["splits"].items():
            for path, (count, shown) in counts["empty"].items():
                listed = ", ".join(map(str, shown)) + (", ..." if count > len(shown) else "")
                log.warning(
                    "%s: skipped %d pairs with an empty side (lines %s of %s)", split, count, listed, path
                )
            if counts["too_long"] and settings["too_long"] == "truncate":
                log.warning(
                    "truncated %d training pairs to data.max_length=%d tokens",
                    counts["too_long"],
                    settings["max_length"],
                )
            elif counts["too_long"]:
                log.warning(
                    "dropped %d training pairs longer than data.max_length=%d (data.too_long=truncate keeps them, cut)",
                    counts["too_long"],
                    settings["max_length"],
                )


def prepare(
    files: CorpusFiles,
    settings: PrepareSettings,
    prepared_dir: str | Path,
    vocab_cache: str | Path,
    workers: int | None = None,
) -> Prepared:
    """Returns the prepared folder of `files` and `settings`, preparing it first unless a matching one exists.

    Safe to call from every process of a job at once: one prepares under the lock, the others wait
    for it and then find its manifest.
    """
    folder = Path(prepared_dir) / files.key(settings)

    def make(staging: Path) -> dict:
        sources = describe_sources(files)
        vocabs = train_vocabs(files, settings, sources, Path(vocab_cache))
        with encoding_pool(vocabs, workers) as pool:
            splits = {
                split: write_split(pool, files.splits[split], split_rules(split, settings), staging)
                for split in SPLITS
            }
        return finish_folder(staging, settings, sources, vocabs, splits)

    manifest, built = build_once(folder, lambda manifest: manifest_matches(manifest, files, settings), make)
    return Prepared(folder, manifest, built)


def build_once(
    folder: Path, matches: Callable[[dict], bool], make: Callable[[Path], dict]
) -> tuple[dict, bool]:
    """(manifest, built): the folder's manifest if it `matches`, else `make`s the folder anew in its place.

    Under a lock beside the folder: concurrent callers wait, then find the manifest. `make` writes into a
    staging folder that replaces `folder` only once complete (its manifest written last).
    """
    root = folder.parent
    root.mkdir(parents=True, exist_ok=True)
    with file_lock(root / f".{folder.name}.lock"):
        manifest = read_manifest(folder)
        if manifest is not None and matches(manifest):
            return manifest, False
        for stale in root.glob(f".{folder.name}.*.partial"):  # left by a preparation that was killed
            shutil.rmtree(stale, ignore_errors=True)
        with atomic_folder(folder) as staging:  # runs that mapped the old files keep them
            manifest = make(staging)
    return manifest, True


def train_vocabs(
    files: CorpusFiles, settings: PrepareSettings, sources: list[dict], vocab_cache: Path
) -> Vocabs:
    """The sentencepiece models of the training split (cached by its files' digests and the settings)."""
    train = files.splits["train"]
    if next(iter(KeptSide(train, 0)), None) is None:
        raise CorpusError(
            f"{train[0][0]}: no training pair is left once pairs with an empty side are skipped. "
            f"Check that {train[0][0].name} and {train[0][1].name} hold text on the same lines."
        )
    train_key = json.dumps([[s["sha256"] for s in sources if s["split"] == "train"], settings.empty_lines])
    return build_vocabs(
        KeptSide(train, 0), KeptSide(train, 1), vocab_cache, corpus_key=train_key, **settings.vocab
    )


def split_rules(split: str, settings: PrepareSettings) -> Rules:
    return Rules(
        split, settings.max_length if split == "train" else None, settings.too_long, settings.empty_lines
    )


def finish_folder(
    staging: Path,
    settings: PrepareSettings,
    sources: list[dict],
    vocabs: Vocabs,
    splits: dict[str, SplitCounts],
    **extra: Any,
) -> dict:
    """Writes the folder's manifest (`prepared_format.write_manifest`): settings, sources, what each split kept."""
    return write_manifest(
        staging,
        vocabs,
        settings=asdict(settings),
        sources=sources,
        splits={split: asdict(counts) for split, counts in splits.items()},
        **extra,
    )


class KeptSide:
    """One side of the pairs that training keeps (both sides non-empty), streamed anew at every `iter`."""

    def __init__(self, corpora: list[tuple[Path, Path]], side: int) -> None:
        self.corpora, self.side = corpora, side

    def __iter__(self) -> Iterator[str]:
        for pair in self.corpora:
            for number, raws in enumerate(iter_raw_pairs(*pair), start=1):
                src, tgt = (decode_line(raw, path, number) for raw, path in zip(raws, pair, strict=True))
                if src and tgt:
                    yield (src, tgt)[self.side]


_VOCABS: tuple[Vocab, Vocab] | None = None


def write_split(
    encoders: Encoders, corpora: list[tuple[Path, Path]], rules: Rules, staging: Path, shard: Shard = WHOLE
) -> SplitCounts:
    """Encodes one split (or a shard's chunks of it) in order, keeping a few chunks in flight (bounded memory)."""
    counts = SplitCounts()
    with SplitWriter(staging, rules.split, encoders.token_type) as writer:
        pending: deque = deque()

        def take_oldest() -> None:
            src_path, result = pending.popleft()
            add_chunk(result.get(), str(src_path), counts, writer)

        for task in chunks(corpora, rules, counts, shard):
            pending.append((task[1], encoders.pool.apply_async(encode_chunk, (task,))))
            if len(pending) > 2 * encoders.workers:
                take_oldest()
        while pending:
            take_oldest()
        check_counts(counts, corpora, rules, shard)
        writer.finish(counts.longest)
    return counts


def check_counts(counts: SplitCounts, corpora: list[tuple[Path, Path]], rules: Rules, shard: Shard) -> None:
    """Empty lines are an error under data.empty_lines=error; a split must keep at least one pair."""
    if counts.empty and rules.empty_lines == "error":
        described = "; ".join(
            f"{path}: {count} line(s) with an empty side (lines {', '.join(map(str, shown))}{', ...' if count > len(shown) else ''})"
            for path, (count, shown) in counts.empty.items()
        )
        raise CorpusError(
            f"{described}. Remove them from both files, or set data.empty_lines=skip to leave those pairs out."
        )
    if not counts.pairs and shard.count == 1:
        src_path, tgt_path = corpora[0]
        raise CorpusError(
            f"{src_path}: no {rules.split} pair is left once pairs with an empty side are skipped. "
            f"Check that {src_path.name} and {tgt_path.name} hold text on the same lines."
        )


def add_chunk(chunk: Chunk, src_path: str, counts: SplitCounts, writer: SplitWriter) -> None:
    for side, ids, side_lengths in zip(SIDES, chunk.ids, chunk.lengths, strict=True):
        writer.add(side, ids, side_lengths)
        counts.tokens[side] += len(ids)
        counts.longest[side] = max(counts.longest[side], int(side_lengths.max(initial=0)))
    counts.pairs += len(chunk.lengths[0])
    counts.too_long += chunk.too_long
    if chunk.empty:
        count, shown = counts.empty.get(src_path, [0, []])
        counts.empty[src_path] = [count + len(chunk.empty), (shown + chunk.empty)[:MAX_EMPTY_SHOWN]]
    if chunk.text is not None:
        for side, lines in zip(SIDES, chunk.text, strict=True):
            writer.add_text(side, lines)
