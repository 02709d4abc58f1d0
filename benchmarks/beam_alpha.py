"""Does beam search beat greedy search, and which length penalty should be the default?

Translates a split (the bundled test split unless `--corpus`, `--split` and `--langs` name another)
with each checkpoint: greedy, then beam search at every `--alpha` (one search per value), and prints
BLEU and the length ratio (hypothesis / reference length) per row. The README's "Beam search and the
length penalty" table comes from this; on a real corpus, choose the length penalty on its valid split
and report the test split at that value. Run from the repository root::

    python benchmarks/beam_alpha.py --checkpoint lstm-400=RUN1/checkpoints/best.ckpt attention=RUN2/checkpoints/best.ckpt
    python benchmarks/beam_alpha.py --corpus ../shared/data/tatoeba-deu-eng --split valid --langs de en \
        --checkpoint tatoeba_lstm=RUN/checkpoints/last.ckpt --out benchmarks/results/beam_alpha_tatoeba.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import RESULTS, git_commit, write_json

from seq2seq.cli.common import alpha_list
from seq2seq.cli.evaluate import score
from seq2seq.config import PROJECT_ROOT
from seq2seq.data.corpus import read_parallel
from seq2seq.inference.translator import Translator
from seq2seq.training.checkpoint import load_checkpoint


def named_checkpoint(value: str) -> tuple[str, Path]:
    name, _, path = value.partition("=")
    if not path:
        raise argparse.ArgumentTypeError(f"{value!r}: give NAME=PATH")
    return name, Path(path)


def evaluate(
    path: Path, alphas: list[float], beam_size: int, sources: list[str], references: list[str]
) -> list[dict]:
    loaded = load_checkpoint(path, "cpu")
    translator = Translator(loaded.net, loaded.vocabs, "cpu", batch_size=64)
    settings = [("greedy", 1, 0.0)] + [(f"beam {beam_size}", beam_size, alpha) for alpha in alphas]
    rows = []
    for search, beams, alpha in settings:
        hypotheses = [found[0][0] for found in translator.translate(sources, beams, 1, alpha=alpha)]
        figures = score(hypotheses, references)
        rows.append(
            {
                "search": search,
                "alpha": alpha,
                "bleu": figures["bleu"],
                "length_ratio": figures["length_ratio"],
            }
        )
        print(
            f"  {search:<8} alpha {alpha:<4g} BLEU {figures['bleu']:6.2f}  length ratio {figures['length_ratio']:.3f}"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint", type=named_checkpoint, nargs="+", required=True, help="NAME=PATH, one or more"
    )
    parser.add_argument("--alpha", type=alpha_list, default=[0.0, 0.6, 1.0, 1.5, 2.0])
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument(
        "--corpus",
        type=Path,
        default=PROJECT_ROOT / "data" / "bundled",
        help="the corpus folder (default: bundled)",
    )
    parser.add_argument("--split", default="test", help="which split to translate (default test)")
    parser.add_argument(
        "--langs",
        nargs=2,
        default=["src", "tgt"],
        metavar=("SRC", "TGT"),
        help="file suffixes (default src tgt)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "beam_alpha.json")
    args = parser.parse_args()
    text = read_parallel(args.corpus, args.split, *args.langs)
    commit = git_commit()
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for name, path in args.checkpoint:
        print(name, args.split)
        key = name if args.split == "test" else f"{name} ({args.split})"
        results[key] = {
            "checkpoint": str(path),
            "corpus": str(args.corpus),
            "split": args.split,
            "commit": commit,
            "rows": evaluate(path, args.alpha, args.beam_size, text.src, text.tgt),
        }
    write_json(args.out, results)


if __name__ == "__main__":
    main()
