"""Padding waste of batching methods under the same budget: pad fraction, batch count and batch fill.

Methods, each cut greedily under the same rule as training (a batch of n pairs costs n times its
longest side, at most --budget; or at most --sentences pairs):

* random        shuffled pairs (what data.bucketing=false does);
* pool sort     torchtext's BucketIterator: shuffle, sort pools of about 100 batches by source length;
* global sort   sort all pairs by (source, target) length;
* ours          BucketBatchSampler: longer side, then the path through the length pairs (`path_position`),
                with a seeded tie-break.

Lengths are whitespace tokens + 1 (eos), like the reference figures in the README. Run:

    python benchmarks/pad_fraction.py                       # bundled corpus and FLORES-200 devtest
    python benchmarks/pad_fraction.py --corpus DIR:de:en    # your own train split
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from seq2seq.config import PROJECT_ROOT
from seq2seq.data.corpus import read_lines, read_parallel
from seq2seq.data.sampler import BucketBatchSampler
from seq2seq.files import atomic_write_bytes

FLORES = (
    PROJECT_ROOT.parent / "shared" / "data" / "flores200-devtest-deu-eng"
)  # CC BY-SA 4.0, FLORES-200 (NLLB Team, 2022)
CORPORA = {
    "bundled": (PROJECT_ROOT / "data" / "bundled", "train", "src", "tgt"),
    "flores": (FLORES, "devtest", "de", "en"),
}


def load_lengths(spec: str, limit: int | None) -> tuple[list[int], list[int]]:
    folder, split, src, tgt = (
        CORPORA[spec] if spec in CORPORA else (Path(spec.split(":")[0]), "train", *spec.split(":")[1:])
    )
    if split == "devtest":
        pairs = list(
            zip(read_lines(folder / f"devtest.{src}"), read_lines(folder / f"devtest.{tgt}"), strict=True)
        )
    else:
        text = read_parallel(folder, split, src, tgt)
        pairs = list(zip(text.src, text.tgt, strict=True))
    pairs = pairs[:limit] if limit else pairs
    return [len(s.split()) + 1 for s, _ in pairs], [len(t.split()) + 1 for _, t in pairs]


def cut(
    order: list[int], src: list[int], tgt: list[int], budget: int, sentences: int | None
) -> list[list[int]]:
    """The same greedy cut as BucketBatchSampler, over any order."""
    sampler = BucketBatchSampler(src, tgt, max_tokens=budget, max_sentences=sentences)
    return sampler.cut(order)


def methods(
    src: list[int], tgt: list[int], budget: int, sentences: int | None, seed: int
) -> dict[str, list[list[int]]]:
    rng = random.Random(seed)
    shuffled = list(range(len(src)))
    rng.shuffle(shuffled)
    per_batch = sentences or max(1, budget // (sum(map(max, src, tgt)) // len(src) + 1))
    pool = 100 * per_batch
    pooled = [
        i
        for start in range(0, len(shuffled), pool)
        for i in sorted(shuffled[start : start + pool], key=lambda i: src[i])
    ]
    return {
        "random": cut(shuffled, src, tgt, budget, sentences),
        "pool sort": cut(pooled, src, tgt, budget, sentences),
        "global sort": cut(sorted(shuffled, key=lambda i: (src[i], tgt[i])), src, tgt, budget, sentences),
        "ours": BucketBatchSampler(src, tgt, max_tokens=budget, max_sentences=sentences, seed=seed).batches(),
    }


def measure(batches: list[list[int]], src: list[int], tgt: list[int], budget: int) -> dict[str, float]:
    padded = sum(len(b) * (max(src[i] for i in b) + max(tgt[i] for i in b)) for b in batches)
    real = sum(src[i] + tgt[i] for b in batches for i in b)
    return {
        "pad_fraction": 1 - real / padded,
        "batches": len(batches),
        "batch_fill": real / (2 * budget * len(batches)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--corpus", nargs="+", default=["bundled", "flores"], help="bundled, flores, or DIR:SRC:TGT"
    )
    parser.add_argument("--budget", nargs="+", type=int, default=[2048, 4096], help="padded tokens per batch")
    parser.add_argument(
        "--sentences", nargs="+", type=int, default=[128, 16], help="pairs per batch (no token budget)"
    )
    parser.add_argument("--limit", type=int, help="use only the first N pairs (smoke tests)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=PROJECT_ROOT / "benchmarks" / "results" / "pad_fraction.json"
    )
    args = parser.parse_args()
    settings = [(budget, None) for budget in args.budget] + [(10**9, n) for n in args.sentences]
    rows = []
    print(f"{'corpus':<10} {'batching':<16} {'method':<12} {'pad %':>7} {'batches':>8} {'fill %':>7}")
    for corpus in args.corpus:
        src, tgt = load_lengths(corpus, args.limit)
        for budget, sentences in settings:
            label = f"{sentences} sentences" if sentences else f"{budget} tokens"
            for method, batches in methods(src, tgt, budget, sentences, args.seed).items():
                figures = measure(batches, src, tgt, budget)
                rows.append(
                    {"corpus": corpus, "pairs": len(src), "batching": label, "method": method, **figures}
                )
                fill = f"{100 * figures['batch_fill']:.1f}" if not sentences else "-"
                print(
                    f"{corpus:<10} {label:<16} {method:<12} {100 * figures['pad_fraction']:>7.2f} {figures['batches']:>8} {fill:>7}"
                )
    atomic_write_bytes(args.out, (json.dumps(rows, indent=2) + "\n").encode())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
