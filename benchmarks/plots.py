"""Draws the README's figures from the benchmark JSON: pad fraction per batching method, tokens/s per
strategy, and test BLEU against training time for us and the peers (`peers.py --curve`), on the bundled
task and on Tatoeba German-English.

python benchmarks/plots.py            # reads benchmarks/results/*.json, writes docs/*.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from common import RESULTS

from seq2seq.config import PROJECT_ROOT
from seq2seq.files import atomic_write

METHODS = ["random", "pool sort", "global sort", "ours"]


def save(figure: plt.Figure, path: Path) -> None:
    """Writes the PNG atomically (temp file, then rename)."""
    with atomic_write(path) as handle:
        figure.savefig(handle, dpi=120, bbox_inches="tight", format="png")
    plt.close(figure)
    print(f"wrote {path}")


def pad_fraction_plot(rows: list[dict], path: Path) -> None:
    """Grouped bars: pad fraction of each batching method, per corpus and batch size."""
    settings = list(dict.fromkeys((row["corpus"], row["batching"]) for row in rows))
    value = {(row["corpus"], row["batching"], row["method"]): 100 * row["pad_fraction"] for row in rows}
    figure, axes = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(METHODS)
    for i, method in enumerate(METHODS):
        xs = [s + (i - (len(METHODS) - 1) / 2) * width for s in range(len(settings))]
        bars = axes.bar(xs, [value.get((*setting, method), 0.0) for setting in settings], width, label=method)
        axes.bar_label(bars, fmt="%.1f", fontsize=7, padding=2, rotation=90)
    axes.set_xticks(
        range(len(settings)), [f"{corpus}\n{batching}" for corpus, batching in settings], fontsize=8
    )
    axes.set_ylabel("pad tokens / all tokens (%)")
    axes.set_ylim(0, 85)
    axes.set_title("Pad fraction per batching method (source and target)")
    axes.legend(fontsize=8)
    save(figure, path)


def strategy_plot(rows: list[dict], throughput: list[dict], path: Path) -> None:
    """Bars: training tokens/s of each strategy against naive's per setting; plus bucketed vs random per encoder."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    label = lambda row: (
        f"{row['corpus'].split('-')[0]}\n{row['encoder']} x{row['layers']}\n{row['max_tokens'] // 1024}k"
    )
    settings = list(dict.fromkeys(label(row) for row in rows))
    strategies = list(dict.fromkeys(row["strategy"] for row in rows))
    value = {(label(row), row["strategy"]): row["tokens_per_sec_vs_naive"] for row in rows}
    width = 0.8 / len(strategies)
    for i, strategy in enumerate(strategies):
        xs = [e + (i - (len(strategies) - 1) / 2) * width for e in range(len(settings))]
        left.bar(xs, [value.get((setting, strategy), 0.0) for setting in settings], width, label=strategy)
    left.axhline(1.0, color="black", lw=0.8)
    left.axhline(0.97, color="grey", lw=0.8, ls="--")
    left.set_xticks(range(len(settings)), settings, fontsize=7)
    left.set_ylim(0.5, 1.2)
    left.set_ylabel("training tokens/s vs naive (same batches)")
    left.set_title("Cost of each padding strategy (bucketed batches; dashed: 0.97x)", fontsize=10)
    left.legend(fontsize=7, ncol=len(strategies), loc="upper center")
    names = [row["encoder"] for row in throughput]
    for offset, key in ((-0.2, "bucketed"), (0.2, "random")):
        bars = right.bar(
            [i + offset for i in range(len(names))],
            [row[key]["tokens_per_sec"] for row in throughput],
            0.4,
            label=key,
        )
        right.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
    right.set_xticks(range(len(names)), names)
    right.set_title("Bucketed against random batches (issue 12)", fontsize=10)
    right.legend(fontsize=8)
    save(figure, path)


NAMES = {"ours": "ours", "opennmt": "OpenNMT-py", "fairseq": "fairseq", "joeynmt": "JoeyNMT"}
COLORS = {"ours": "C0", "opennmt": "C1", "fairseq": "C2", "joeynmt": "C3"}  # the same in every panel


def learning_curve_plot(results: Path, path: Path) -> None:
    """One panel per decoder setting: test BLEU of the newest checkpoint at each second, one line per toolkit."""
    curves: dict[bool, dict[str, list[dict]]] = {}  # input feeding -> framework -> its curve
    for file in sorted(results.glob("peers*.json")):
        for row in json.loads(file.read_text()):
            if row.get("curve") and not row.get("corpus"):  # the bundled task's runs (no --data overrides)
                curves.setdefault(row["input_feeding"], {})[row["framework"]] = row["curve"]
    if not curves:
        return
    figure, panels = plt.subplots(1, len(curves), figsize=(5 * len(curves), 4), squeeze=False)
    for axes, (feeding, by_tool) in zip(panels[0], sorted(curves.items(), reverse=True), strict=True):
        setting = "input feeding" if feeding else "no input feeding"
        for tool, curve in sorted(by_tool.items(), key=lambda item: list(NAMES).index(item[0])):
            points = [(0, 0.0)] + [(p["at_s"], p["test_bleu"] or 0.0) for p in curve]
            axes.plot(
                *zip(*points, strict=True),
                marker="o",
                label=NAMES.get(tool, tool),
                color=COLORS.get(tool),
                lw=2.5 if tool == "ours" else 1.5,
            )
        axes.set_xlim(0, None)
        axes.set_xticks(sorted({p["at_s"] for curve in by_tool.values() for p in curve} | {0}))
        axes.set_xlabel("training seconds (2 CPU threads, start-up included)")
        axes.set_ylabel("test BLEU (greedy)")
        axes.set_ylim(0, 100)
        axes.set_title(f"Bundled task, LSTM with attention, {setting}", fontsize=10)
        axes.legend(fontsize=8)
    save(figure, path)


# The Tatoeba runs of the peers table and of the frameworks' recipes (benchmarks/README.md). The copies
# measured on other machines (`*_avx2.json`, `*_avx512.json`) are left out: one machine per figure.
TATOEBA_CURVES = [
    "peers_tatoeba.json",
    "peers_tatoeba_no_feeding.json",
    "peers_tatoeba_30min.json",
    "peers_tatoeba_recipes.json",
    "peers_tatoeba_recipes_900s.json",
    "recipes_tatoeba_30min.json",
]
RECIPES = {
    "ours-default": "ours, default recipe",
    "fairseq-transformer": "fairseq, IWSLT'14 Transformer",
    "opennmt-defaults": "OpenNMT-py, its defaults",
}


def recipe_label(row: dict) -> str:
    """A line's name: the framework and what it trained (the shared model, its own recipe, or ours with an
    experiment file chosen in the corpus overrides)."""
    experiments = [o.split("=", 1)[1] for o in row.get("corpus", []) if o.startswith("experiment=")]
    if row.get("recipe", "shared" if row["framework"] in NAMES else "own") == "shared":  # older rows: no key
        feeding = "input feeding" if row["input_feeding"] else "no input feeding"
        label = f"{NAMES.get(row['framework'], row['framework'])}, shared model, {feeding}"
    elif experiments:
        label = f"ours, experiment={experiments[0]}"
    else:
        label = RECIPES.get(row["framework"], row["framework"])
    return " ".join([label, *(row.get("overrides") or [])])  # a variant of ours is a line of its own


def tatoeba_curve_plot(results: Path, path: Path) -> None:
    """Test BLEU against minutes of training on Tatoeba, one line per framework and recipe. A recipe
    measured in several runs (e.g. to 5 and to 15 minutes) is one line through all their points."""
    lines: dict[str, dict[float, float]] = {}
    for name in TATOEBA_CURVES:
        if not (results / name).is_file():
            continue
        for row in json.loads((results / name).read_text()):
            points = lines.setdefault(recipe_label(row), {})
            points.update({p["at_s"] / 60: p["test_bleu"] or 0.0 for p in row.get("curve", [])})
    if not lines:
        return
    figure, axes = plt.subplots(figsize=(11, 4.5))
    colors = plt.get_cmap("tab20").colors  # more lines than the default cycle's 10 colours
    for (label, points), color in zip(sorted(lines.items()), colors, strict=False):
        xs = [0.0, *sorted(points)]
        ours = label.startswith("ours")
        axes.plot(
            xs,
            [0.0, *(points[x] for x in xs[1:])],
            marker="o",
            label=label,
            lw=2.5 if ours else 1.5,
            ls="-" if ours else "--",
            color=color,
        )
    axes.set_xlim(0, None)
    axes.set_xlabel("minutes of training (2 threads of a 2-core CPU, start-up included)")
    axes.set_ylabel("tatoeba-test BLEU (greedy, newest checkpoint)")
    axes.set_title("Tatoeba German-English (154k pairs, 8,000 joint pieces)", fontsize=10)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    save(figure, path)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--docs", type=Path, default=PROJECT_ROOT / "docs")
    args = parser.parse_args()
    read = lambda name: json.loads((args.results / name).read_text())
    pad_fraction_plot(read("pad_fraction.json"), args.docs / "pad_fraction.png")
    strategy_plot(read("strategy_cost.json"), read("throughput.json"), args.docs / "tokens_per_sec.png")
    learning_curve_plot(args.results, args.docs / "learning_curve.png")
    tatoeba_curve_plot(args.results, args.docs / "learning_curve_tatoeba.png")


if __name__ == "__main__":
    main()
