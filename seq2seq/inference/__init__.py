"""Using trained models: translating and scoring text with a model loaded from its checkpoint.

Above `training`, which owns the checkpoint format (`seq2seq.training.checkpoint`) and the metrics.
"""
