r"""What each padding strategy costs: encoder time and training throughput on the same bucketed batches.

For every setting (corpus x encoder x layers x token budget) each strategy gets its own freshly
seeded model, and the same length-bucketed training batches run through the encoder alone (forward,
and forward and backward) and through full training steps. The strategies take turns batch by batch
(`measure`), so that the noise of a shared machine hits all of them alike, and each batch keeps its
fastest time over the rounds. The `vs naive` columns are the ratio to `naive` in the same setting,
the no-work floor: an exact strategy at 1.00 costs nothing for its exactness. `pad compute` is the
share of the step's matrix-multiply FLOPs spent at pad positions (`Seq2Seq.flops`, logged as
`train/pad_compute_fraction`).

    python benchmarks/strategy_cost.py                    # bundled corpus; writes results/strategy_cost.json
    python benchmarks/strategy_cost.py --corpora bundled ../shared/data/tatoeba-deu-eng:de:en \
        --encoders lstm gru --layers 1 2 --max-tokens 2048 8192
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import time

import torch
from common import (
    STRATEGY_NAMES,
    TrainingStep,
    build,
    corpus_overrides,
    parse_training_args,
    throughput,
    training_parser,
    write_json,
)

from seq2seq.data.batch import Batch
from seq2seq.training.module import Seq2SeqModule


def timed_batches(at_2048: int, max_tokens: int) -> int:
    """About the same padded tokens per measurement at every budget (at least 12 batches, or `at_2048` if fewer)."""
    return min(at_2048, max(12, round(at_2048 * 2048 / max_tokens)))


def encoder_seconds(module: Seq2SeqModule, batch: Batch, backward: bool) -> float:
    """Seconds of the encoder alone on `batch` (forward, or forward and backward)."""
    start = time.perf_counter()
    with torch.set_grad_enabled(backward):
        out = module.net.encode(batch.src, batch.src_lengths, batch.src_mask)
        if backward:
            (out.memory.sum() + out.final.sum()).backward()
    return time.perf_counter() - start


def measure(
    setting: list[str], strategies: list[str], warmup: int, count: int, rounds: int
) -> dict[str, dict]:
    """Every strategy in one setting, interleaved batch by batch: encoder times, throughput, pad shares.

    Each strategy gets its own freshly seeded model and optimizer; each batch is run by every
    strategy in turn (the order rotating from batch to batch), so that a slow spell of a shared
    machine hits all of them alike. Each batch keeps its fastest time over the rounds.
    """
    # One data config: the same batches for every strategy.
    _, datamodule, _ = build([*setting, f"strategy={strategies[0]}"])
    batches = list(itertools.islice(itertools.cycle(datamodule.train_dataloader()), warmup + count))
    built = {name: build([*setting, f"strategy={name}"], datamodule) for name in strategies}
    modules = {name: module for name, (_, _, module) in built.items()}
    steps = {
        name: TrainingStep(module, cfg.trainer.gradient_clip_val) for name, (cfg, _, module) in built.items()
    }
    best = {name: {key: [math.inf] * count for key in TIMES} for name in strategies}
    for round_ in range(rounds):
        for i, batch in enumerate(batches):
            turn = (i + round_) % len(strategies)
            for name in strategies[turn:] + strategies[:turn]:
                times = {
                    "forward": encoder_seconds(modules[name], batch, backward=False),
                    "forward_backward": encoder_seconds(modules[name], batch, backward=True),
                    "step": steps[name](batch),
                }
                if i >= warmup:
                    for key, seconds in times.items():
                        best[name][key][i - warmup] = min(best[name][key][i - warmup], seconds)
    timed = batches[warmup:]
    rows = {}
    for name, module in modules.items():
        flops = [module.net.flops(batch) for batch in timed]
        rows[name] = {
            "encoder_forward_ms": 1000 * statistics.fmean(best[name]["forward"]),
            "encoder_forward_backward_ms": 1000 * statistics.fmean(best[name]["forward_backward"]),
            **throughput(timed, best[name]["step"]),
            "pad_compute_fraction": sum(f.pad for f in flops) / sum(f.total for f in flops),
        }
    return rows


TIMES = ("forward", "forward_backward", "step")


HEADER = (
    f"{'corpus':<18} {'encoder':<5} {'L':>1} {'tokens':>6} {'strategy':<16} {'enc fwd ms':>10} {'fwd+bwd ms':>10}"
    f" {'train tok/s':>11} {'fwd+bwd vs naive':>16} {'tok/s vs naive':>14} {'pads':>6} {'pad compute':>11}"
)


def print_row(row: dict) -> None:
    print(
        f"{row['corpus']:<18} {row['encoder']:<5} {row['layers']:>1} {row['max_tokens']:>6} {row['strategy']:<16}"
        f" {row['encoder_forward_ms']:>10.1f} {row['encoder_forward_backward_ms']:>10.1f}"
        f" {row['tokens_per_sec']:>11,.0f} {row['forward_backward_vs_naive']:>16.2f}"
        f" {row['tokens_per_sec_vs_naive']:>14.2f} {row['pad_fraction']:>6.2%} {row['pad_compute_fraction']:>11.2%}",
        flush=True,
    )


def parse_args() -> argparse.Namespace:
    parser = training_parser(__doc__, "strategy_cost.json", warmup=3)
    parser.add_argument("--corpora", nargs="+", default=["bundled"], help="bundled, or DIR:SRC_LANG:TGT_LANG")
    parser.add_argument("--encoders", nargs="+", default=["lstm", "gru"])
    parser.add_argument("--layers", nargs="+", type=int, default=[1])
    parser.add_argument("--max-tokens", nargs="+", type=int, default=[2048])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGY_NAMES))
    parser.add_argument(
        "--batches",
        type=int,
        default=30,
        help="timed batches per measurement at 2048 tokens (fewer, larger ones above)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds over the strategies")
    return parse_training_args(parser)


def against_naive(row: dict, measured: dict[str, dict]) -> dict[str, float]:
    """`row`'s encoder times and tokens/s as multiples of naive's in the same setting (the first row's without naive)."""
    naive = measured.get("naive") or next(iter(measured.values()))
    return {
        "forward_vs_naive": row["encoder_forward_ms"] / naive["encoder_forward_ms"],
        "forward_backward_vs_naive": row["encoder_forward_backward_ms"]
        / naive["encoder_forward_backward_ms"],
        "tokens_per_sec_vs_naive": row["tokens_per_sec"] / naive["tokens_per_sec"],
    }


def main() -> None:
    args = parse_args()
    rows = []
    print(HEADER)
    for corpus, encoder, layers, max_tokens in itertools.product(
        args.corpora, args.encoders, args.layers, args.max_tokens
    ):
        name, data = corpus_overrides(corpus)
        setting = [
            *data,
            f"encoder={encoder}",
            f"encoder.rnn.num_layers={layers}",
            f"data.max_tokens={max_tokens}",
        ]
        setting += ["encoder.rnn.dropout=0.2"] if layers > 1 else []
        measured = measure(
            [*setting, *args.overrides],
            args.strategies,
            args.warmup,
            timed_batches(args.batches, max_tokens),
            args.rounds,
        )
        for strategy, row in measured.items():
            setting = {"corpus": name, "encoder": encoder, "layers": layers, "max_tokens": max_tokens}
            rows.append(
                row | setting | {"strategy": strategy, "threads": args.threads} | against_naive(row, measured)
            )
            print_row(rows[-1])
        write_json(args.out, rows)  # after every setting: an interrupted run keeps what it measured


if __name__ == "__main__":
    main()
