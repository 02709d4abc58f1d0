"""The on-disk format of a prepared corpus: file names, dtypes and manifest, with its one writer and reader.

A prepared folder holds, per split and side:

    {split}.{side}.tokens    ids of all kept pairs back to back, no eos (uint16 if the vocabulary fits, else uint32)
    {split}.{side}.offsets   int64 start of each pair's ids in `tokens`
    {split}.{side}.lengths   ids per pair (uint16 when every pair fits, else uint32)
    {split}.{side}.txt       valid/test only: the kept lines, which BLEU is computed against

plus the sentencepiece model(s) and `manifest.json`, written last: a folder without a manifest is
unfinished and is built again. `SplitWriter` writes a split's files, `MappedSide` maps them back,
`write_manifest` and `read_manifest` own the manifest; preparation (prepare.py), shard merging
(shards.py) and the training dataset (mapped.py) all go through these.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seq2seq.data.corpus import CorpusError
from seq2seq.data.vocab import Vocabs
from seq2seq.files import atomic_write_bytes

FORMAT = 1
SPLITS = ("train", "valid", "test")
SIDES = ("src", "tgt")
ARRAYS = ("tokens", "offsets", "lengths")


def array_path(folder: Path, split: str, side: str, kind: str) -> Path:
    """`{split}.{side}.{kind}` for kind in ARRAYS."""
    if kind not in ARRAYS:
        raise ValueError(f"{kind!r} is not one of the prepared arrays {ARRAYS}")
    return folder / f"{split}.{side}.{kind}"


def text_path(folder: Path, split: str, side: str) -> Path:
    """`{split}.{side}.txt`: the kept lines of a valid or test split."""
    return folder / f"{split}.{side}.txt"


def length_dtype(longest: int) -> str:
    """The dtype of a side's per-pair lengths: uint16 when its longest pair fits."""
    return "uint16" if longest < 2**16 else "uint32"


def token_dtype(vocabs: Vocabs) -> type:
    """The dtype of the token ids: uint16 when both vocabularies fit."""
    return np.uint16 if max(len(vocabs.src), len(vocabs.tgt)) <= 2**16 else np.uint32


class SplitWriter(contextlib.AbstractContextManager):
    """Writes one split into a staging folder: ids appended per side, then the per-pair index on `finish`.

    Args:
        staging: the folder being prepared.
        split: the split's name (valid and test also write their text).
        token_type: the dtype of the ids (`token_dtype`).
    """

    def __init__(self, staging: Path, split: str, token_type: type) -> None:
        self.staging, self.split, self.token_type = staging, split, token_type
        self._files = contextlib.ExitStack()  # every file below is closed by it, on finish or on exit
        self._tokens = {side: self._open(array_path(staging, split, side, "tokens"), "wb") for side in SIDES}
        self._texts = {}
        if split != "train":
            self._texts = {side: self._open(text_path(staging, split, side), "w") for side in SIDES}
        self._lengths: dict[str, list[np.ndarray]] = {side: [] for side in SIDES}

    def _open(self, path: Path, mode: str) -> Any:
        encoding = None if "b" in mode else "utf-8"
        return self._files.enter_context(open(path, mode, encoding=encoding))

    def add(self, side: str, ids: np.ndarray, lengths: np.ndarray) -> None:
        """Appends pairs' ids (back to back) and their lengths to one side."""
        self.add_ids(side, ids)
        self.add_lengths(side, lengths)

    def add_ids(self, side: str, ids: np.ndarray) -> None:
        """Appends ids to one side's tokens (pairs whose lengths `add_lengths` gives, before or after)."""
        np.asarray(ids).astype(self.token_type).tofile(self._tokens[side])

    def add_lengths(self, side: str, lengths: np.ndarray) -> None:
        self._lengths[side].append(np.asarray(lengths))

    def add_text(self, side: str, lines: list[str]) -> None:
        self._texts[side].write("".join(line + "\n" for line in lines))

    def finish(self, longest: dict[str, int]) -> None:
        """Closes the files and writes each side's lengths and int64 offsets into its `tokens`."""
        self._files.close()
        for side in SIDES:
            parts = self._lengths[side]
            side_lengths = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
            side_lengths.astype(length_dtype(longest[side])).tofile(
                array_path(self.staging, self.split, side, "lengths")
            )
            offsets = np.zeros(len(side_lengths), dtype=np.int64)
            np.cumsum(side_lengths[:-1], out=offsets[1:])
            offsets.tofile(array_path(self.staging, self.split, side, "offsets"))

    def __exit__(self, *raised: object) -> None:
        self._files.close()


@dataclass
class SplitCounts:
    """What preparation kept and left out of one split (recorded in the manifest, logged at every load)."""

    pairs: int = 0
    tokens: dict[str, int] = field(default_factory=lambda: {"src": 0, "tgt": 0})
    longest: dict[str, int] = field(default_factory=lambda: {"src": 0, "tgt": 0})
    too_long: int = 0
    empty: dict[str, list] = field(default_factory=dict)  # source file -> [count, first line numbers]
    lines: list[int] = field(default_factory=list)  # lines of each corpus of the split


def write_manifest(staging: Path, vocabs: Vocabs, **fields: Any) -> dict:
    """Writes the sentencepiece models, then the manifest (last: its presence marks the folder complete).

    `fields` must hold `settings`, `sources` and `splits` (per split: pairs, tokens, longest, ...).
    """
    vocabs.save(staging)
    manifest = {
        "format": FORMAT,
        "vocab": {"joint": vocabs.joint, "sizes": {"src": len(vocabs.src), "tgt": len(vocabs.tgt)}},
        "token_dtype": np.dtype(token_dtype(vocabs)).name,
        **fields,
    }
    atomic_write_bytes(staging / "manifest.json", (json.dumps(manifest, indent=1) + "\n").encode())
    return manifest


def read_manifest(folder: Path) -> dict | None:
    """The folder's manifest, or None if it has none (unfinished) or one of another format."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return manifest if manifest.get("format") == FORMAT else None


class MappedSide:
    """The ids of one side of one split: a pair's ids are `tokens[offsets[i] : offsets[i] + lengths[i]]`."""

    def __init__(self, folder: Path, split: str, side: str, manifest: dict) -> None:
        counts = manifest["splits"][split]
        pairs, tokens = counts["pairs"], counts["tokens"][side]
        self.tokens = map_array(array_path(folder, split, side, "tokens"), manifest["token_dtype"], tokens)
        self.offsets = map_array(array_path(folder, split, side, "offsets"), "int64", pairs)
        self.lengths = map_array(
            array_path(folder, split, side, "lengths"), length_dtype(counts["longest"][side]), pairs
        )
        if pairs and (self.offsets[0] != 0 or self.offsets[-1] + self.lengths[-1] != tokens):
            raise corrupt(
                array_path(folder, split, side, "offsets"), "its offsets do not add up to the token count"
            )

    def used_ids(self, vocab_size: int) -> np.ndarray:
        """The ids that occur on this side, ascending (one pass over the mapped tokens)."""
        return np.flatnonzero(np.bincount(self.tokens, minlength=vocab_size))

    def ids(self, index: int) -> list[int]:
        start = int(self.offsets[index])
        return self.tokens[start : start + int(self.lengths[index])].tolist()


def map_array(path: Path, dtype: str, count: int) -> np.ndarray:
    """Maps `path` read-only as `count` values of `dtype`; a missing or wrongly sized file is a clear error."""
    expected = count * np.dtype(dtype).itemsize
    try:
        size = path.stat().st_size
    except OSError:
        raise corrupt(path, "the file is missing") from None
    if size != expected:
        raise corrupt(path, f"it has {size} bytes where the manifest promises {count} x {dtype} = {expected}")
    return np.memmap(path, dtype=dtype, mode="r", shape=(count,)) if count else np.zeros(0, dtype=dtype)


def corrupt(path: Path, reason: str) -> CorpusError:
    return CorpusError(
        f"Prepared data are damaged: {path}: {reason}. Delete the folder {path.parent} (or run seq2seq-preprocess "
        f"again after deleting it) and the next run prepares the corpus anew."
    )
