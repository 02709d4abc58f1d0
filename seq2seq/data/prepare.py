"""Preparing a corpus once: the sentencepiece ids of every split as flat arrays that training memory-maps.

One prepared folder per corpus files + settings, under `data.prepared_dir`, in the format that
`prepared_format.py` owns. One process prepares at a time (a file lock beside the folder); the others
wait, then map the same files. A manifest whose source files (size and modification time, else their
SHA-256) or settings differ is not used: the folder is rebuilt. Files are read line by line (plain or
.gz) and encoded by worker processes in chunks, so no file is ever held in memory whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import multiprocessing
import os
import shutil
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seq2seq.data.corpus import (
    CorpusError,
    count_lines,
    decode_line,
    find_split_file,
    iter_raw_pairs,
    line_count_error,
)
from seq2seq.data.locking import file_lock
from seq2seq.data.prepared_format import (
    SIDES,
    SPLITS,
    SplitWriter,
    read_manifest,
    token_dtype,
    write_manifest,
)
from seq2seq.data.vocab import Vocab, Vocabs, build_vocabs
from seq2seq.files import atomic_folder

log = logging.getLogger(__name__)

CHUNK_PAIRS = 4096  # pairs per task sent to a worker
MAX_EMPTY_SHOWN = 10


@dataclass(frozen=True)
class CorpusFiles:
    """The files of each split: a list of (source file, target file), several for a multi-corpus train split."""

    splits: dict[str, list[tuple[Path, Path]]]

    @classmethod
    def find(
        cls, path: str | Path, src_lang: str, tgt_lang: str, train: list[str] | None = None
    ) -> CorpusFiles:
        """`path/{split}.{lang}` (or .gz); `train` lists the training corpora as file prefixes instead.

        A prefix `P` means `P.{src_lang}` and `P.{tgt_lang}`; a relative prefix is taken inside `path`.
        """
        folder = Path(path)
        prefixes = {
            "train": [folder / p for p in train] if train else [folder / "train"],
            "valid": [folder / "valid"],
            "test": [folder / "test"],
        }
        splits = {
            split: [
                (find_split_file(p.parent, p.name, src_lang), find_split_file(p.parent, p.name, tgt_lang))
                for p in prefixes[split]
            ]
            for split in SPLITS
        }
        return cls({split: [(s.resolve(), t.resolve()) for s, t in splits[split]] for split in SPLITS})

    def key(self, settings: PrepareSettings) -> str:
        """Names the prepared folder: which files, prepared how (their content is checked by the manifest)."""
        described = {split: [[str(s), str(t)] for s, t in pairs] for split, pairs in self.splits.items()}
        return hashlib.sha256(json.dumps([described, asdict(settings)], sort_keys=True).encode()).hexdigest()[
            :16
        ]


@dataclass(frozen=True)
class PrepareSettings:
    """Everything besides the files that decides the prepared arrays."""

    vocab: dict
    max_length: int | None = None
    too_long: str = "drop"
    empty_lines: str = "skip"


@dataclass
class SplitCounts:
    """What preparation kept and left out of one split (recorded in the manifest, logged at every load)."""

    pairs: int = 0
    tokens: dict[str, int] = field(default_factory=lambda: {"src": 0, "tgt": 0})
    longest: dict[str, int] = field(default_factory=lambda: {"src": 0, "tgt": 0})
    too_long: int = 0
    empty: dict[str, list] = field(default_factory=dict)  # source file -> [count, first line numbers]
    lines: list[int] = field(default_factory=list)  # lines of each corpus of the split


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


def default_workers() -> int:
    return max(
        1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    )


def manifest_matches(manifest: dict, files: CorpusFiles, settings: PrepareSettings) -> bool:
    """The manifest was written for these settings and these files as they are now."""
    if manifest["settings"] != json.loads(json.dumps(asdict(settings))):
        return False
    recorded = manifest["sources"]
    if [(s["split"], s["path"]) for s in recorded] != [(split, str(p)) for split, p in source_files(files)]:
        return False
    return all(source_unchanged(source) for source in recorded)


def source_unchanged(source: dict) -> bool:
    path = Path(source["path"])
    try:
        stat = path.stat()
    except OSError:
        return False
    if stat.st_size != source["size"]:
        return False
    return stat.st_mtime_ns == source["mtime_ns"] or file_digest(path) == source["sha256"]


def source_files(files: CorpusFiles) -> list[tuple[str, Path]]:
    return [(split, path) for split in SPLITS for pair in files.splits[split] for path in pair]


def file_digest(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def describe_sources(files: CorpusFiles) -> list[dict]:
    described = []
    for split, path in source_files(files):
        stat = path.stat()
        described.append(
            {
                "split": split,
                "path": str(path),
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
                "sha256": file_digest(path),
            }
        )
    return described


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


@contextlib.contextmanager
def encoding_pool(vocabs: Vocabs, workers: int | None) -> Iterator[Encoders]:
    """Worker processes that hold the sentencepiece models (forked where the OS can: no re-import)."""
    workers = workers or default_workers()
    context = multiprocessing.get_context(
        "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    )
    with context.Pool(
        workers, initializer=start_worker, initargs=(vocabs.src.model_bytes, vocabs.tgt.model_bytes)
    ) as pool:
        yield Encoders(pool, workers, token_dtype(vocabs))


@dataclass(frozen=True)
class Encoders:
    """The worker pool, its size (how many chunks to keep in flight) and the token dtype to write."""

    pool: Any
    workers: int
    token_type: type


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


@dataclass(frozen=True)
class Rules:
    """How a worker treats the pairs of one split."""

    split: str
    max_length: int | None
    too_long: str
    empty_lines: str


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` is the index-th of `count` equal runs of a split's lines (corpora in order)."""

    index: int = 0
    count: int = 1

    def lines(self, total: int) -> tuple[int, int]:
        """[first, stop) of this shard among `total` lines."""
        return total * self.index // self.count, total * (self.index + 1) // self.count


@dataclass
class Chunk:
    """A worker's result: the kept pairs' ids flattened, their lengths, and what was left out."""

    ids: tuple[np.ndarray, np.ndarray]
    lengths: tuple[np.ndarray, np.ndarray]
    empty: list[int]
    too_long: int
    text: tuple[list[str], list[str]] | None


_VOCABS: tuple[Vocab, Vocab] | None = None


def start_worker(src_model: bytes, tgt_model: bytes) -> None:
    global _VOCABS
    _VOCABS = (Vocab(src_model), Vocab(tgt_model))


def encode_chunk(task: tuple[Rules, Path, Path, int, list[bytes], list[bytes]]) -> Chunk:
    """Decodes, checks and encodes one chunk of raw line pairs (runs in a worker process)."""
    rules, src_path, tgt_path, first, src_raw, tgt_raw = task
    src_lines = [decode_line(raw, src_path, first + i) for i, raw in enumerate(src_raw)]
    tgt_lines = [decode_line(raw, tgt_path, first + i) for i, raw in enumerate(tgt_raw)]
    empty = [first + i for i, (s, t) in enumerate(zip(src_lines, tgt_lines, strict=True)) if not (s and t)]
    if empty:
        src_lines, tgt_lines = (
            [s for s, t in zip(src_lines, tgt_lines, strict=True) if s and t],
            [t for s, t in zip(src_lines, tgt_lines, strict=True) if s and t],
        )
    src_ids, tgt_ids = _VOCABS[0].encode(src_lines), _VOCABS[1].encode(tgt_lines)
    too_long = 0
    if rules.max_length is not None:
        limit = rules.max_length
        keep = [len(s) <= limit and len(t) <= limit for s, t in zip(src_ids, tgt_ids, strict=True)]
        too_long = keep.count(False)
        if too_long and rules.too_long == "truncate":
            src_ids, tgt_ids = [s[:limit] for s in src_ids], [t[:limit] for t in tgt_ids]
        elif too_long:
            src_ids = [s for s, k in zip(src_ids, keep, strict=True) if k]
            tgt_ids = [t for t, k in zip(tgt_ids, keep, strict=True) if k]
    text = (src_lines, tgt_lines) if rules.split != "train" else None
    return Chunk(
        ids=tuple(np.fromiter(itertools.chain.from_iterable(ids), np.int64) for ids in (src_ids, tgt_ids)),
        lengths=tuple(np.fromiter(map(len, ids), np.int64, count=len(ids)) for ids in (src_ids, tgt_ids)),
        empty=empty,
        too_long=too_long,
        text=text,
    )


def chunks(
    corpora: list[tuple[Path, Path]], rules: Rules, counts: SplitCounts, shard: Shard
) -> Iterator[tuple]:
    """Tasks of `CHUNK_PAIRS` raw pairs, read as the workers take them; counts each corpus's lines.

    A shard first counts the lines of every corpus (newlines in large blocks: fast), then reads only
    its own run of lines.
    """
    if shard.count == 1:
        ranges = [(0, None)] * len(corpora)
    else:
        counts.lines = [aligned_line_count(src, tgt) for src, tgt in corpora]
        first, stop = shard.lines(sum(counts.lines))
        ends = list(itertools.accumulate(counts.lines))
        ranges = [
            (min(max(first - end + n, 0), n), min(max(stop - end + n, 0), n))
            for n, end in zip(counts.lines, ends, strict=True)
        ]
    for (src_path, tgt_path), (start, stop) in zip(corpora, ranges, strict=True):
        if start == stop:
            continue  # another shard's lines only
        pairs = iter_raw_pairs(src_path, tgt_path, start, stop)
        first = start + 1
        while batch := list(itertools.islice(pairs, CHUNK_PAIRS)):
            src_raw, tgt_raw = zip(*batch, strict=True)
            yield rules, src_path, tgt_path, first, list(src_raw), list(tgt_raw)
            first += len(batch)
        if shard.count == 1:
            counts.lines.append(first - 1)


def aligned_line_count(src_path: Path, tgt_path: Path) -> int:
    src, tgt = count_lines(src_path), count_lines(tgt_path)
    if src != tgt:
        raise line_count_error(src_path, src, tgt_path, tgt)
    return src


def write_split(
    encoders: Encoders, corpora: list[tuple[Path, Path]], rules: Rules, staging: Path, shard: Shard = Shard()
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
