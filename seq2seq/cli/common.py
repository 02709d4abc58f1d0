"""What the commands share: checkpoint and device options, reading inputs, atomic output, clean errors."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from seq2seq.data.corpus import CorpusError, read_lines
from seq2seq.errors import exit_with, user_error
from seq2seq.files import atomic_write_bytes
from seq2seq.inference.translator import Translator
from seq2seq.models.search import DEFAULT_ALPHA, DEFAULT_BEAM_SIZE, DEFAULT_MAX_LEN_A, DEFAULT_MAX_LEN_B
from seq2seq.training.checkpoint import load_checkpoint


def add_model_arguments(parser: argparse.ArgumentParser, several_alphas: bool = False) -> None:
    """Checkpoint, search and device options; `several_alphas` takes --alpha as a list (one evaluation each)."""
    parser.add_argument(
        "--checkpoint", required=True, type=Path, help="a .ckpt written by train.py (self-contained)"
    )
    parser.add_argument(
        "--beam-size",
        type=int,
        default=DEFAULT_BEAM_SIZE,
        help=f"beams per sentence; 1 is greedy search (default {DEFAULT_BEAM_SIZE})",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per batch (default 64)")
    parser.add_argument(
        "--alpha",
        type=alpha_list if several_alphas else float,
        default=[DEFAULT_ALPHA] if several_alphas else DEFAULT_ALPHA,
        help=f"GNMT length penalty exponent: finished beams rank by score / ((5 + length) / 6) ** alpha (default "
        f"{DEFAULT_ALPHA}; 0: none)"
        + ("; a comma-separated list, e.g. 0,0.6,1.0, evaluates each" if several_alphas else ""),
    )
    parser.add_argument(
        "--max-len-a",
        type=float,
        default=DEFAULT_MAX_LEN_A,
        help=f"at most a * source length + b tokens (default a={DEFAULT_MAX_LEN_A})",
    )
    parser.add_argument(
        "--max-len-b", type=int, default=DEFAULT_MAX_LEN_B, help=f"(default b={DEFAULT_MAX_LEN_B})"
    )
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda"
    )


def alpha_list(value: str) -> list[float]:
    """`--alpha 0,0.6,1.0`: one evaluation per value, to tune the length penalty on a validation set."""
    try:
        alphas = [float(part) for part in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r}: give one number or a comma-separated list, e.g. 0,0.6,1.0"
        ) from None
    if any(alpha < 0 for alpha in alphas):
        raise argparse.ArgumentTypeError(f"{value!r}: length penalty exponents are >= 0")
    return alphas


def load_translator(args: argparse.Namespace) -> Translator:
    loaded = load_checkpoint(args.checkpoint, args.device)
    return Translator(loaded.net, loaded.vocabs, args.device, args.batch_size)


def search_options(args: argparse.Namespace) -> dict:
    return {"alpha": args.alpha, "max_len_a": args.max_len_a, "max_len_b": args.max_len_b}


def read_input(path: Path | None) -> list[str]:
    """Lines of `path` (plain or .gz), or of standard input when None."""
    if path is None:
        return [line.rstrip("\r\n").strip() for line in sys.stdin]
    if not path.is_file():
        raise CorpusError(
            f"Input file not found: {path}. Check the path, or leave the option out to read standard input."
        )
    return read_lines(path)


def write_output(path: Path | None, text: str) -> None:
    """Writes `text` to `path` atomically (never half a file), or to standard output when None."""
    if path is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        atomic_write_bytes(path, text.encode("utf-8"))


def run_command(main: Callable[[], None]) -> None:
    """Runs a command; a user's error prints one paragraph on stderr and exits with its code, not a traceback."""
    try:
        main()
    except Exception as raised:
        error = user_error(raised)
        if error is None:
            raise
        exit_with(error)
