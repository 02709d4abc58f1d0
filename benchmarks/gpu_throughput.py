"""Training throughput on a GPU: strategies x precision x eager/compiled, for two model sizes.

The default model, and a 2 x 512 LSTM with input feeding (the shape of `experiment=multi30k_lstm_attention`
on the bundled corpus), each trained with the real config, DataModule, model, loss and optimizer on one CUDA
device, in fp32 and in bf16 autocast, eager and with `torch.compile` (the network compiled in place with
dynamic shapes, as `train.py compile=true` does). Every setting trains on the same length-bucketed batches:
one untimed pass over them (for a compiled network, the pass that compiles it: its seconds are reported),
then timed passes. A compiled setting that has not finished its first pass within `--compile-timeout`
seconds is recorded as such and the next setting runs.

    python benchmarks/gpu_throughput.py                            # writes results/gpu_throughput.json
    python benchmarks/gpu_throughput.py --models default --strategies masking --modes eager
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from common import RESULTS, build, time_training, write_json

MODELS = {
    "default": [],
    "2x512 LSTM, input feeding": [
        "encoder.hidden_size=256",
        "encoder.rnn.num_layers=2",
        "decoder.hidden_size=512",
        "decoder.rnn.num_layers=2",
        "decoder.input_feeding=true",
        "model.net.embedding_dim=256",
        "data.max_tokens=4096",
    ],
}
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


class CompileTimeout(Exception):
    """torch.compile took longer than the setting allows; the row is recorded as timed out."""


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Raises CompileTimeout in the main thread after `seconds` (0: no limit), and again every 5 s after
    that: an exception raised inside a callback of the compiler's can be swallowed."""

    def expire(*_: object) -> None:
        raise CompileTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds, 5 if seconds else 0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def caused_by_timeout(error: BaseException | None) -> bool:
    while error is not None:
        if isinstance(error, CompileTimeout):
            return True
        error = error.__cause__ or error.__context__
    return False


def measure(
    model: str, strategy: str, precision: str, compiled: bool, args: argparse.Namespace
) -> dict[str, object]:
    """One setting: a fresh model on the GPU, a warm-up pass over the batches, then timed passes."""
    torch._dynamo.reset()
    cfg, datamodule, module = build([f"strategy={strategy}", *MODELS[model], *args.overrides])
    clip = cfg.trainer.gradient_clip_val
    module.to(args.device)
    if compiled:
        module.net.compile(dynamic=True)
    loader = datamodule.train_dataloader()
    batches = [batch.to(args.device) for batch, _ in zip(loader, range(args.batches), strict=False)]
    row: dict[str, object] = {
        "model": model,
        "strategy": strategy,
        "precision": precision,
        "compiled": compiled,
    }
    start = time.perf_counter()
    try:
        with time_limit(args.compile_timeout if compiled else 0):
            time_training(module, batches, len(batches), clip, PRECISIONS[precision])
    except (
        Exception
    ) as error:  # dynamo wraps the timeout in its own exception; a failed compile is a result too
        if not compiled:
            raise
        timed_out = caused_by_timeout(error)
        reason = (
            f"first pass did not finish in {args.compile_timeout} s"
            if timed_out
            else str(error).splitlines()[0]
        )
        return row | {"error": reason}
    row["warmup_s"] = time.perf_counter() - start
    return row | time_training(module, batches * args.passes, 0, clip, PRECISIONS[precision])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument(
        "--strategies", nargs="+", default=["naive", "masking_outputs", "masking", "packing", "state_reset"]
    )
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    parser.add_argument("--batches", type=int, default=16, help="distinct batches per setting")
    parser.add_argument("--passes", type=int, default=3, help="timed passes over them")
    parser.add_argument("--modes", nargs="+", default=["eager", "compiled"], choices=["eager", "compiled"])
    parser.add_argument("--compile-timeout", type=int, default=120, help="seconds for a compiled first pass")
    parser.add_argument("--overrides", nargs="*", default=[], help="more Hydra overrides for every run")
    parser.add_argument("--device", default="cuda", help="cpu runs the same code (the smoke test does)")
    parser.add_argument("--out", type=Path, default=RESULTS / "gpu_throughput.json")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error(
            "no CUDA device: this benchmark measures a GPU (CPU figures: throughput.py, strategy_cost.py)"
        )
    return args


def main() -> None:
    args = parse_args()
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"{gpu}, torch {torch.__version__}")
    # Eager settings first, then compiled ones: a slow compilation costs only the settings after it.
    settings = [
        (mode == "compiled", m, p, s)
        for mode in args.modes
        for m in args.models
        for p in args.precisions
        for s in args.strategies
    ]
    rows = []
    print(f"{'model':<26} {'precision':<5} {'strategy':<12} {'mode':<9} {'tok/s':>9} {'first pass s':>12}")
    for compiled, model, precision, strategy in settings:
        row = measure(model, strategy, precision, compiled, args)
        row |= {"overrides": args.overrides, "gpu": gpu, "torch": torch.__version__}
        rows.append(row)
        mode = "compiled" if compiled else "eager"
        shown = (
            f"{row['tokens_per_sec']:>9,.0f} {row['warmup_s']:>12.1f}" if "error" not in row else row["error"]
        )
        print(f"{model:<26} {precision:<5} {strategy:<12} {mode:<9} {shown}", flush=True)
        write_json(args.out, rows)


if __name__ == "__main__":
    main()
