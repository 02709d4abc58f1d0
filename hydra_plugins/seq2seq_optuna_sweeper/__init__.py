"""Hydra finds sweepers only under the `hydra_plugins` namespace; the implementation lives in seq2seq.sweeps."""

from seq2seq.sweeps import optuna_sweeper


class OptunaSweeper(optuna_sweeper.StudySweeper):
    """`hydra/sweeper=optuna`: see `seq2seq.sweeps.optuna_sweeper.StudySweeper`."""
