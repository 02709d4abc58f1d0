"""Tensor operations that padding strategies and models share: RNN cell equations, precision helpers.

The lowest layer of the package after data: it imports nothing of seq2seq, so that `padding` and
`models` can both build on it (tests/unit/test_layers.py checks the direction of every import).
"""
