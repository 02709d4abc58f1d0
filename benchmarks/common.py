"""What the benchmark scripts share: building the configured data and model, and timing training steps.

The scripts run from the repository root (`python benchmarks/NAME.py`), so this module is importable
as `common`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Iterable
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from seq2seq.config import CONFIG_DIR, PROJECT_ROOT, register_resolvers
from seq2seq.data.batch import Batch
from seq2seq.data.datamodule import TranslationDataModule
from seq2seq.files import atomic_write_bytes
from seq2seq.training.module import Seq2SeqModule

RESULTS = PROJECT_ROOT / "benchmarks" / "results"


def build(overrides: list[str]) -> tuple[DictConfig, TranslationDataModule, Seq2SeqModule]:
    """The training config with `overrides`, its prepared DataModule and a freshly seeded model."""
    register_resolvers()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose(config_name="train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(PROJECT_ROOT / "outputs" / "benchmark")
    torch.manual_seed(cfg.seed)
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    sizes = {"src_vocab_size": len(datamodule.vocabs.src), "tgt_vocab_size": len(datamodule.vocabs.tgt)}
    module = instantiate(cfg.model, net=sizes, vocabs=datamodule.vocabs)
    return cfg, datamodule, module


def optimizer_of(module: Seq2SeqModule) -> torch.optim.Optimizer:
    configured = module.configure_optimizers()
    return configured["optimizer"] if isinstance(configured, dict) else configured


def time_training(
    module: Seq2SeqModule, batches: Iterable[Batch], warmup: int, autocast: torch.dtype | None = None
) -> dict[str, float]:
    """Trains on `batches` (the first `warmup` untimed); throughput over the timed ones.

    The batches must be on the module's device; on a GPU the clock stops only when the step has run
    there. `autocast` (e.g. torch.bfloat16) runs the forward pass in that autocast dtype.

    Returns:
        tokens_per_sec (real target tokens), pad_fraction (source and target), seconds, steps, and
        tokens and step_seconds (per timed step), from which runs over the same batches can be combined.
    """
    module.train()
    optimizer = optimizer_of(module)
    tokens = slots = pads = steps = 0
    seconds = 0.0
    step_seconds = []
    device = next(module.parameters()).device
    synchronize = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    mixed = torch.autocast(device.type, dtype=autocast) if autocast else contextlib.nullcontext()
    for step, batch in enumerate(batches):
        synchronize()
        start = time.perf_counter()
        with mixed:
            loss_sum, count = module.token_loss(batch)
        loss = loss_sum / count.clamp_min(1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        synchronize()
        if step >= warmup:
            step_seconds.append(time.perf_counter() - start)
            seconds += step_seconds[-1]
            steps += 1
            tokens += batch.num_tgt_tokens
            slots += batch.num_slots
            pads += batch.num_slots - batch.num_real_tokens
    return {
        "tokens_per_sec": tokens / seconds if steps else float("nan"),
        "pad_fraction": pads / slots if steps else float("nan"),
        "seconds": seconds,
        "steps": steps,
        "tokens": tokens,
        "step_seconds": step_seconds,
    }


def training_parser(doc: str, out_name: str, warmup: int) -> argparse.ArgumentParser:
    """The options every training-step benchmark has: warm-up steps, threads, Hydra overrides, output JSON."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warmup", type=int, default=warmup, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--overrides", nargs="*", default=[], help="more Hydra overrides for every run")
    parser.add_argument("--out", type=Path, default=RESULTS / out_name)
    return parser


def parse_training_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parses the command line and applies `--threads`."""
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args


def write_json(path: Path, payload: object) -> None:
    """Writes `payload` atomically (temp file, then rename)."""
    atomic_write_bytes(path, (json.dumps(payload, indent=2) + "\n").encode())
    print(f"wrote {path}")
