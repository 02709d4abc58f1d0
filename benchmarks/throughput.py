"""Training throughput (real target tokens per second) with bucketed against random batches.

Each encoder is trained for a few steps with the real config, DataModule, model, loss and optimizer
(no Lightning loop: the step itself is what is timed), once with `data.bucketing=true` and once with
random batches of the same token budget, in one process one after the other. Ratios are what to
compare on a shared machine.

    python benchmarks/throughput.py                      # lstm, gru, attention; 60 timed steps each
    python benchmarks/throughput.py --threads 1 --steps 30 --overrides model.net.embedding_dim=256
"""

from __future__ import annotations

import itertools

from common import build, parse_training_args, time_training, training_parser, write_json


def tokens_per_second(overrides: list[str], steps: int, warmup: int) -> dict[str, float]:
    """Trains `warmup + steps` steps of the configured run; throughput over the timed steps."""
    cfg, datamodule, module = build(overrides)
    batches = itertools.islice(itertools.cycle(datamodule.train_dataloader()), warmup + steps)
    return time_training(module, batches, warmup, cfg.trainer.gradient_clip_val)


def main() -> None:
    parser = training_parser(__doc__, "throughput.json", warmup=5)
    parser.add_argument("--encoders", nargs="+", default=["lstm", "gru", "attention"])
    parser.add_argument("--strategy", default="masking")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per setting")
    args = parse_training_args(parser)
    rows = []
    print(f"{'encoder':<10} {'bucketed tok/s':>15} {'random tok/s':>13} {'ratio':>6} {'pad % (b / r)':>14}")
    for encoder in args.encoders:
        base = [f"encoder={encoder}", f"strategy={args.strategy}", *args.overrides]
        bucketed = tokens_per_second(base + ["data.bucketing=true"], args.steps, args.warmup)
        shuffled = tokens_per_second(base + ["data.bucketing=false"], args.steps, args.warmup)
        ratio = bucketed["tokens_per_sec"] / shuffled["tokens_per_sec"]
        rows.append(
            {
                "encoder": encoder,
                "strategy": args.strategy,
                "threads": args.threads,
                "bucketed": bucketed,
                "random": shuffled,
                "ratio": ratio,
            }
        )
        print(
            f"{encoder:<10} {bucketed['tokens_per_sec']:>15,.0f} {shuffled['tokens_per_sec']:>13,.0f} {ratio:>6.2f} "
            f"{100 * bucketed['pad_fraction']:>6.1f} / {100 * shuffled['pad_fraction']:.1f}"
        )
    write_json(args.out, rows)


if __name__ == "__main__":
    main()
