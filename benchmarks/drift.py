"""Drift table: how far padding moves a sentence's encoder states, per encoder and padding strategy.

For every encoder (uni/bi LSTM and GRU, the attention encoder) and strategy, batches of real bundled-
corpus lengths are encoded once together (right-padded) and once sentence by sentence; the table gives
the largest absolute difference of the outputs at real positions and of the final states. Weights are
random (seeded): drift is a property of how pads are treated, not of training. With `--results`, the
test BLEU of trained runs (their results.json) is added per encoder and strategy.

    python benchmarks/drift.py
    python benchmarks/drift.py --results outputs/*/   # add test BLEU of finished runs (earlier ones are kept)
"""

from __future__ import annotations

import argparse
import json
import random
from functools import partial
from pathlib import Path

import torch
from common import RESULTS, STRATEGY_NAMES, padding_strategy, strategy_of_target, write_json
from omegaconf import OmegaConf
from torch import nn

from seq2seq.config import PROJECT_ROOT
from seq2seq.data.corpus import read_parallel
from seq2seq.models.encoders import RecurrentEncoder, SelfAttentionEncoder
from seq2seq.padding.drift import Drift, batch_drift

ENCODERS = {
    "lstm (uni)": partial(RecurrentEncoder, partial(nn.LSTM, num_layers=2), hidden_size=64),
    "lstm (bi)": partial(
        RecurrentEncoder, partial(nn.LSTM, num_layers=2, bidirectional=True), hidden_size=64
    ),
    "gru (uni)": partial(RecurrentEncoder, partial(nn.GRU, num_layers=2), hidden_size=64),
    "gru (bi)": partial(RecurrentEncoder, partial(nn.GRU, num_layers=2, bidirectional=True), hidden_size=64),
    "attention": partial(
        SelfAttentionEncoder, hidden_size=64, num_heads=4, num_layers=2, feedforward_size=128
    ),
}
EMBED = 32


def drift(encoder: nn.Module, batches: list[list[int]], seed: int) -> Drift:
    """The largest drift over `batches` of random embeddings with these lengths."""
    generator = torch.Generator().manual_seed(seed)
    found = [
        batch_drift(
            encoder,
            torch.randn(len(lengths), max(lengths), EMBED, generator=generator),
            torch.tensor(lengths),
        )
        for lengths in batches
    ]
    return Drift(max(d.memory for d in found), max(d.final for d in found))


def trained_bleu(folders: list[Path]) -> dict[tuple[str, str], float]:
    """(encoder kind, strategy) -> test BLEU, from finished runs' results.json and resolved config.yaml."""
    found = {}
    for folder in folders:
        results, config = folder / "results.json", folder / "config.yaml"
        if not (results.is_file() and config.is_file()):
            continue
        cfg = OmegaConf.load(config)
        strategy = strategy_of_target(cfg.strategy._target_)
        rnn = cfg.encoder.get("rnn")
        encoder = "attention" if rnn is None else rnn._target_.rsplit(".", 1)[-1].lower()
        found[(encoder, strategy)] = json.loads(results.read_text()).get("test/bleu")
    return found


def main() -> None:
    args = parse_args()
    text = read_parallel(PROJECT_ROOT / "data" / "bundled", "valid", "src", "tgt")
    corpus_lengths = [len(s.split()) + 1 for s in text.src]
    rng = random.Random(args.seed)
    batches = [rng.sample(corpus_lengths, args.batch_size) for _ in range(args.batches)]
    bleu = earlier_bleu(args.out) | trained_bleu(args.results)
    rows = []
    print(f"{'encoder':<12} {'strategy':<16} {'max |d output|':>15} {'max |d final|':>14} {'test BLEU':>10}")
    for encoder_name, build in ENCODERS.items():
        for strategy_name in STRATEGY_NAMES:
            torch.manual_seed(args.seed)
            encoder = build(input_size=EMBED, padding=padding_strategy(strategy_name)).eval()
            found = drift(encoder, batches, args.seed)
            trained = "(bi)" in encoder_name or encoder_name == "attention"  # the encoders runs exist for
            score = bleu.get((encoder_name.split()[0], strategy_name)) if trained else None
            rows.append(
                {
                    "encoder": encoder_name,
                    "strategy": strategy_name,
                    "output_drift": found.memory,
                    "final_drift": found.final,
                    "test_bleu": score,
                }
            )
            shown = f"{score:.1f}" if score is not None else "-"
            print(
                f"{encoder_name:<12} {strategy_name:<16} {found.memory:>15.2e} {found.final:>14.2e} {shown:>10}"
            )
    write_json(args.out, rows)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=8, help="batches of real corpus lengths")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--results", nargs="*", type=Path, default=[], help="run folders whose test BLEU to add"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "drift.json")
    return parser.parse_args()


def earlier_bleu(out: Path) -> dict[tuple[str, str], float]:
    """The test BLEU that `out` holds from runs measured earlier (a full run takes minutes): kept unless replaced."""
    earlier = json.loads(out.read_text()) if out.is_file() else []
    return {
        (row["encoder"].split()[0], row["strategy"]): row["test_bleu"]
        for row in earlier
        if row.get("test_bleu") is not None
    }


if __name__ == "__main__":
    main()
