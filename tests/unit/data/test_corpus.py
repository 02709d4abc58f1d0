"""Reading parallel text: plain and gzip sides, and a clear error for each kind of bad file."""

import gzip
import random
from pathlib import Path

import pytest

from seq2seq.data import corpus as corpus_module
from seq2seq.data.corpus import (
    CorpusError,
    count_lines,
    iter_raw_lines,
    iter_raw_pairs,
    read_lines,
    read_parallel,
)


def write(path: Path, lines: list[str], gz: bool = False) -> None:
    data = "".join(line + "\n" for line in lines).encode()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def test_reads_plain_and_gzip_sides(tmp_path: Path) -> None:
    write(tmp_path / "train.de", ["hallo welt", " zwei "])
    write(tmp_path / "train.en", ["hello world", "two"], gz=True)
    text = read_parallel(tmp_path, "train", "de", "en")
    assert text.src == ["hallo welt", "zwei"]
    assert text.tgt == ["hello world", "two"]
    assert text.tgt_path.name == "train.en.gz"


def test_missing_file_names_the_path_and_the_keys(tmp_path: Path) -> None:
    write(tmp_path / "train.de", ["a"])
    with pytest.raises(CorpusError, match=r"train\.en.*data\.path"):
        read_parallel(tmp_path, "train", "de", "en")


def test_line_count_mismatch_names_both_files(tmp_path: Path) -> None:
    write(tmp_path / "valid.de", ["a", "b"])
    write(tmp_path / "valid.en", ["a"])
    with pytest.raises(CorpusError, match=r"valid\.de has 2 lines but .*valid\.en has 1"):
        read_parallel(tmp_path, "valid", "de", "en")


def test_invalid_utf8_reports_the_line(tmp_path: Path) -> None:
    (tmp_path / "test.de").write_bytes(b"ok\nbad \xff byte\n")
    write(tmp_path / "test.en", ["ok", "bad"])
    with pytest.raises(CorpusError, match=r"test\.de, line 2: invalid UTF-8"):
        read_parallel(tmp_path, "test", "de", "en")


@pytest.mark.parametrize("gz", [False, True])
def test_lines_are_what_wc_counts_and_a_byte_order_mark_is_dropped(tmp_path: Path, gz: bool) -> None:
    r"""Only \n ends a line (\r\n too): a stray \r inside a web-crawled line does not split it."""
    data = b"\xef\xbb\xbfeins\r\nzwei\rdrei\nvier"
    path = tmp_path / ("train.de.gz" if gz else "train.de")
    path.write_bytes(gzip.compress(data) if gz else data)
    assert read_lines(path) == ["eins", "zwei\rdrei", "vier"]
    assert list(iter_raw_pairs(path, path)) == [
        (b"eins", b"eins"),
        (b"zwei\rdrei", b"zwei\rdrei"),
        (b"vier", b"vier"),
    ]


def test_streamed_pairs_of_unequal_files_end_in_the_line_count_error(tmp_path: Path) -> None:
    write(tmp_path / "train.de", ["a", "b", "c"])
    write(tmp_path / "train.en", ["a"])
    with pytest.raises(CorpusError, match=r"train\.de has 3 lines but .*train\.en has 1"):
        list(iter_raw_pairs(tmp_path / "train.de", tmp_path / "train.en"))


@pytest.mark.parametrize("gz", [False, True])
def test_counting_and_skipping_lines_in_blocks_agree_with_reading_them(
    tmp_path: Path, gz: bool, monkeypatch
) -> None:
    """Shards count lines in blocks (small ones put newlines at every edge) and skip to their first line."""
    monkeypatch.setattr(corpus_module, "BLOCK", 7)
    rng = random.Random(0)
    for trial in range(40):
        lines = [b"x" * rng.randint(0, 12) for _ in range(rng.randint(0, 30))]
        data = b"\n".join(lines) + (b"\n" if lines and trial % 2 else b"")
        path = tmp_path / ("corpus.gz" if gz else "corpus")
        path.write_bytes(gzip.compress(data) if gz else data)
        every = list(iter_raw_lines(path))
        assert count_lines(path) == len(every)
        for start in range(len(every) + 2):
            assert list(iter_raw_lines(path, start)) == every[start:]
