"""What the benchmark scripts share: building the configured data, model and padding strategies, timing
training steps, and recording the commit a figure was measured at.

The scripts run from the repository root (`python benchmarks/NAME.py`), so this module is importable
as `common`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from torch.profiler import record_function

from seq2seq.config import CONFIG_DIR, PROJECT_ROOT, setup_hydra
from seq2seq.data.batch import Batch
from seq2seq.data.datamodule import TranslationDataModule
from seq2seq.files import atomic_write_bytes
from seq2seq.padding import PaddingStrategy
from seq2seq.training.module import Seq2SeqModule

RESULTS = PROJECT_ROOT / "benchmarks" / "results"
# The `strategy=` config group's options, in the order every table shows them (baselines first).
STRATEGY_NAMES = ("naive", "masking_outputs", "masking", "packing", "state_reset")


def padding_strategy(name: str) -> PaddingStrategy:
    """A new padding strategy object, built from its `strategy=NAME` config as train.py builds it."""
    return instantiate(OmegaConf.load(CONFIG_DIR / "strategy" / f"{name}.yaml"))


def strategy_of_target(target: str) -> str:
    """The `strategy=` option whose config builds `target` (a run's resolved `strategy._target_`)."""
    return next(
        name
        for name in STRATEGY_NAMES
        if OmegaConf.load(CONFIG_DIR / "strategy" / f"{name}.yaml")._target_ == target
    )


def git_commit(repo: Path = PROJECT_ROOT) -> str:
    """The short commit hash `repo` is at, or "unknown" outside a git checkout."""
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "unknown"


def build(
    overrides: list[str], datamodule: TranslationDataModule | None = None
) -> tuple[DictConfig, TranslationDataModule, Seq2SeqModule]:
    """The training config with `overrides`, its prepared DataModule and a freshly seeded model.

    `datamodule`: one already set up for the same data config, to share instead of building another.
    """
    setup_hydra()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = compose(config_name="train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(PROJECT_ROOT / "outputs" / "benchmark")
    torch.manual_seed(cfg.seed)
    if datamodule is None:
        datamodule = instantiate(cfg.data)
        datamodule.setup("fit")
    module = instantiate(cfg.model, net=datamodule.net_sizes(), vocabs=datamodule.vocabs)
    return cfg, datamodule, module


def corpus_overrides(corpus: str) -> tuple[str, list[str]]:
    """`bundled`, or `DIR:SRC:TGT` for a corpus of one's own -> (its name, its data overrides)."""
    if corpus == "bundled":
        return corpus, []
    path, src, tgt = corpus.rsplit(":", 2)
    return Path(path).name, [
        "data=parallel",
        f"data.path={path}",
        f"data.src_lang={src}",
        f"data.tgt_lang={tgt}",
    ]


def optimizer_of(module: Seq2SeqModule) -> torch.optim.Optimizer:
    configured = module.configure_optimizers()
    return configured["optimizer"] if isinstance(configured, dict) else configured


class TrainingStep:
    """A timed training step of `module`: the work of one step under `train.py`'s Trainer.

    The package's token loss, backward, gradient clipping to `clip_norm` (`trainer.gradient_clip_val`,
    by norm as Lightning clips) and the configured optimizer. Left out: the warm-up, which changes only
    the rate's value, and Lightning's loop around the step, so that several models can take turns batch
    by batch (`strategy_cost.py`). The batches must be on the module's device; on a GPU the clock stops
    only when the step has run there. `autocast` (e.g. torch.bfloat16) runs the forward pass in that dtype.
    """

    def __init__(
        self, module: Seq2SeqModule, clip_norm: float | None, autocast: torch.dtype | None = None
    ) -> None:
        module.train()
        self.module, self.optimizer, self.clip_norm = module, optimizer_of(module), clip_norm
        device = next(module.parameters()).device
        self.synchronize = torch.cuda.synchronize if device.type == "cuda" else lambda: None
        self.autocast = (device.type, autocast)

    def __call__(self, batch: Batch) -> float:
        """Trains on `batch`; the seconds it took."""
        device, dtype = self.autocast
        mixed = torch.autocast(device, dtype=dtype) if dtype else contextlib.nullcontext()
        self.synchronize()
        start = time.perf_counter()
        with mixed, record_function("forward"):  # the phases profile_step.py reports
            loss_sum, count = self.module.token_loss(batch)
            loss = loss_sum / count.clamp_min(1)
        self.optimizer.zero_grad()
        with record_function("backward"):
            loss.backward()
        with record_function("optimizer"):
            if self.clip_norm:
                torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.clip_norm)
            self.optimizer.step()
        self.synchronize()
        return time.perf_counter() - start


def throughput(batches: list[Batch], step_seconds: list[float]) -> dict[str, float]:
    """tokens_per_sec (real target tokens), pad_fraction (source and target), seconds, steps."""
    seconds = sum(step_seconds)
    slots = sum(batch.num_slots for batch in batches)
    pads = slots - sum(batch.num_real_tokens for batch in batches)
    return {
        "tokens_per_sec": sum(batch.num_tgt_tokens for batch in batches) / seconds
        if batches
        else float("nan"),
        "pad_fraction": pads / slots if batches else float("nan"),
        "seconds": seconds,
        "steps": len(batches),
    }


def time_training(
    module: Seq2SeqModule,
    batches: Iterable[Batch],
    warmup: int,
    clip_norm: float | None,
    autocast: torch.dtype | None = None,
) -> dict[str, float]:
    """Trains on `batches` (the first `warmup` untimed, see `TrainingStep`); `throughput` over the timed ones."""
    step = TrainingStep(module, clip_norm, autocast)
    batches = list(batches)
    seconds = [step(batch) for batch in batches]
    return throughput(batches[warmup:], seconds[warmup:])


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


def machine() -> dict[str, object]:
    """What a timed figure depends on: the CPU, the SIMD level PyTorch dispatches to, and a matmul rate.

    Ratios between frameworks moved with the machine (benchmarks/README.md, "Peers": two 2-core EPYCs),
    so a timed JSON row should say where it was measured.
    The rate is a (2048, 256) x (256, 4000) fp32 matmul, the output layer's shape, at the current threads.
    """
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    a, b = torch.randn(2048, 256), torch.randn(256, 4000)
    a @ b
    start, runs = time.perf_counter(), 10
    for _ in range(runs):
        a @ b
    seconds = (time.perf_counter() - start) / runs
    return {
        "cpu": model,
        "logical_cpus": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "matmul_gflops": round(2 * 2048 * 256 * 4000 / seconds / 1e9, 1),
        "torch": torch.__version__,
    }


def write_json(path: Path, payload: object) -> None:
    """Writes `payload` atomically (temp file, then rename)."""
    atomic_write_bytes(path, (json.dumps(payload, indent=2) + "\n").encode())
    print(f"wrote {path}")
