import gzip
from pathlib import Path

import pytest

from seq2seq.data.corpus import CorpusError, read_parallel


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
