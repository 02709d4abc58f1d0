"""seq2seq-translate: translate raw text with a checkpoint, or score references by forced decoding."""

from __future__ import annotations

import argparse
from pathlib import Path

from seq2seq.cli.common import (
    add_model_arguments,
    load_translator,
    read_input,
    run_command,
    search_options,
    write_output,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="seq2seq-translate",
        description="Translate raw text (one sentence per line) with a trained checkpoint. Output lines follow "
        "input order; an empty input line gives an empty output line. With --n-best N > 1 each input gives N lines "
        "'INDEX<TAB>TRANSLATION<TAB>SCORE' (0-based input index, best first). With --score --reference FILE, each "
        "line gives 'LOGPROB<TAB>LOGPROB_PER_TOKEN' of the reference (eos included) under the model.",
    )
    add_model_arguments(parser)
    parser.add_argument("--input", type=Path, help="source text, plain or .gz (default: standard input)")
    parser.add_argument("--output", type=Path, help="where to write (default: standard output)")
    parser.add_argument("--n-best", type=int, default=1, help="hypotheses per input line (default 1)")
    parser.add_argument("--score", action="store_true", help="score --reference instead of translating")
    parser.add_argument("--reference", type=Path, help="target text to score with --score")
    args = parser.parse_args(argv)
    if args.score and args.reference is None:
        parser.error("--score needs --reference FILE")
    return args


def translate(args: argparse.Namespace) -> None:
    translator = load_translator(args)
    sources = read_input(args.input)
    if args.score:
        scored = translator.score(sources, read_input(args.reference))
        lines = [f"{logprob:.6f}\t{logprob / max(count, 1):.6f}" for logprob, count in scored]
    else:
        found = translator.translate(sources, args.beam_size, args.n_best, **search_options(args))
        if args.n_best == 1:
            lines = [hypotheses[0][0] for hypotheses in found]
        else:
            lines = [
                f"{i}\t{text}\t{h.normalized:.6f}"
                for i, hypotheses in enumerate(found)
                for text, h in hypotheses
            ]
    write_output(args.output, "".join(line + "\n" for line in lines))


def main(argv: list[str] | None = None) -> None:
    run_command(lambda: translate(parse_args(argv)))


if __name__ == "__main__":
    main()
