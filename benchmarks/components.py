"""Does every model option learn? Test BLEU of each user-selectable component on the bundled task.

Each row is one `python train.py` run of the default recipe with that row's overrides, for the same
number of epochs and the same seed, so the rows differ only in the option they name. Run from the
repository root::

    python benchmarks/components.py                       # every row, 2 epochs; results/components.json
    python benchmarks/components.py --rows default attention --epochs 1

Rows already in the JSON file are kept and skipped unless --rerun is given, so a long table can be
filled in over several sessions; each row records the commit it was trained at. `--seeds` trains each
row once per seed and reports the mean and range; on a real corpus (`--overrides data=parallel ...`) one
seed cannot tell a robust option from a lucky one::

    T="data=parallel data.path=../shared/data/tatoeba-deu-eng data.src_lang=de data.tgt_lang=en"
    python benchmarks/components.py --epochs 3 --seeds 1234 7 42 --overrides $T \
        --out benchmarks/results/components_tatoeba.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import RESULTS, git_commit, write_json

ROOT = Path(__file__).resolve().parent.parent

# (name, overrides, what the row shows). `none` is the no-attention baseline and is expected to be low.
ROWS: list[tuple[str, list[str], str]] = [
    ("default", [], "bi-LSTM encoder, LSTM decoder, Luong attention, bridge"),
    ("encoder=gru", ["encoder=gru"], "bi-GRU encoder (LSTM decoder)"),
    ("encoder=attention", ["encoder=attention"], "Transformer encoder (with scaled dot-product attention)"),
    ("decoder=gru", ["decoder=gru"], "GRU decoder"),
    ("encoder=gru decoder=gru", ["encoder=gru", "decoder=gru"], "the GRU recipe"),
    ("decoder/attention=bahdanau", ["decoder/attention=bahdanau"], "additive attention"),
    (
        "decoder/attention=dot",
        ["decoder/attention=dot"],
        "dot-product attention (decoder 256 = memory 2 x 128)",
    ),
    (
        "decoder/attention=scaled_dot",
        ["decoder/attention=scaled_dot"],
        "scaled dot-product attention (decoder 256 = memory 2 x 128)",
    ),
    ("decoder/attention=none", ["decoder/attention=none"], "no attention: the baseline, expected low"),
    ("decoder/init=learned", ["decoder/init=learned"], "one learned initial state"),
    ("decoder/init=zeros", ["decoder/init=zeros"], "zero initial state"),
    ("decoder.input_feeding=true", ["decoder.input_feeding=true"], "input feeding"),
    (
        "share_embeddings",
        ["model.net.share_embeddings=true"],
        "one embedding table for both sides (joint vocabulary)",
    ),
    (
        "tie_embeddings",
        ["model.net.tie_embeddings=true", "decoder.hidden_size=128"],
        "output layer = target embedding (decoder 128)",
    ),
    ("scheduler=cosine", ["scheduler=cosine"], "cosine decay over the run's budget, no warm-up"),
    (
        "scheduler=inverse_sqrt",
        ["scheduler=inverse_sqrt", "model.warmup_steps=200"],
        "200-step warm-up, then inverse square root",
    ),
    ("scheduler=cooldown", ["scheduler=cooldown"], "the rate held, then a line down over the last 20%"),
    ("averaging=ema", ["averaging=ema"], "EMA of the weights (decay warmed up to 0.999)"),
    (
        "scheduler=cosine averaging=ema",
        ["scheduler=cosine", "averaging=ema"],
        "cosine decay and the EMA together",
    ),
]


def train_row(overrides: list[str], epochs: int, log: Path) -> dict:
    """One training run in a temporary folder -> its results.json."""
    with tempfile.TemporaryDirectory() as run_dir:
        return train_run(Path(run_dir), overrides, epochs, log)


def train_run(run_dir: Path, overrides: list[str], epochs: int, log: Path) -> dict:
    """`python train.py` with `overrides` for `epochs` epochs in `run_dir`, its output in `log` -> results.json."""
    command = [
        sys.executable,
        "train.py",
        f"hydra.run.dir={run_dir}",
        f"trainer.max_epochs={epochs}",
        "trainer.enable_progress_bar=false",
        *overrides,
    ]
    with log.open("w") as out:
        done = subprocess.run(
            command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy(), check=False
        )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit code {done.returncode}; see {log}")
    return json.loads((run_dir / "results.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="*", help="row names (default: all); see ROWS in this file")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rerun", action="store_true", help="train rows that the JSON file already holds")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1234], help="one run per seed and row")
    parser.add_argument("--out", type=Path, default=RESULTS / "components.json")
    parser.add_argument(
        "--overrides", nargs="*", default=[], help="added to every row, e.g. debug=tiny for a smoke run"
    )
    args = parser.parse_args()
    known = {name for name, _, _ in ROWS}
    unknown = set(args.rows or []) - known
    if unknown:
        raise SystemExit(f"unknown rows {sorted(unknown)}; choose from: {', '.join(sorted(known))}")
    table = json.loads(args.out.read_text()) if args.out.exists() else {"epochs": args.epochs, "rows": {}}
    if table["epochs"] != args.epochs:
        raise SystemExit(
            f"{args.out} holds {table['epochs']}-epoch rows; pass --epochs {table['epochs']} or another --out"
        )
    logs = Path(tempfile.mkdtemp(prefix="components-"))
    for name, overrides, what in ROWS:
        if args.rows and name not in args.rows:
            continue
        row = table["rows"].get(name, {})
        runs = {} if args.rerun else seed_runs(row)
        for seed in args.seeds:
            if str(seed) in runs:
                continue
            print(f"training {name} ({' '.join(overrides) or 'no overrides'}), seed {seed} ...", flush=True)
            results = train_row(
                [*overrides, *args.overrides, f"seed={seed}"],
                args.epochs,
                logs / f"{name.replace('/', '_').replace(' ', '_')}_{seed}.log",
            )
            runs[str(seed)] = {
                "commit": git_commit(),
                **({"extra_overrides": args.overrides} if args.overrides else {}),  # e.g. the corpus
                **{key: results[key] for key in RESULT_KEYS},
            }
            table["rows"][name] = {"overrides": overrides, "what": what, "seeds": runs, **summary(runs)}
            write_json(args.out, table)  # after every run: an interrupted table keeps what it has
    print_table(table)


def seed_runs(row: dict) -> dict[str, dict]:
    """The row's runs by seed; a row written before --seeds existed is one run of the default seed, 1234."""
    if not row or "seeds" in row:
        return dict(row.get("seeds", {}))
    return {"1234": {key: value for key, value in row.items() if key not in ("overrides", "what")}}


RESULT_KEYS = ("test/bleu", "val/bleu", "test/exact_match", "steps", "wall_time_s", "train/tokens_per_sec")


def summary(runs: dict[str, dict]) -> dict:
    """Mean, lowest and highest of each score over the seeds' runs (the row's headline figures)."""
    found = {}
    for key in ("test/bleu", "val/bleu", "test/exact_match"):
        values = [run[key] for run in runs.values()]
        found[key] = sum(values) / len(values)
        found[f"{key}_range"] = [min(values), max(values)]
    return found


def print_table(table: dict) -> None:
    """The README's table: one row per option, in ROWS order; several seeds give mean (lowest-highest)."""
    print(f"\n{table['epochs']} epochs\n")
    print("| option | overrides | seeds | test BLEU | val BLEU | test exact match |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, _, _ in ROWS:
        row = table["rows"].get(name)
        if not row:
            continue
        overrides = " ".join(f"`{o}`" for o in row["overrides"]) or "(none)"
        cells = [score(row, key) for key in ("test/bleu", "val/bleu", "test/exact_match")]
        print(f"| {name} | {overrides} | {len(row.get('seeds', {})) or 1} | {' | '.join(cells)} |")


def score(row: dict, key: str) -> str:
    low, high = row.get(f"{key}_range", [row[key], row[key]])
    precision = 1 if key.endswith("exact_match") else 2
    spread = f" ({low:.{precision}f}-{high:.{precision}f})" if high > low else ""
    return f"{row[key]:.{precision}f}{spread}"


if __name__ == "__main__":
    main()
