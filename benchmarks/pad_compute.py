"""What the pads left by bucketing cost: `train/pad_compute_fraction` over one whole training epoch.

For each corpus and token budget, the configured model (default: the default run's) estimates the
matrix-multiply FLOPs of every training batch of one epoch, and how many of them fall at pad
positions (`Seq2Seq.flops`, the estimate `PaddingMonitor` logs as `train/pad_compute_fraction`).
Nothing is trained, so it runs in about a minute per corpus; the strategy-cost benchmark reports the
same share over its timed batches only. `--split test` cuts a corpus's test split as training batches
instead: how a set nothing is trained on (FLORES devtest, beside Tatoeba's vocabulary) would batch.

    python benchmarks/pad_compute.py --corpora bundled ../shared/data/tatoeba-deu-eng:de:en --max-tokens 2048 4096 8192
"""

from __future__ import annotations

import argparse
from pathlib import Path

from common import RESULTS, build, corpus_overrides, write_json

from seq2seq.models.flops import Flops


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpora", nargs="+", default=["bundled"], help="bundled, or DIR:SRC_LANG:TGT_LANG")
    parser.add_argument("--max-tokens", nargs="+", type=int, default=[2048, 4096])
    parser.add_argument("--overrides", nargs="*", default=[], help="more Hydra overrides (e.g. the model)")
    parser.add_argument("--limit", type=int, help="only the first N batches of the epoch (smoke tests)")
    parser.add_argument("--split", choices=["train", "test"], default="train", help="whose pairs are batched")
    parser.add_argument("--out", type=Path, default=RESULTS / "pad_compute.json")
    args = parser.parse_args()
    rows = []
    print(f"{'corpus':<18} {'tokens':>6} {'batches':>8} {'pads':>6} {'pad FLOPs':>10}")
    for corpus in args.corpora:
        name, data = corpus_overrides(corpus)
        for max_tokens in args.max_tokens:
            overrides = [*data, f"data.max_tokens={max_tokens}", *args.overrides]
            _, datamodule, module = build(overrides)
            flops, tokens, pads, batches = Flops(), 0, 0, 0
            for batch in datamodule.loader(args.split, max_tokens, train=True):
                flops = flops + module.net.flops(batch)
                tokens += batch.src.numel() + batch.tgt_out.numel()
                pads += int((batch.src == 0).sum() + (batch.tgt_out == 0).sum())
                batches += 1
                if args.limit and batches >= args.limit:
                    break
            row = {
                "corpus": name,
                "split": args.split,
                "max_tokens": max_tokens,
                "batches": batches,
                "pad_fraction": pads / tokens,
                "pad_compute_fraction": flops.pad_fraction,
                "overrides": overrides,
            }
            rows.append(row)
            print(
                f"{name:<18} {max_tokens:>6} {batches:>8} {row['pad_fraction']:>6.2%} {flops.pad_fraction:>10.2%}",
                flush=True,
            )
    write_json(args.out, rows)


if __name__ == "__main__":
    main()
