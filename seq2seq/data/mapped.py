"""A split of a prepared corpus, memory-mapped: ranks on one node share its pages through the OS page cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from seq2seq.data.corpus import CorpusError, ParallelText, read_lines
from seq2seq.data.prepare import SIDES, length_dtype


class MappedSide:
    """The ids of one side of one split: a pair's ids are `tokens[offsets[i] : offsets[i] + lengths[i]]`."""

    def __init__(self, folder: Path, split: str, side: str, manifest: dict) -> None:
        counts = manifest["splits"][split]
        pairs, tokens = counts["pairs"], counts["tokens"][side]
        self.tokens = map_array(folder / f"{split}.{side}.tokens", manifest["token_dtype"], tokens)
        self.offsets = map_array(folder / f"{split}.{side}.offsets", "int64", pairs)
        self.lengths = map_array(
            folder / f"{split}.{side}.lengths", length_dtype(counts["longest"][side]), pairs
        )
        if pairs and (self.offsets[0] != 0 or self.offsets[-1] + self.lengths[-1] != tokens):
            raise corrupt(folder / f"{split}.{side}.offsets", "its offsets do not add up to the token count")

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


class MappedPairs(Dataset):
    """Token ids of one prepared split; valid/test also keep their text (the references BLEU needs).

    Items are `(index, source ids, target ids)`, the ids without eos, read from the mapped arrays on
    demand: nothing is decoded into Python lists up front.
    """

    def __init__(self, folder: Path, split: str, manifest: dict) -> None:
        counts = manifest["splits"][split]
        self.src, self.tgt = (MappedSide(folder, split, side, manifest) for side in SIDES)
        self.text: ParallelText | None = None
        if split != "train":
            src_path, tgt_path = (folder / f"{split}.{side}.txt" for side in SIDES)
            self.text = ParallelText(read_lines(src_path), read_lines(tgt_path), src_path, tgt_path)
            if len(self.text) != counts["pairs"]:
                raise corrupt(
                    src_path, f"it has {len(self.text)} lines where the manifest promises {counts['pairs']}"
                )

    def __len__(self) -> int:
        return len(self.src.lengths)

    def __getitem__(self, index: int) -> tuple[int, list[int], list[int]]:
        return index, self.src.ids(index), self.tgt.ids(index)

    @property
    def src_lengths(self) -> np.ndarray:
        return self.src.lengths.astype(np.int32) + 1  # + eos, as collated

    @property
    def tgt_lengths(self) -> np.ndarray:
        return self.tgt.lengths.astype(np.int32) + 1
