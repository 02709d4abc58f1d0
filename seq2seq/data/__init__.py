"""Corpora, sentencepiece vocabularies, prepared token arrays, length-bucketed batching and the DataModule."""
