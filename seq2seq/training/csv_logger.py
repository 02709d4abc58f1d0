"""Lightning's CSV logger, except that a resumed run continues `metrics.csv` instead of deleting it."""

from __future__ import annotations

import csv
import os

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


class _ContinuingWriter(ExperimentWriter):
    """Keeps an earlier run's rows that come before this run's first logged step.

    A run resumed from step N logs steps N, N+1, ...; rows of the interrupted run up to N-1 stay, and
    rows it logged after its last checkpoint (it may have been killed later) are replaced. A fresh
    run starts at step 0 and so replaces everything, as Lightning's writer does.
    """

    def _check_log_dir_exists(self) -> None:
        self._earlier: list[dict[str, str]] = []
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as handle:
                self._earlier = list(csv.DictReader(handle))
            os.remove(self.metrics_file_path)  # rewritten, with the kept rows, at the first save

    def save(self) -> None:
        if self._earlier and self.metrics:
            first = min(int(row["step"]) for row in self.metrics)
            kept = [
                row
                for row in self._earlier
                if row.get("step") not in (None, "") and int(float(row["step"])) < first
            ]
            self._earlier = []
            if kept:
                self.metrics_keys = sorted(set().union(*kept))
                with open(self.metrics_file_path, "w", newline="") as handle:
                    writer = csv.DictWriter(handle, fieldnames=self.metrics_keys)
                    writer.writeheader()
                    writer.writerows(kept)
        super().save()


class ContinuingCSVLogger(CSVLogger):
    """`CSVLogger` whose `metrics.csv` survives a resume in the same run folder (see `_ContinuingWriter`).

    The writer exists on global rank 0 only, as Lightning's own (`rank_zero_experiment`): a writer on
    every rank had each of them read and delete the file on resume, and a rank that lost that race
    crashed the run (FileNotFoundError) or left rank 0 without the earlier rows.
    """

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._experiment = _ContinuingWriter(log_dir=self.log_dir)
        return self._experiment
