"""What the console commands share: the --alpha list, reading input, writing output whole, and errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from seq2seq.cli.common import alpha_list, read_input, run_command, write_output
from seq2seq.data.corpus import CorpusError
from seq2seq.errors import InputError


def test_alpha_takes_one_value_or_a_list_and_refuses_negatives_and_words() -> None:
    assert alpha_list("1") == [1.0] and alpha_list("0,0.6,1.0") == [0.0, 0.6, 1.0]
    with pytest.raises(argparse.ArgumentTypeError, match="comma-separated list"):
        alpha_list("0.6,high")
    with pytest.raises(argparse.ArgumentTypeError, match=">= 0"):
        alpha_list("0,-1")


def test_a_missing_input_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=f"Input file not found: {tmp_path / 'src.txt'}"):
        read_input(tmp_path / "src.txt")


def test_output_is_written_whole_to_a_file_or_to_standard_output(tmp_path: Path, capsys) -> None:
    write_output(tmp_path / "out" / "hyp.txt", "a\nb\n")
    assert (tmp_path / "out" / "hyp.txt").read_text() == "a\nb\n"
    write_output(None, "c\n")
    assert capsys.readouterr().out == "c\n"


def test_a_users_error_ends_in_its_paragraph_and_code_and_a_bug_stays_a_traceback(capsys) -> None:
    def bad_input() -> None:
        raise InputError("data.path=/nowhere: no such folder")

    with pytest.raises(SystemExit) as exited:
        run_command(bad_input)
    assert exited.value.code == InputError.exit_code
    assert capsys.readouterr().err == "error: data.path=/nowhere: no such folder\n"

    def bug() -> None:
        raise KeyError("a programming error")

    with pytest.raises(KeyError):
        run_command(bug)
