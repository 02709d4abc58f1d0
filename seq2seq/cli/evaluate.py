"""seq2seq-evaluate: translate a test set with a checkpoint and score it with sacreBLEU."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import sacrebleu

from seq2seq.cli.common import (
    add_model_arguments,
    load_translator,
    read_input,
    run_command,
    search_options,
    write_output,
)
from seq2seq.errors import InputError
from seq2seq.training.metrics import exact_match


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="seq2seq-evaluate",
        description="Translate --src with a checkpoint and compare with --ref: sacreBLEU BLEU (with its signature), "
        "chrF, length ratio and exact match. Prints the JSON and writes it to --json.",
    )
    add_model_arguments(parser, several_alphas=True)
    parser.add_argument("--src", required=True, type=Path, help="source sentences, plain or .gz")
    parser.add_argument("--ref", required=True, type=Path, help="reference translations, plain or .gz")
    parser.add_argument(
        "--json",
        type=Path,
        default=Path("evaluation.json"),
        help="where to write the scores (default evaluation.json)",
    )
    parser.add_argument(
        "--hypotheses", type=Path, help="also write the translations to this file (of the first --alpha)"
    )
    args = parser.parse_args(argv)
    args.alphas, args.alpha = args.alpha, args.alpha[0]
    return args


def score(hypotheses: list[str], references: list[str]) -> dict:
    """sacreBLEU's BLEU and chrF with signatures, plus length ratio and exact match."""
    bleu, chrf = sacrebleu.BLEU(), sacrebleu.CHRF()
    bleu_score = bleu.corpus_score(hypotheses, [references])
    return {
        "bleu": bleu_score.score,
        "bleu_signature": str(bleu.get_signature()),
        "chrf": chrf.corpus_score(hypotheses, [references]).score,
        "chrf_signature": str(chrf.get_signature()),
        "length_ratio": bleu_score.sys_len / max(bleu_score.ref_len, 1),
        "exact_match": exact_match(hypotheses, references),
        "sentences": len(references),
    }


def evaluate(args: argparse.Namespace) -> None:
    sources, references = read_input(args.src), read_input(args.ref)
    if len(sources) != len(references):
        raise InputError(
            f"{args.src} has {len(sources)} lines but {args.ref} has {len(references)}; they must align line by line"
        )
    translator = load_translator(args)
    rows, translations = [], []
    for alpha in args.alphas:
        options = {**search_options(args), "alpha": alpha}
        translations.append(
            [found[0][0] for found in translator.translate(sources, args.beam_size, 1, **options)]
        )
        rows.append({"alpha": alpha, **score(translations[-1], references)})
    result = {"checkpoint": str(args.checkpoint), "beam_size": args.beam_size}
    result.update(rows[0] if len(rows) == 1 else {"by_alpha": rows})
    text = json.dumps(result, indent=2) + "\n"
    if args.hypotheses:
        write_output(args.hypotheses, "".join(h + "\n" for h in translations[0]))
    write_output(args.json, text)
    if len(rows) > 1:
        print(f"{'alpha':>6} {'BLEU':>7} {'chrF':>7} {'length ratio':>13} {'exact %':>8}")
        for row in rows:
            print(
                f"{row['alpha']:>6g} {row['bleu']:>7.2f} {row['chrf']:>7.2f} {row['length_ratio']:>13.3f} {row['exact_match']:>8.1f}"
            )
    print(text, end="")


def main(argv: list[str] | None = None) -> None:
    run_command(lambda: evaluate(parse_args(argv)))


if __name__ == "__main__":
    main()
