"""What each padding strategy costs: encoder time and training throughput on real bucketed batches.

For the LSTM and GRU encoders of the default model and every strategy, the same bundled-corpus
batches (length-bucketed, default budget) are run through the encoder alone, without and with the
backward pass, and through full training steps. Times are per batch; the `vs packing` columns are
the ratio to `packing` on the same encoder, the figure to compare on a shared machine.

    python benchmarks/strategy_cost.py                    # writes results/strategy_cost.json
    python benchmarks/strategy_cost.py --threads 1 --overrides encoder.hidden_size=512
"""

from __future__ import annotations

import itertools
import time

import torch
from common import build, parse_training_args, time_training, training_parser, write_json

from seq2seq.data.batch import Batch
from seq2seq.training.module import Seq2SeqModule

STRATEGIES = ["naive", "masking", "packing", "state_reset"]


def encoder_ms(module: Seq2SeqModule, batches: list[Batch], backward: bool) -> float:
    """Mean milliseconds per batch of the encoder alone (forward, or forward and backward)."""
    seconds = 0.0
    for batch in batches:
        start = time.perf_counter()
        with torch.set_grad_enabled(backward):
            out = module.net.encode(batch.src, batch.src_lengths, batch.src_mask)
            if backward:
                (out.memory.sum() + out.final.sum()).backward()
        seconds += time.perf_counter() - start
    return 1000 * seconds / len(batches)


def main() -> None:
    parser = training_parser(__doc__, "strategy_cost.json", warmup=3)
    parser.add_argument("--encoders", nargs="+", default=["lstm", "gru"])
    parser.add_argument("--batches", type=int, default=30, help="timed batches per measurement")
    args = parse_training_args(parser)
    rows = []
    print(
        f"{'encoder':<8} {'strategy':<12} {'enc fwd ms':>10} {'enc fwd+bwd ms':>15} {'train tok/s':>12}"
        f" {'fwd vs packing':>15} {'fwd+bwd vs packing':>19} {'tok/s vs packing':>17}"
    )
    for encoder in args.encoders:
        measured = {}
        for strategy in STRATEGIES:
            _, datamodule, module = build([f"encoder={encoder}", f"strategy={strategy}", *args.overrides])
            batches = list(
                itertools.islice(itertools.cycle(datamodule.train_dataloader()), args.warmup + args.batches)
            )
            module.train()
            encoder_ms(module, batches[: args.warmup], backward=True)
            measured[strategy] = {
                "encoder_forward_ms": encoder_ms(module, batches[args.warmup :], backward=False),
                "encoder_forward_backward_ms": encoder_ms(module, batches[args.warmup :], backward=True),
                **time_training(module, batches, args.warmup),
            }
        packing = measured["packing"]
        for strategy, row in measured.items():
            row |= {
                "encoder": encoder,
                "strategy": strategy,
                "threads": args.threads,
                "forward_vs_packing": row["encoder_forward_ms"] / packing["encoder_forward_ms"],
                "forward_backward_vs_packing": row["encoder_forward_backward_ms"]
                / packing["encoder_forward_backward_ms"],
                "tokens_per_sec_vs_packing": row["tokens_per_sec"] / packing["tokens_per_sec"],
            }
            rows.append(row)
            print(
                f"{encoder:<8} {strategy:<12} {row['encoder_forward_ms']:>10.1f} {row['encoder_forward_backward_ms']:>15.1f}"
                f" {row['tokens_per_sec']:>12,.0f} {row['forward_vs_packing']:>15.2f}"
                f" {row['forward_backward_vs_packing']:>19.2f} {row['tokens_per_sec_vs_packing']:>17.2f}"
            )
    write_json(args.out, rows)


if __name__ == "__main__":
    main()
