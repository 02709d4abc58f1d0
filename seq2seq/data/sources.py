"""Which corpus files a preparation reads and how, and whether a prepared folder still matches them.

A prepared folder is named by its files and settings (`CorpusFiles.key`); its manifest records each
source's size, modification time and SHA-256, so a folder whose sources changed is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from seq2seq.data.corpus import find_split_file
from seq2seq.data.prepared_format import SPLITS


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
