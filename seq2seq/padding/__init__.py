"""Padding strategies, chosen by the `strategy=` config group."""

from seq2seq.padding.strategy import (
    MaskingStrategy,
    NaiveStrategy,
    PackingStrategy,
    PaddingStrategy,
    StateResetStrategy,
)

__all__ = ["MaskingStrategy", "NaiveStrategy", "PackingStrategy", "PaddingStrategy", "StateResetStrategy"]
