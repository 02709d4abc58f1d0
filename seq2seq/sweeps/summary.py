"""Summary of a Hydra multirun folder: the runs ranked by a metric, and a plot of it against what was swept.

Works for any sweeper (grids, Optuna): each job folder holds `.hydra/overrides.yaml` (what the job
was given) and, once it finished, `results.json` (what train.py measured).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from seq2seq.files import atomic_write, atomic_write_bytes


@dataclass
class Job:
    """One job of the sweep: its folder, its overrides as {key: value}, and its results (None if it did not finish)."""

    folder: Path
    overrides: dict[str, Any]
    results: dict[str, Any] | None


def _value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def load_jobs(sweep_dir: Path) -> list[Job]:
    """Every job folder under `sweep_dir` (those holding `.hydra/overrides.yaml`), in job-number order."""
    jobs = []
    for overrides_file in Path(sweep_dir).glob("**/.hydra/overrides.yaml"):
        folder = overrides_file.parent.parent
        lines = yaml.safe_load(overrides_file.read_text()) or []
        overrides = {
            line.split("=", 1)[0].lstrip("+~"): _value(line.split("=", 1)[1]) for line in lines if "=" in line
        }
        results_file = folder / "results.json"
        results = json.loads(results_file.read_text()) if results_file.is_file() else None
        jobs.append(Job(folder, overrides, results))
    return sorted(jobs, key=lambda job: (len(job.folder.name), job.folder.name))


def swept_keys(jobs: list[Job]) -> list[str]:
    """Override keys whose value differs between jobs, in first-seen order."""
    keys: dict[str, set[str]] = {}
    for job in jobs:
        for key, value in job.overrides.items():
            keys.setdefault(key, set()).add(repr(value))
    return [
        key
        for key, values in keys.items()
        if len(values) > 1 or any(key not in job.overrides for job in jobs)
    ]


def ranked(jobs: list[Job], metric: str, maximize: bool = True) -> list[Job]:
    """Finished jobs that report `metric` as a finite number, best first."""
    scored = [
        j
        for j in jobs
        if j.results and isinstance(j.results.get(metric), (int, float)) and math.isfinite(j.results[metric])
    ]
    return sorted(scored, key=lambda job: job.results[metric], reverse=maximize)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def format_table(jobs: list[Job], keys: list[str], metric: str) -> str:
    """A fixed-width table: rank, job folder, metric, then one column per swept key."""
    header = ["rank", "job", metric, *keys]
    rows = [
        [str(rank), job.folder.name, _cell(job.results[metric]), *(_cell(job.overrides.get(k)) for k in keys)]
        for rank, job in enumerate(jobs, 1)
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def plot(jobs: list[Job], keys: list[str], metric: str, path: Path) -> None:
    """One panel per swept key: the metric of every finished job against that key's value; best job marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(4, max(1, len(keys)))
    rows = math.ceil(max(1, len(keys)) / columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(3.6 * columns, 3.0 * rows), squeeze=False, sharey=True
    )
    best = jobs[0] if jobs else None
    for panel, key in zip(axes.flat, keys, strict=False):  # the grid's last row may have spare panels
        _scatter_panel(panel, key, jobs, metric)
    for panel in list(axes.flat)[len(keys) :]:
        panel.set_visible(False)
    axes[0][0].set_ylabel(metric)
    if best is not None:
        axes[0][0].legend(fontsize=7)
    figure.suptitle(f"{metric} of {len(jobs)} runs", fontsize=10)
    figure.tight_layout()
    with atomic_write(path) as handle:
        figure.savefig(handle, dpi=110, format="png")
    plt.close(figure)


def _scatter_panel(panel: Any, key: str, jobs: list[Job], metric: str) -> None:
    """`metric` of each job against its value of `key` (categories in sorted order); the best job, first, starred."""
    values = [job.overrides.get(key) for job in jobs]
    scores = [job.results[metric] for job in jobs]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if not numeric:
        labels = sorted({str(v) for v in values})
        panel.set_xticks(range(len(labels)), labels)
        values = [labels.index(str(v)) for v in values]
    elif min(values) > 0 and max(values) / min(values) >= 20:
        panel.set_xscale("log")
    panel.scatter(values, scores, s=22, alpha=0.8)
    if jobs:
        panel.scatter(
            [values[0]],
            [scores[0]],
            marker="*",
            s=140,
            color="crimson",
            label=f"best ({jobs[0].folder.name})",
        )
    panel.set_xlabel(key, fontsize=8)
    panel.grid(alpha=0.3)


def write_json(jobs: list[Job], keys: list[str], metric: str, path: Path) -> None:
    rows = [
        {"job": job.folder.name, metric: job.results[metric], **{k: job.overrides.get(k) for k in keys}}
        for job in jobs
    ]
    atomic_write_bytes(Path(path), (json.dumps(rows, indent=2) + "\n").encode())
