"""Does the data path scale? Preparation speed, start-up time and memory on corpora of 30k, 300k and 3M pairs.

Each corpus is N copies of the bundled training split (plain text; valid/test as bundled). For every size:

* preparation (`seq2seq-preprocess`, 2 workers): once with a fresh sentencepiece cache, once with the model
  cached (encoding only: pairs/s), and the prepared folder's bytes per token and per pair;
* `train.py` on the prepared corpus to the end of its first step: seconds since the process started and
  peak RSS, from inside the process (benchmarks/startup_probe.py);
* 2 DDP ranks (gloo, CPU): each rank's PSS at its first step and their sum, against one process's.

`--repo DIR --label before` measures another checkout the same way (e.g. the commit before prepared data,
`git worktree add /tmp/before COMMIT`); it has no preparation step, so its first run trains sentencepiece
and its second is the start-up measured. Results go under the label in results/data_scale.json (other
labels are kept), and docs/data_scale.png is drawn from all labels. Run from the repository root::

    python benchmarks/data_scale.py                                   # this checkout, label "after"
    python benchmarks/data_scale.py --repo /tmp/before --label before
    python benchmarks/data_scale.py --sizes 30k 300k                  # a quick look
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, git_commit, write_json

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = Path(__file__).resolve().parent
SIZES = {"30k": 1, "300k": 10, "3M": 100}  # copies of the 30,000 bundled training pairs


def make_corpus(folder: Path, copies: int) -> Path:
    """train.{src,tgt}: `copies` times the bundled training split; valid/test as bundled. Plain text."""
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        for side in ("src", "tgt"):
            data = gzip.decompress((ROOT / "data" / "bundled" / f"{split}.{side}.gz").read_bytes())
            with open(folder / f"{split}.{side}", "wb") as handle:
                handle.writelines(data for _ in range(copies if split == "train" else 1))
    return folder


def data_overrides(corpus: Path, cache: Path) -> list[str]:
    return ["data=bundled", f"data.path={corpus}", f"paths.cache_dir={cache}"]


def preprocess(corpus: Path, cache: Path, workers: int) -> dict:
    command = [
        sys.executable,
        "-m",
        "seq2seq.cli.preprocess",
        *data_overrides(corpus, cache),
        "--workers",
        str(workers),
    ]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"seq2seq-preprocess failed:\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout[done.stdout.index("{") :])
    summary["command_seconds"] = time.perf_counter() - started
    return summary


def first_step(repo: Path, corpus: Path, cache: Path, out: Path, ddp: bool) -> list[dict]:
    """Runs train.py to the end of step 1 and returns each rank's probe record."""
    shutil.rmtree(out, ignore_errors=True)
    command = [
        sys.executable,
        str(repo / "train.py"),
        *data_overrides(corpus, cache),
        "trainer.max_steps=1",
        "test=false",
        "++trainer.limit_val_batches=1",
        "++trainer.num_sanity_val_steps=0",
        "++trainer.enable_progress_bar=false",
        "logger={}",
        "+callbacks.startup_probe._target_=startup_probe.StartupProbe",
        f"+callbacks.startup_probe.out={out / 'probe'}",
        f"hydra.run.dir={out / 'run'}",
    ]
    if ddp:
        command += ["device=ddp", "trainer.devices=2", "trainer.accelerator=cpu"]
    env = {**os.environ, "PYTHONPATH": str(BENCHMARKS)}
    done = subprocess.run(command, cwd=repo, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise SystemExit(f"train.py failed:\n{done.stderr[-3000:]}")
    return [json.loads(path.read_text()) for path in sorted((out / "probe").glob("rank*.json"))]


def sampler_seconds(pairs: int) -> dict:
    """Seconds to build one epoch's bucketed batches for `pairs` pairs (bundled lengths, tiled), one process."""
    import numpy as np

    from seq2seq.data.sampler import BucketBatchSampler

    src, tgt = (
        np.asarray(
            [
                len(line.split()) + 1
                for line in gzip.decompress((ROOT / "data" / "bundled" / f"train.{side}.gz").read_bytes())
                .decode()
                .splitlines()
            ],
            dtype=np.uint16,
        )
        for side in ("src", "tgt")
    )
    copies = -(-pairs // len(src))
    src, tgt = np.tile(src, copies)[:pairs], np.tile(tgt, copies)[:pairs]
    sampler = BucketBatchSampler(src, tgt, max_tokens=2048)
    started = time.perf_counter()
    batches = len(sampler)
    return {"pairs": pairs, "batches": batches, "seconds": time.perf_counter() - started}


def folder_bytes(folder: Path) -> dict:
    sizes = {path.name: path.stat().st_size for path in folder.iterdir()}
    arrays = sum(size for name, size in sizes.items() if name.endswith((".tokens", ".offsets", ".lengths")))
    return {"total": sum(sizes.values()), "arrays": arrays}


def measure(name: str, copies: int, repo: Path, work: Path, workers: int, prepares: bool) -> dict:
    corpus = make_corpus(work / f"corpus-{name}", copies)
    cache = work / f"cache-{name}"
    row: dict = {"size": name, "train_pairs": 30_000 * copies}
    if prepares:
        fresh = preprocess(corpus, cache, workers)
        shutil.rmtree(Path(fresh["folder"]))
        cached = preprocess(corpus, cache, workers)  # sentencepiece cached: encoding only
        tokens = sum(sum(sides.values()) for sides in cached["tokens"].values())
        pairs = sum(cached["pairs"].values())
        stored = folder_bytes(Path(cached["folder"]))
        row["prepare"] = {
            "seconds_with_sentencepiece": fresh["seconds"],
            "seconds_encoding": cached["seconds"],
            "pairs_per_s_with_sentencepiece": fresh["pairs_per_second"],
            "pairs_per_s_encoding": cached["pairs_per_second"],
            "workers": workers,
            "bytes": stored["total"],
            "array_bytes": stored["arrays"],
            "tokens": tokens,
            "pairs": pairs,
            "array_bytes_budget": 2 * tokens + 20 * pairs,
        }
    else:
        row["first_run"] = first_step(repo, corpus, cache, work / "probe", ddp=False)[
            0
        ]  # trains sentencepiece
    row["single"] = first_step(repo, corpus, cache, work / "probe", ddp=False)[0]
    ranks = first_step(repo, corpus, cache, work / "probe", ddp=True)
    row["ddp"] = {"ranks": ranks, "pss_sum_mb": sum(r["pss_mb"] for r in ranks)}
    row["ddp"]["pss_sum_over_single"] = row["ddp"]["pss_sum_mb"] / row["single"]["pss_mb"]
    shutil.rmtree(corpus)
    shutil.rmtree(cache)
    return row


def add_data_shares(rows: list[dict]) -> None:
    """What the corpus adds over the 30k run: one process's RSS, and both ranks' PSS against one process's.

    A rank's own runtime (Python, torch, the model: ~0.45 GB here) is not shared and is the same for
    any corpus; the difference to the 30k corpus is what the data cost.
    """
    base = next((row for row in rows if row["size"] == "30k"), None)
    for row in rows:
        if base is None or row is base:
            continue
        single = row["single"]["peak_rss_mb"] - base["single"]["peak_rss_mb"]
        ranks = row["ddp"]["pss_sum_mb"] - base["ddp"]["pss_sum_mb"]
        row["over_30k"] = {
            "peak_rss_mb": single,
            "ddp_pss_sum_mb": ranks,
            "single_pss_mb": row["single"]["pss_mb"] - base["single"]["pss_mb"],
        }
        row["over_30k"]["ddp_over_single"] = (
            ranks / row["over_30k"]["single_pss_mb"] if row["over_30k"]["single_pss_mb"] > 0 else None
        )


def print_table(label: str, rows: list[dict]) -> None:
    print(
        f"\n{label}: pairs | prepare s (pairs/s, encoding only) | start-up s | peak RSS GB (+ over 30k) | 2-rank PSS sum GB (x one process; data part x)"
    )
    for row in rows:
        prep = row.get("prepare")
        prepared = f"{prep['seconds_encoding']:.1f} ({prep['pairs_per_s_encoding']:,})" if prep else "-"
        single, ddp, extra = row["single"], row["ddp"], row.get("over_30k", {})
        added = f"+{extra['peak_rss_mb'] / 1024:.2f}" if extra else "-"
        share = f"{extra['ddp_over_single']:.2f}x" if extra.get("ddp_over_single") else "-"
        print(
            f"{row['train_pairs']:>10,} | {prepared:>22} | {single['seconds_to_first_step']:6.1f} | {single['peak_rss_mb'] / 1024:5.2f} ({added}) | "
            f"{ddp['pss_sum_mb'] / 1024:5.2f} ({ddp['pss_sum_over_single']:.2f}x; {share})"
        )


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from plots import save

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for (label, rows), color in zip(
        results.items(), ("tab:red", "tab:blue", "tab:green"), strict=False
    ):  # a colour per run, spares unused
        pairs = [row["train_pairs"] for row in rows["rows"]]
        seconds = [row["single"]["seconds_to_first_step"] for row in rows["rows"]]
        left.plot(pairs, seconds, "o-", color=color, label=label)
        rss = [row["single"]["peak_rss_mb"] / 1024 for row in rows["rows"]]
        right.plot(pairs, rss, "o-", color=color, label=f"{label}, one process (peak RSS)")
        pss = [row["ddp"]["pss_sum_mb"] / 1024 for row in rows["rows"]]
        right.plot(pairs, pss, "s--", color=color, label=f"{label}, 2 DDP ranks (PSS sum)")
    for axes, title, unit in (
        (left, "Process start to end of step 1", "seconds"),
        (right, "Memory at step 1", "GB"),
    ):
        axes.set_xscale("log")
        axes.set_xlabel("training pairs")
        axes.set_ylabel(unit)
        axes.set_title(title, fontsize=10)
        axes.legend(fontsize=8)
    save(figure, path)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--repo", type=Path, default=ROOT, help="checkout whose train.py is measured")
    parser.add_argument("--label", default="after")
    parser.add_argument("--workers", type=int, default=2, help="preparation processes")
    parser.add_argument("--out", type=Path, default=RESULTS / "data_scale.json")
    parser.add_argument(
        "--sampler-pairs", type=int, default=40_000_000, help="pairs of the sampler timing (0: skip)"
    )
    parser.add_argument("--plot-only", action="store_true", help="redraw docs/data_scale.png from the JSON")
    args = parser.parse_args()
    if args.plot_only:
        plot(json.loads(args.out.read_text()), ROOT / "docs" / "data_scale.png")
        return
    prepares = (args.repo / "seq2seq" / "data" / "prepare.py").is_file()
    with tempfile.TemporaryDirectory(prefix="data-scale-") as work:
        rows = [
            measure(name, SIZES[name], args.repo.resolve(), Path(work), args.workers, prepares)
            for name in args.sizes
        ]
    add_data_shares(rows)
    print_table(args.label, rows)
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results[args.label] = {"commit": git_commit(args.repo), "threads": os.cpu_count(), "rows": rows}
    if args.sampler_pairs and prepares:
        results[args.label]["sampler"] = sampler_seconds(args.sampler_pairs)
        print(f"sampler: {results[args.label]['sampler']}")
    write_json(args.out, results)
    plot(results, ROOT / "docs" / "data_scale.png")


if __name__ == "__main__":
    main()
