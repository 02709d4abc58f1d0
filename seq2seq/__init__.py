"""seq2seq: recurrent and attention sequence-to-sequence models whose results padding never changes."""

__version__ = "0.1.0"
