"""Reading parallel text: `DIR/{split}.{lang}`, plain or gzipped, one sentence per line."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

from seq2seq.errors import InputError


class CorpusError(InputError):
    """A corpus file is missing or malformed; the message names the file and the fix."""


@dataclass(frozen=True)
class ParallelText:
    """Aligned source and target sentences of one split.

    Attributes:
        src: source sentences, without trailing newlines.
        tgt: target sentences, same length as `src`.
        src_path: file the source side was read from (for error messages).
        tgt_path: file the target side was read from.
    """

    src: list[str]
    tgt: list[str]
    src_path: Path
    tgt_path: Path

    def __len__(self) -> int:
        return len(self.src)


def find_split_file(folder: Path, split: str, lang: str) -> Path:
    """Returns `folder/split.lang`, or its `.gz` twin when only that exists."""
    plain = folder / f"{split}.{lang}"
    for candidate in (plain, plain.with_name(plain.name + ".gz")):
        if candidate.is_file():
            return candidate
    raise CorpusError(
        f"Missing corpus file: neither {plain} nor {plain}.gz exists. The parallel data config expects "
        f"DIR/{{train,valid,test}}.{{src_lang,tgt_lang}}; check data.path={folder}, data.src_lang and "
        f"data.tgt_lang, or create the file."
    )


def read_lines(path: Path) -> list[str]:
    """Reads UTF-8 lines of a plain or `.gz` file, stripping the newline and surrounding spaces."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw_lines = handle.read().splitlines()
    lines = []
    for number, raw in enumerate(raw_lines, start=1):
        try:
            lines.append(raw.decode("utf-8").strip())
        except UnicodeDecodeError as error:
            raise CorpusError(
                f"{path}, line {number}: invalid UTF-8 ({error.reason} at byte {error.start}). "
                f"Re-encode the file as UTF-8 (for example with iconv) or remove the line."
            ) from None
    return lines


def read_parallel(folder: str | Path, split: str, src_lang: str, tgt_lang: str) -> ParallelText:
    """Reads one split of a parallel corpus and checks that both sides align line by line."""
    folder = Path(folder)
    src_path = find_split_file(folder, split, src_lang)
    tgt_path = find_split_file(folder, split, tgt_lang)
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise CorpusError(
            f"Line counts differ: {src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}. "
            f"Parallel files must be aligned line by line; fix or re-export the corpus."
        )
    if not src:
        raise CorpusError(f"Empty corpus: {src_path} and {tgt_path} have no lines. Point data.path at a real corpus.")
    return ParallelText(src, tgt, src_path, tgt_path)
