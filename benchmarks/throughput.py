"""Training throughput (real target tokens per second) with bucketed against random batches.

Each encoder is trained for a few steps with the real config, DataModule, model, loss and optimizer
(no Lightning loop: the step itself is what is timed), once with `data.bucketing=true` and once with
random batches of the same token budget, in one process one after the other. Ratios are what to
compare on a shared machine.

    python benchmarks/throughput.py                      # lstm, gru, attention; 60 timed steps each
    python benchmarks/throughput.py --threads 1 --steps 30 --overrides model.net.embedding_dim=256
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import open_dict

from seq2seq.config import CONFIG_DIR, PROJECT_ROOT, register_resolvers
from seq2seq.data.vocab import atomic_write_bytes
from seq2seq.training.loss import masked_cross_entropy


def tokens_per_second(overrides: list[str], steps: int, warmup: int) -> dict[str, float]:
    """Trains `warmup + steps` steps and returns throughput and pad fraction over the timed steps."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose(config_name="train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(PROJECT_ROOT / "outputs" / "benchmark")
    torch.manual_seed(cfg.seed)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    sizes = {"src_vocab_size": len(datamodule.vocabs.src), "tgt_vocab_size": len(datamodule.vocabs.tgt)}
    module = instantiate(cfg.model, net=sizes, vocabs=datamodule.vocabs)
    net, optimizer = module.net.train(), module.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    loader = itertools.cycle(datamodule.train_dataloader())
    tokens = slots = pads = 0
    seconds = 0.0
    for step in range(warmup + steps):
        batch = next(loader)
        start = time.perf_counter()
        loss_sum, count = masked_cross_entropy(net(batch), batch.tgt_out, net.strategy.loss_mask(batch.tgt_mask))
        optimizer.zero_grad()
        (loss_sum / count.clamp_min(1)).backward()
        optimizer.step()
        if step >= warmup:
            seconds += time.perf_counter() - start
            tokens += batch.num_tgt_tokens
            slots += batch.num_slots
            pads += batch.num_slots - batch.num_real_tokens
    return {"tokens_per_sec": tokens / seconds, "pad_fraction": pads / slots, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoders", nargs="+", default=["lstm", "gru", "attention"])
    parser.add_argument("--strategy", default="masking")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per setting")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--overrides", nargs="*", default=[], help="more Hydra overrides for every run")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "benchmarks" / "results" / "throughput.json")
    args = parser.parse_args()
    register_resolvers()
    torch.set_num_threads(args.threads)
    rows = []
    print(f"{'encoder':<10} {'bucketed tok/s':>15} {'random tok/s':>13} {'ratio':>6} {'pad % (b / r)':>14}")
    for encoder in args.encoders:
        base = [f"encoder={encoder}", f"strategy={args.strategy}", *args.overrides]
        bucketed = tokens_per_second(base + ["data.bucketing=true"], args.steps, args.warmup)
        shuffled = tokens_per_second(base + ["data.bucketing=false"], args.steps, args.warmup)
        ratio = bucketed["tokens_per_sec"] / shuffled["tokens_per_sec"]
        rows.append({"encoder": encoder, "strategy": args.strategy, "threads": args.threads, "bucketed": bucketed, "random": shuffled, "ratio": ratio})
        print(f"{encoder:<10} {bucketed['tokens_per_sec']:>15,.0f} {shuffled['tokens_per_sec']:>13,.0f} {ratio:>6.2f} "
              f"{100 * bucketed['pad_fraction']:>6.1f} / {100 * shuffled['pad_fraction']:.1f}")
    atomic_write_bytes(args.out, (json.dumps(rows, indent=2) + "\n").encode())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
