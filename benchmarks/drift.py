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
from common import STRATEGY_NAMES, padding_strategy, strategy_of_target
from omegaconf import OmegaConf
from torch import nn

from seq2seq.config import PROJECT_ROOT
from seq2seq.data.corpus import read_parallel
from seq2seq.files import atomic_write_bytes
from seq2seq.models.encoders import RecurrentEncoder, SelfAttentionEncoder
from seq2seq.padding.strategy import lengths_mask

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


@torch.no_grad()
def drift(encoder: nn.Module, batches: list[list[int]], seed: int) -> tuple[float, float]:
    """Largest |together - alone| over outputs at real positions, and over final states."""
    generator = torch.Generator().manual_seed(seed)
    worst_out = worst_final = 0.0
    for lengths in batches:
        x = torch.randn(len(lengths), max(lengths), EMBED, generator=generator)
        lengths_t = torch.tensor(lengths)
        together = encoder(x, lengths_t, lengths_mask(lengths_t, x.size(1)))
        for i, n in enumerate(lengths):
            alone = encoder(x[i : i + 1, :n], lengths_t[i : i + 1], torch.ones(1, n, dtype=torch.bool))
            worst_out = max(worst_out, (together.memory[i, :n] - alone.memory[0]).abs().max().item())
            worst_final = max(worst_final, (together.final[i] - alone.final[0]).abs().max().item())
    return worst_out, worst_final


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
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=8, help="batches of real corpus lengths")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--results", nargs="*", type=Path, default=[], help="run folders whose test BLEU to add"
    )
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "benchmarks" / "results" / "drift.json")
    args = parser.parse_args()
    text = read_parallel(PROJECT_ROOT / "data" / "bundled", "valid", "src", "tgt")
    corpus_lengths = [len(s.split()) + 1 for s in text.src]
    rng = random.Random(args.seed)
    batches = [rng.sample(corpus_lengths, args.batch_size) for _ in range(args.batches)]
    # Test BLEU of runs measured earlier stays unless a run given now replaces it (a full run takes minutes).
    earlier = json.loads(args.out.read_text()) if args.out.is_file() else []
    bleu = {
        (row["encoder"].split()[0], row["strategy"]): row["test_bleu"]
        for row in earlier
        if row.get("test_bleu") is not None
    }
    bleu |= trained_bleu(args.results)
    rows = []
    print(f"{'encoder':<12} {'strategy':<16} {'max |d output|':>15} {'max |d final|':>14} {'test BLEU':>10}")
    for encoder_name, build in ENCODERS.items():
        for strategy_name in STRATEGY_NAMES:
            torch.manual_seed(args.seed)
            encoder = build(input_size=EMBED, padding=padding_strategy(strategy_name)).eval()
            out_drift, final_drift = drift(encoder, batches, args.seed)
            score = (
                bleu.get((encoder_name.split()[0], strategy_name))
                if "(bi)" in encoder_name or encoder_name == "attention"
                else None
            )
            rows.append(
                {
                    "encoder": encoder_name,
                    "strategy": strategy_name,
                    "output_drift": out_drift,
                    "final_drift": final_drift,
                    "test_bleu": score,
                }
            )
            shown = f"{score:.1f}" if score is not None else "-"
            print(
                f"{encoder_name:<12} {strategy_name:<16} {out_drift:>15.2e} {final_drift:>14.2e} {shown:>10}"
            )
    atomic_write_bytes(args.out, (json.dumps(rows, indent=2) + "\n").encode())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
