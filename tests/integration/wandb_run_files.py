"""Reads what an offline W&B run wrote: the records of its `run-*.wandb` file and its media files.

The file is a LevelDB-style log (W&B's own format since 0.10): a 7-byte header (":W&B", magic
0xBEE1, version 0), then 32 KiB blocks of chunks, each with a 7-byte header (crc32, length, type:
1 full, 2 first, 3 middle, 4 last) and a piece of a serialized `Record` protobuf.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
HEADER = struct.Struct("<4sHB")
CHUNK = struct.Struct("<IHB")


def read_records(path: Path) -> list[wandb_internal_pb2.Record]:
    data = path.read_bytes()
    ident, magic, version = HEADER.unpack_from(data)
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), f"{path}: not a W&B run file"
    records, pieces, offset = [], [], HEADER.size
    while offset + CHUNK.size <= len(data):
        if BLOCK - offset % BLOCK < CHUNK.size:  # block tail too short for a header: zero padding
            offset += BLOCK - offset % BLOCK
            continue
        _, length, kind = CHUNK.unpack_from(data, offset)
        if kind == 0 and length == 0:
            break
        offset += CHUNK.size
        pieces.append(data[offset : offset + length])
        offset += length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(pieces))
            records.append(record)
            pieces = []
    return records


def _key(item: Any) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


@dataclass
class OfflineRun:
    """History rows, config and summary of one offline run, plus its folder."""

    folder: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: list[Any] = field(default_factory=list)

    @classmethod
    def load(cls, wandb_dir: Path) -> OfflineRun:
        (folder,) = Path(wandb_dir).glob("offline-run-*")
        (run_file,) = folder.glob("run-*.wandb")
        run = cls(folder)
        for record in read_records(run_file):
            kind = record.WhichOneof("record_type")
            if kind == "history":
                run.history.append({_key(i): json.loads(i.value_json) for i in record.history.item})
            elif kind == "config":
                run.config.update({_key(i): json.loads(i.value_json) for i in record.config.update})
            elif kind == "summary":
                run.summary.update({_key(i): json.loads(i.value_json) for i in record.summary.update})
            elif kind == "artifact":
                run.artifacts.append(record.artifact)
        return run

    def values(self, key: str) -> list[Any]:
        return [row[key] for row in self.history if key in row]
