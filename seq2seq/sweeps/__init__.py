"""Hyperparameter sweeps: the resumable Optuna sweeper for Hydra, search spaces and the sweep summary."""
