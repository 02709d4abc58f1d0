"""Padding strategies, chosen by the `strategy=` config group."""

from seq2seq.padding.strategy import (
    MaskingOutputsStrategy,
    MaskingStrategy,
    NaiveStrategy,
    PackingStrategy,
    PaddingStrategy,
    StateResetStrategy,
)

__all__ = [
    "MaskingOutputsStrategy",
    "MaskingStrategy",
    "NaiveStrategy",
    "PackingStrategy",
    "PaddingStrategy",
    "StateResetStrategy",
]
