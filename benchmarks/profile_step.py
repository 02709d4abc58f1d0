"""Where a training step spends its time: the torch profiler over real bucketed training steps.

Runs the configured model (default: the default run) for a few warm-up steps, then profiles
`--steps` full steps (collate included: batches are drawn from the DataLoader inside the profiled
region) and prints the operators by self CPU time. The JSON keeps the top operators and the
step time, so a change can be compared before and after.

    python benchmarks/profile_step.py                                # writes results/profile_step.json
    python benchmarks/profile_step.py --overrides strategy=state_reset --out /tmp/profile.json
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable

from common import TrainingStep, build, parse_training_args, training_parser, write_json
from torch.profiler import ProfilerActivity, profile, record_function

from seq2seq.data.batch import Batch
from seq2seq.training.module import Seq2SeqModule


def main() -> None:
    parser = training_parser(__doc__, "profile_step.json", warmup=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--top", type=int, default=15, help="operators to print and keep")
    args = parse_training_args(parser)
    cfg, datamodule, module = build(args.overrides)
    loader, clip = datamodule.train_dataloader(), cfg.trainer.gradient_clip_val
    profiler, step_ms = profiled_steps(module, loader, clip, args.warmup, args.steps)
    events = sorted(profiler.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))
    phases = {e.key: e.cpu_time_total / 1000 / args.steps for e in events if e.key in PHASES}
    print(
        f"step {step_ms:.1f} ms (profiled); per step: "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in phases.items())
    )
    write_json(
        args.out,
        {
            "overrides": args.overrides,
            "threads": args.threads,
            "step_ms": step_ms,
            "phases_ms": phases,
            "top_ops": top_operators(events, args.steps, args.top),
        },
    )


PHASES = ("collate", "forward", "backward", "optimizer")  # the record_function labels of a step


def profiled_steps(
    module: Seq2SeqModule, loader: Iterable[Batch], clip_norm: float | None, warmup: int, steps: int
) -> tuple[profile, float]:
    """`warmup` unprofiled training steps, then `steps` profiled ones: the profiler and ms per profiled step."""
    step = TrainingStep(module, clip_norm)
    batches = iter(itertools.cycle(loader))

    def collated_step() -> None:
        with record_function("collate"):
            batch = next(batches)
        step(batch)

    for _ in range(warmup):
        collated_step()
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(steps):
            collated_step()
    return profiler, 1000 * (time.perf_counter() - start) / steps


def top_operators(events: list, steps: int, top: int) -> list[dict]:
    """The `top` operators by self CPU time (phases left out): ms and calls per step, share of the total."""
    total = sum(e.self_cpu_time_total for e in events)
    return [
        {
            "op": e.key,
            "self_cpu_ms_per_step": e.self_cpu_time_total / 1000 / steps,
            "calls_per_step": e.count / steps,
            "share": e.self_cpu_time_total / total,
        }
        for e in events
        if not e.key.startswith(PHASES)
    ][:top]


if __name__ == "__main__":
    main()
