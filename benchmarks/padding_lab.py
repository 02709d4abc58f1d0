"""The padding lab: when does padding change what a model produces, and by how much?

Trains a grid of models with `train.py` (strategy x decoder attention x encoder x batching), then
evaluates every checkpoint with the pad fraction as a dial: the test sources are decoded in
length-sorted batches whose padded width is stretched until about 0, 25, 50, 75 and 90% of the
source slots are pads (what a long companion in the batch does to everyone else), and compared with
the same model translating each sentence alone. Per pad level it records BLEU, the share of
translations that differ from batch size 1, and the largest change of a reference's
log-probability. For the recurrent encoders each checkpoint is also decoded with every other
strategy (trained with one, served with another) at the 50% level.

`masking_outputs` is `masking` as it was before it became exact for bidirectional RNNs: the baseline
that keeps its harm reproducible. Cells that would repeat another are skipped: `masking_outputs`,
`packing` and `state_reset` change how an RNN runs, so on the attention encoder they are `masking`
again, and so is `masking_outputs` on the unidirectional LSTM. Run from the repository root::

    python benchmarks/padding_lab.py --rerun                  # the whole grid again; results/padding_lab.json
    python benchmarks/padding_lab.py                          # only the cells the JSON file lacks
    python benchmarks/padding_lab.py --plot-only              # figures and tables from the JSON file again
    python benchmarks/padding_lab.py --encoders bilstm --limit 300 --out runs/lab.json \
        --overrides data=parallel data.path=DIR data.src_lang=de data.tgt_lang=en   # another corpus

Cells already in the JSON file are kept unless --rerun is given, so the grid can be filled in over
several sessions. Each model is evaluated on the test split of the corpus it was trained on.
Figures: docs/padding_lab_bleu.png and docs/padding_lab_changed.png for the default --out, else beside
the JSON file (training speed per strategy: docs/tokens_per_sec.png, from benchmarks/strategy_cost.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import torch
from common import RESULTS, STRATEGY_NAMES, padding_strategy, write_json
from components import train_run
from plots import save

from seq2seq.config import PROJECT_ROOT
from seq2seq.data.batch import Batch, collate
from seq2seq.data.corpus import read_parallel
from seq2seq.data.vocab import PAD_ID
from seq2seq.models.loss import sentence_nll
from seq2seq.models.search import greedy_search
from seq2seq.training.checkpoint import LoadedModel, load_checkpoint
from seq2seq.training.metrics import corpus_bleu

ENCODERS = {
    "bilstm": ["encoder=lstm"],
    "lstm": ["encoder=lstm", "encoder.rnn.bidirectional=false", "encoder.hidden_size=256"],
    "bigru": ["encoder=gru"],
    "attention": ["encoder=attention"],
}
ATTENTION = {"attention": [], "none": ["decoder/attention=none"]}  # "attention": the encoder's default
BATCHING = {"bucketed": [], "random": ["data.bucketing=false"]}
STRATEGIES = STRATEGY_NAMES
RECURRENT_ONLY = {"masking_outputs", "packing", "state_reset"}  # on the attention encoder: masking again
BIDIRECTIONAL = {"bilstm", "bigru"}  # masking_outputs differs from masking only where an RNN reads backwards
EXACT_TOLERANCE = 1e-3  # largest change of a reference's log-probability still counted as float rounding
PAD_LEVELS = [0.0, 0.25, 0.5, 0.75, 0.9]
MATRIX_LEVEL = 0.5
DOCS = PROJECT_ROOT / "docs"
STUDY = RESULTS / "padding_lab.json"  # the study the README shows; its figures go to DOCS


@dataclasses.dataclass(frozen=True)
class Cell:
    """One setting of the lab's grid: encoder, attention, batching and strategy."""

    encoder: str
    attention: str
    batching: str
    strategy: str

    @property
    def name(self) -> str:
        return f"{self.encoder}/{self.attention}/{self.batching}/{self.strategy}"

    def overrides(self) -> list[str]:
        return [
            *ENCODERS[self.encoder],
            *ATTENTION[self.attention],
            *BATCHING[self.batching],
            f"strategy={self.strategy}",
        ]


def grid(
    encoders: list[str], attentions: list[str], batchings: list[str], strategies: list[str]
) -> list[Cell]:
    """Every cell of the study, without the repeats (see the module docstring)."""
    return [
        Cell(encoder, attention, batching, strategy)
        for encoder in encoders
        for attention in attentions
        for batching in batchings
        for strategy in strategies
        if not (encoder == "attention" and strategy in RECURRENT_ONLY)
        and not (strategy == "masking_outputs" and encoder not in BIDIRECTIONAL)
    ]


def train(cell: Cell, epochs: int, extra: list[str], run_dir: Path) -> dict:
    """One `train.py` run -> its results.json (the kept checkpoint included); its output in run_dir/train.log."""
    run_dir.mkdir(parents=True, exist_ok=True)
    overrides = ["test=false", "logger=none", *cell.overrides(), *extra]
    return train_run(run_dir, overrides, epochs, run_dir / "train.log")


def widened(batch: Batch, width: int) -> Batch:
    """The batch with its sources padded on the right to `width` positions (a longer companion's effect)."""
    extra = width - batch.src.size(1)
    if extra <= 0:
        return batch
    pads = batch.src.new_full((len(batch), extra), PAD_ID)
    return dataclasses.replace(
        batch,
        src=torch.cat([batch.src, pads], dim=1),
        src_mask=torch.cat([batch.src_mask, pads != PAD_ID], dim=1),
    )


def padded_batches(pairs: list[tuple[int, list[int], list[int]]], level: float, size: int) -> list[Batch]:
    """Length-sorted batches of `size` pairs whose sources are widened to about `level` pad fraction.

    Level 0 is batch size 1: every sentence alone, the reference for "changed".
    """
    if level == 0.0:
        return [collate([pair]) for pair in pairs]
    ordered = sorted(pairs, key=lambda pair: len(pair[1]))
    batches = []
    for start in range(0, len(ordered), size):
        batch = collate(ordered[start : start + size])
        real = int(batch.src_lengths.sum())
        # width w with 1 - real / (B * w) = level
        batches.append(widened(batch, math.ceil(real / (len(batch) * (1.0 - level)))))
    return batches


@torch.no_grad()
def evaluate(loaded: LoadedModel, pairs, references: list[str], level: float, size: int) -> dict:
    """BLEU, translations and reference log-probabilities of the test pairs decoded at one pad level."""
    hypotheses: dict[int, list[int]] = {}
    scores: dict[int, float] = {}
    slots = real = 0
    for batch in padded_batches(pairs, level, size):
        slots, real = slots + batch.src.numel(), real + int(batch.src_lengths.sum())
        found = greedy_search(loaded.net, batch.src, batch.src_lengths, batch.src_mask)
        nll = sentence_nll(*loaded.net.teacher_forced(batch, batch.tgt_mask), batch.tgt_mask)
        for index, hypothesis, value in zip(batch.indices.tolist(), found, nll.tolist(), strict=True):
            hypotheses[index], scores[index] = hypothesis.tokens, -value
    order = sorted(hypotheses)
    texts = loaded.vocabs.tgt.decode([hypotheses[i] for i in order])
    return {
        "pad_fraction": 1.0 - real / slots,
        "bleu": corpus_bleu(texts, [references[i] for i in order]),
        "texts": texts,
        "scores": [scores[i] for i in order],
    }


def dial(loaded: LoadedModel, pairs, references: list[str], size: int) -> list[dict]:
    """One row per pad level, each compared with batch size 1 (level 0)."""
    alone = evaluate(loaded, pairs, references, 0.0, size)
    rows = []
    for level in PAD_LEVELS:
        found = alone if level == 0.0 else evaluate(loaded, pairs, references, level, size)
        rows.append(
            {
                "level": level,
                "pad_fraction": found["pad_fraction"],
                "bleu": found["bleu"],
                "changed": sum(a != b for a, b in zip(found["texts"], alone["texts"], strict=True))
                / len(pairs),
                "max_logprob_change": max(
                    abs(a - b) for a, b in zip(found["scores"], alone["scores"], strict=True)
                ),
            }
        )
    return rows


def claims_exact(cell: Cell) -> bool:
    """What the README promises: masking, packing and state_reset are exact (masking_outputs runs only
    where it is not, on bidirectional RNNs)."""
    return padding_strategy(cell.strategy).exact


def use_strategy(loaded: LoadedModel, name: str) -> None:
    """Serves the trained weights with another padding strategy."""
    loaded.net.set_padding(padding_strategy(name))


def study_cell(cell: Cell, loaded: LoadedModel, pairs, references: list[str], size: int) -> dict:
    found = {"dial": dial(loaded, pairs, references, size), "claims_exact": claims_exact(cell)}
    # Exact means equal scores to float rounding; a near-tie in greedy search may still flip a word.
    found["exact_holds"] = all(row["max_logprob_change"] <= EXACT_TOLERANCE for row in found["dial"])
    if cell.encoder != "attention":
        matrix = {}
        alone = found["dial"][0]["bleu"]
        for name in STRATEGIES:
            use_strategy(loaded, name)
            served = evaluate(loaded, pairs, references, MATRIX_LEVEL, size)
            matrix[name] = {"bleu": served["bleu"], "bleu_lost": alone - served["bleu"]}
        found["served_with"] = matrix
    return found


def test_pairs(limit: int | None, loaded: LoadedModel) -> tuple[list, list[str], Path]:
    """The first `limit` pairs of the test split of the corpus the model was trained on, and its file."""
    data = loaded.config.data
    text = read_parallel(data.path, "test", data.src_lang, data.tgt_lang)
    sources, references = text.src[:limit], text.tgt[:limit]
    src = loaded.vocabs.src.encode(sources)
    tgt = loaded.vocabs.tgt.encode(references)
    return [(i, s, t) for i, (s, t) in enumerate(zip(src, tgt, strict=True))], references, text.src_path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoders", nargs="+", default=list(ENCODERS), choices=list(ENCODERS))
    parser.add_argument("--attention", nargs="+", default=list(ATTENTION), choices=list(ATTENTION))
    parser.add_argument("--batching", nargs="+", default=list(BATCHING), choices=list(BATCHING))
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    parser.add_argument("--epochs", type=int, default=1, help="training epochs per cell")
    parser.add_argument("--limit", type=int, default=500, help="test pairs evaluated (the first N)")
    parser.add_argument("--batch-size", type=int, default=32, help="sentences per padded test batch")
    parser.add_argument("--overrides", nargs="*", default=[], help="added to every training run")
    parser.add_argument("--rerun", action="store_true", help="train cells the JSON file already holds")
    parser.add_argument("--plot-only", action="store_true")
    parser.add_argument("--out", type=Path, default=STUDY)
    parser.add_argument(
        "--docs", type=Path, help="where the figures go: docs/ for the default --out, else beside --out"
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    # A study of one's own must not overwrite the figures the README shows.
    docs = args.docs or (DOCS if args.out == STUDY else args.out.parent)
    study = json.loads(args.out.read_text()) if args.out.exists() else {"cells": {}}
    settings = {
        "epochs": args.epochs,
        "limit": args.limit,
        "batch_size": args.batch_size,
        "overrides": args.overrides,
    }
    if not args.plot_only:
        if study["cells"] and study.get("settings") != settings:
            raise SystemExit(
                f"{args.out} holds cells made with {study.get('settings')}; pass those or another --out"
            )
        study["settings"] = settings
        for cell in grid(args.encoders, args.attention, args.batching, args.strategies):
            if cell.name in study["cells"] and not args.rerun:
                continue
            print(f"training {cell.name} ...", flush=True)
            study["cells"][cell.name] = run_cell(cell, args)
            write_json(args.out, study)  # after every cell: an interrupted study keeps what it has
            print_cell(cell.name, study["cells"][cell.name])
    plot(study, docs)
    print(summary_table(study))


def run_cell(cell: Cell, args: argparse.Namespace) -> dict:
    """Trains `cell` in a temporary run folder and studies its best checkpoint on the test pairs."""
    with tempfile.TemporaryDirectory() as run_dir:
        results = train(cell, args.epochs, args.overrides, Path(run_dir))
        loaded = load_checkpoint(results["best_checkpoint"])
        pairs, references, test_file = test_pairs(args.limit, loaded)
        found = study_cell(cell, loaded, pairs, references, args.batch_size)
    return {
        **dataclasses.asdict(cell),
        "val_bleu": results["val/bleu"],
        "tokens_per_sec": results.get("train/tokens_per_sec"),
        "train_pad_fraction": results.get("train/pad_fraction"),
        "wall_time_s": results["wall_time_s"],
        "test_file": str(test_file),
        **found,
    }


def summary_table(study: dict) -> str:
    """The README's table: per cell, BLEU alone and at 90% pads, translations changed, exactness."""
    columns = [
        "encoder",
        "attention",
        "batching",
        "strategy",
        "BLEU alone",
        "BLEU at 50% / 90% pads",
        "changed at 50% / 90%",
        "largest log-prob change",
        "exact?",
    ]
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for c in study["cells"].values():
        alone, half, most = c["dial"][0], c["dial"][2], c["dial"][-1]
        largest = max(row["max_logprob_change"] for row in c["dial"])
        exact = ("yes" if c["exact_holds"] else "**BROKEN**") if c["claims_exact"] else "not claimed"
        lines.append(
            f"| {c['encoder']} | {c['attention']} | {c['batching']} | {c['strategy']} | {alone['bleu']:.1f} "
            f"| {half['bleu']:.1f} / {most['bleu']:.1f} | {half['changed']:.0%} / {most['changed']:.0%} "
            f"| {largest:.1e} | {exact} |"
        )
    served = [c for c in study["cells"].values() if "served_with" in c]
    if served:
        lines += [
            "",
            f"BLEU lost at {MATRIX_LEVEL:.0%} pads when served with another strategy (trained with the row's):",
            "",
            "| encoder | attention | batching | trained with | " + " | ".join(STRATEGIES) + " |",
            "|" + " --- |" * (4 + len(STRATEGIES)),
        ]
        for c in served:
            served_with = c["served_with"]  # cells measured before a strategy existed lack its column
            losses = " | ".join(
                f"{served_with[name]['bleu_lost']:+.1f}" if name in served_with else "n/a"
                for name in STRATEGIES
            )
            lines.append(
                f"| {c['encoder']} | {c['attention']} | {c['batching']} | {c['strategy']} | {losses} |"
            )
    return "\n".join(lines)


def print_cell(name: str, cell: dict) -> None:
    dial_text = "  ".join(
        f"{row['level']:.0%}: {row['bleu']:.1f} ({row['changed']:.0%} changed)" for row in cell["dial"]
    )
    exact = (
        "" if not cell["claims_exact"] else ("; exact: holds" if cell["exact_holds"] else "; exact: BROKEN")
    )
    print(f"{name}: val BLEU {cell['val_bleu']:.1f}; {dial_text}{exact}")
    for name_served, served in cell.get("served_with", {}).items():
        print(
            f"    served with {name_served:<12} BLEU {served['bleu']:.1f} (lost {served['bleu_lost']:+.1f})"
        )


def plot(study: dict, docs: Path) -> None:
    """BLEU and changed translations against pad fraction, a panel per encoder and attention setting.

    Training speed per strategy is not plotted from these runs, which may share the machine with
    others: docs/tokens_per_sec.png comes from benchmarks/strategy_cost.py on an idle machine.
    """
    import matplotlib.pyplot as plt

    cells = list(study["cells"].values())
    if not cells:
        return
    encoders = [e for e in ENCODERS if any(c["encoder"] == e for c in cells)]
    attentions = [a for a in ATTENTION if any(c["attention"] == a for c in cells)]
    for key, label, name in (
        ("bleu", "test BLEU", "padding_lab_bleu"),
        ("changed", "translations changed (%)", "padding_lab_changed"),
    ):
        figure, axes = plt.subplots(
            len(attentions),
            len(encoders),
            figsize=(3.6 * len(encoders), 3.0 * len(attentions)),
            squeeze=False,
        )
        for row, attention in enumerate(attentions):
            for column, encoder in enumerate(encoders):
                axis = axes[row][column]
                panel_lines(
                    axis, [c for c in cells if (c["encoder"], c["attention"]) == (encoder, attention)], key
                )
                reads = "with decoder attention" if attention == "attention" else "no decoder attention"
                axis.set_title(f"{encoder} encoder, {reads}", fontsize=9)
                if row == len(attentions) - 1:
                    axis.set_xlabel("source pads in the test batch (%)")
                if column == 0:
                    axis.set_ylabel(label)
        handles = {}
        for axis in axes.flat:
            handles.update(zip(*reversed(axis.get_legend_handles_labels()), strict=True))
        figure.legend(
            list(handles.values()), list(handles), loc="upper center", ncol=min(len(handles), 5), fontsize=8
        )
        figure.tight_layout(rect=(0, 0, 1, 0.9))
        save(figure, docs / f"{name}.png")


def panel_lines(axis: Any, cells: list[dict], key: str) -> None:
    """One line per cell: `key` at each pad level of its dial; a colour per strategy, dashed when random-batched."""
    for c in cells:
        levels = [100 * step["pad_fraction"] for step in c["dial"]]
        values = [step[key] * (100 if key == "changed" else 1) for step in c["dial"]]
        style = "-" if c["batching"] == "bucketed" else "--"
        color = f"C{list(STRATEGIES).index(c['strategy'])}"  # one colour per strategy in every panel
        axis.plot(levels, values, style, color=color, marker="o", label=f"{c['strategy']} ({c['batching']})")


if __name__ == "__main__":
    main()
