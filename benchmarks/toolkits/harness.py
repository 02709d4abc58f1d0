"""What every framework's run shares: its virtualenv, the corpus cut into our pieces, and training it
for a budget while copying its checkpoints aside; the peers' model sizes."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common import build

from seq2seq.data.corpus import find_split_file, read_parallel
from seq2seq.data.vocab import Vocabs

TORCH = "torch==2.13.0"
PACKAGES = {  # versions that install and train on Python 3.11 with torch 2.13 (see benchmarks/README.md)
    "joeynmt": ["joeynmt==2.3.0", "importlib-metadata"],
    "opennmt": ["OpenNMT-py==3.0.4"],
    "fairseq": ["fairseq-fixed==0.12.3.1"],
}
EMBED, ENC_HIDDEN, DEC_HIDDEN, MAX_TOKENS, LR, SEED = 128, 128, 256, 2048, 0.002, 1234


def run(command: list[str], log: Path, env: dict | None = None, cwd: Path | None = None) -> None:
    """Runs `command` to completion with its output in `log`; a failure names the log."""
    with log.open("w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, check=False)
    if done.returncode != 0:
        sys.exit(f"error: `{' '.join(map(str, command))}` failed with exit code {done.returncode}; see {log}")


def ensure_venv(work: Path, tool: str) -> Path:
    """The tool's virtualenv (created and installed on first use); returns its bin folder."""
    venv = work / "venvs" / tool
    marker = venv / "installed.txt"
    if not marker.is_file():
        constraints = work / "constraints.txt"
        constraints.write_text(TORCH + "\n")
        print(f"installing {tool} into {venv} ...", flush=True)
        run([sys.executable, "-m", "venv", "--clear", str(venv)], work / f"{tool}-venv.log")
        pip = [str(venv / "bin" / "pip"), "install", "-c", str(constraints)]
        run(pip + [TORCH], work / f"{tool}-install-torch.log")
        run(pip + PACKAGES[tool], work / f"{tool}-install.log")
        marker.write_text(" ".join(PACKAGES[tool]) + "\n")
    return venv / "bin"


@dataclass(frozen=True)
class Corpus:
    """The corpus every framework trains on, as `prepare_data` wrote it.

    Attributes:
        name: a short name for run folders: the data config's folder name and a hash of the overrides.
        overrides: the Hydra data overrides that chose it (passed on to our own training run).
        pieces: folder of space-separated sentencepiece pieces, {train,valid,test}.{src,tgt}.
        test_src: the raw test-split source file (what our evaluate command reads).
        test_tgt: the raw test-split reference file.
        references: the raw test-split references, a line each.
        vocabs: our vocabularies (the peers' outputs are decoded from pieces with the target one).
    """

    name: str
    overrides: tuple[str, ...]
    pieces: Path
    test_src: Path
    test_tgt: Path
    references: list[str]
    vocabs: Vocabs


def prepare_data(work: Path, overrides: list[str]) -> Corpus:
    """Writes the corpus that the data `overrides` choose as space-separated sentencepiece pieces."""
    _, datamodule, _ = build(overrides)
    vocabs = datamodule.vocabs
    path, src_lang, tgt_lang = Path(datamodule.path), datamodule.src_lang, datamodule.tgt_lang
    digest = hashlib.sha1(" ".join(overrides).encode()).hexdigest()[:8]
    name = f"{path.name}-{digest}"
    folder = work / "data" / name
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        text = read_parallel(path, split, src_lang, tgt_lang)
        for side, lines, vocab in (("src", text.src, vocabs.src), ("tgt", text.tgt, vocabs.tgt)):
            pieces = vocab.processor.encode(lines, out_type=str)
            (folder / f"{split}.{side}").write_text("".join(" ".join(p) + "\n" for p in pieces))
    return Corpus(
        name=name,
        overrides=tuple(overrides),
        pieces=folder,
        test_src=find_split_file(path, "test", src_lang),
        test_tgt=find_split_file(path, "test", tgt_lang),
        references=read_parallel(path, "test", src_lang, tgt_lang).tgt,
        vocabs=vocabs,
    )


def train_log(run_dir: Path) -> Path:
    """Where a framework's training output goes: beside its run folder."""
    return run_dir.parent / f"{run_dir.name}-train.log"


def train_for(
    command: list[str],
    run_dir: Path,
    checkpoints: str,
    curve: list[float],
    env: dict,
    cwd: Path | None = None,
) -> list[dict]:
    """Starts training (output in `train_log(run_dir)`), at each second in `curve` copies the newest
    checkpoint matching `checkpoints` (a glob under `run_dir`) to `run_dir/curve`, and kills the
    training's process group at the last of them. A training that ends by itself before the last point
    (a run given its own time budget, such as `trainer.max_time`, to anneal in) gives its last
    checkpoint to every point left. An empty `curve` (`--steps`) lets the training run until it stops by
    itself and copies its last checkpoint then.

    Returns:
        One snapshot per curve point: at_s (the point, or when the training ended), saved_s (when the
        copied checkpoint was written, in seconds since the start), path (the copy; None if no
        checkpoint existed yet).
    """
    start, started_at = time.perf_counter(), time.time()
    snapshots, pending = [], sorted(curve)
    folder = run_dir / "curve"
    folder.mkdir(exist_ok=True)
    log = train_log(run_dir)
    with log.open("w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd or run_dir, start_new_session=True
        )
        try:
            if not pending:
                code = process.wait()
                if code != 0:
                    sys.exit(f"error: training exited with code {code}; see {log}")
                return [snapshot(run_dir, checkpoints, folder, time.perf_counter() - start, started_at)]
            while pending:
                try:
                    code = process.wait(timeout=max(0.0, pending[0] - (time.perf_counter() - start)))
                except subprocess.TimeoutExpired:
                    snapshots.append(snapshot(run_dir, checkpoints, folder, pending.pop(0), started_at))
                    continue
                if code != 0:
                    sys.exit(f"error: training exited with code {code} before the budget; see {log}")
                snapshots += [snapshot(run_dir, checkpoints, folder, at, started_at) for at in pending]
                pending = []
        finally:  # also when a snapshot fails: no training process outlives the benchmark
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return snapshots


def snapshot(run_dir: Path, pattern: str, folder: Path, at: float, started_at: float) -> dict:
    """Copies the newest complete checkpoint matching `pattern` to `folder` (see `train_for`).

    The framework keeps writing and deleting checkpoints meanwhile: one that vanishes while it is
    looked at is passed over for the one before it.
    """
    found = []
    for path in run_dir.glob(pattern):
        try:
            if path.is_file():
                found.append((path.stat().st_mtime, path))
        except FileNotFoundError:
            continue
    for _, path in sorted(found, reverse=True):
        try:
            size = path.stat().st_size
            time.sleep(0.2)  # one being written now grows: take the one before it
            if path.stat().st_size != size:
                continue
            copy = folder / f"{at:g}s{path.suffix}"
            shutil.copyfile(path, copy)
            return {"at_s": at, "saved_s": path.stat().st_mtime - started_at, "path": copy}
        except FileNotFoundError:
            continue
    return {"at_s": at, "saved_s": None, "path": None}


def median_of(pattern: str, text: str) -> float:
    """Median of a reported throughput over a log, leaving out the first report (warm-up)."""
    values = [float(v) for v in re.findall(pattern, text)]
    if not values:
        raise RuntimeError(f"no throughput matching {pattern!r} in the log")
    return statistics.median(values[1:] or values)


def flags(options: dict[str, object]) -> list[str]:
    """Command-line flags from `{"--name": value}`; a value of True is a bare flag."""
    return [
        part for name, value in options.items() for part in ([name] if value is True else [name, str(value)])
    ]


def log_every(args: argparse.Namespace) -> int:
    """Steps between throughput reports: 50, or fewer when checkpoints come more often."""
    return max(1, min(50, args.save_every // 2))


# --- one function per framework: train, then translate the test set into pieces ------------------------------
