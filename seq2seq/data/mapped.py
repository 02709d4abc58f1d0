"""A split of a prepared corpus, memory-mapped: ranks on one node share its pages through the OS page cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from seq2seq.data.corpus import ParallelText, read_lines
from seq2seq.data.prepared_format import SIDES, MappedSide, corrupt, text_path


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
            src_path, tgt_path = (text_path(folder, split, side) for side in SIDES)
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
