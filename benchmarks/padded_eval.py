"""BLEU of trained checkpoints when the test set is decoded in length-sorted against random batches.

Sorted batches hold almost no pads; random batches of the same size are mostly pads. A model whose
strategy is exact gets the same BLEU both ways; one that lets pads in does not.

    python benchmarks/padded_eval.py --checkpoint RUN1/checkpoints/best-*.ckpt RUN2/checkpoints/best-*.ckpt
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from common import RESULTS, write_json

from seq2seq.config import PROJECT_ROOT
from seq2seq.data.batch import collate
from seq2seq.data.corpus import read_parallel
from seq2seq.models.search import greedy_search
from seq2seq.training.checkpoint import LoadedModel, load_checkpoint
from seq2seq.training.metrics import corpus_bleu


def decode(
    loaded: LoadedModel, sources: list[str], order: list[int], batch_size: int
) -> tuple[list[str], float]:
    """Greedy translations in input order, decoding batches cut from `order`, and their pad fraction."""
    ids = loaded.vocabs.src.encode(sources)
    hypotheses: list[list[int]] = [[] for _ in sources]
    slots = real = 0
    for start in range(0, len(order), batch_size):
        batch = collate([(i, ids[i], []) for i in order[start : start + batch_size]])
        slots, real = slots + batch.src.numel(), real + int(batch.src_lengths.sum())
        for i, found in zip(
            batch.indices.tolist(),
            greedy_search(loaded.net, batch.src, batch.src_lengths, batch.src_mask),
            strict=True,
        ):
            hypotheses[i] = found.tokens
    return loaded.vocabs.tgt.decode(hypotheses), 1 - real / slots


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", nargs="+", type=Path, required=True)
    parser.add_argument(
        "--corpus",
        type=Path,
        default=PROJECT_ROOT / "data" / "bundled",
        help="folder with test.{src,tgt}[.gz]",
    )
    parser.add_argument("--langs", nargs=2, default=["src", "tgt"])
    parser.add_argument("--limit", type=int, help="only the first N test pairs")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "padded_eval.json")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    text = read_parallel(args.corpus, "test", *args.langs)
    sources, references = text.src[: args.limit], text.tgt[: args.limit]
    by_length = sorted(range(len(sources)), key=lambda i: len(sources[i].split()))
    shuffled = random.Random(args.seed).sample(range(len(sources)), len(sources))
    rows = []
    print(f"{'checkpoint':<60} {'BLEU sorted':>11} {'BLEU random':>11} {'source pad % (s / r)':>21}")
    for checkpoint in args.checkpoint:
        loaded = load_checkpoint(checkpoint)
        sorted_hyps, sorted_pad = decode(loaded, sources, by_length, args.batch_size)
        random_hyps, random_pad = decode(loaded, sources, shuffled, args.batch_size)
        row = {
            "checkpoint": str(checkpoint),
            "bleu_sorted": corpus_bleu(sorted_hyps, references),
            "bleu_random": corpus_bleu(random_hyps, references),
            "pad_sorted": sorted_pad,
            "pad_random": random_pad,
            "changed_lines": sum(a != b for a, b in zip(sorted_hyps, random_hyps, strict=True)),
        }
        rows.append(row)
        print(
            f"{str(checkpoint)[-60:]:<60} {row['bleu_sorted']:>11.2f} {row['bleu_random']:>11.2f} {100 * sorted_pad:>10.1f} / {100 * random_pad:.1f}"
        )
    write_json(args.out, rows)


if __name__ == "__main__":
    main()
