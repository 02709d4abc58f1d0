"""A Hydra sweeper that runs an Optuna study stored in a database, resuming where it stopped.

Why our own instead of hydra-optuna-sweeper 1.3.0: that plugin needs optuna<3 (and with it
SQLAlchemy<2 and alembic<1.14 for SQLite storage), and it launches `n_trials` new trials on every
start whatever the study already holds, so a restarted sweep overshoots. This one runs on current
Optuna, treats `n_trials` as the size of the study, retries trials that a killed sweep left running
with the same parameters, and records a failed trial as failed without stopping the sweep.

One sweep process drives a study at a time; trials run in parallel through the launcher (`n_jobs`
trials per batch, e.g. as SLURM jobs with `hydra/launcher=slurm`).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from seq2seq.errors import InputError
from seq2seq.files import atomic_write_bytes
from seq2seq.sweeps.search_space import split_overrides

log = logging.getLogger(__name__)

RETRY_OF = "retry_of"  # user attribute: the number of the interrupted trial that a trial reruns


class StudySweeper(Sweeper):
    """Runs `n_trials` trials in all of an Optuna study, each a Hydra job whose return value is the objective.

    Args:
        study_name: the study in `storage`; created on the first start, continued afterwards.
        storage: an Optuna storage URL (e.g. `sqlite:///path/study.sqlite`), or None for in-memory (no resume).
        direction: "maximize" or "minimize" the task's return value.
        n_trials: trials the study should hold when the sweep ends (completed, pruned or failed).
        n_jobs: trials launched together in one batch.
        sampler: an Optuna sampler (instantiated from config), or None for Optuna's default.
        params: search space as Hydra sweep overrides, e.g. `{model.optimizer.lr: tag(log, interval(1e-4, 1e-2))}`.
    """

    def __init__(
        self,
        study_name: str,
        storage: str | None,
        direction: str = "maximize",
        n_trials: int = 20,
        n_jobs: int = 1,
        sampler: optuna.samplers.BaseSampler | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.study_name, self.storage, self.direction = study_name, storage, direction
        self.n_trials, self.n_jobs = n_trials, max(1, n_jobs)
        self.sampler = sampler
        self.params = dict(params or {})
        self.config: DictConfig | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> list[JobReturn]:
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        lines = [f"{key}={value}" for key, value in self.params.items()] + list(arguments)
        fixed, space = split_overrides(lines, parser)
        if not space:
            raise InputError(
                "hydra.sweeper.params is empty: give the search space, e.g. model.optimizer.lr='interval(1e-4,1e-2)'"
            )
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")

        study = self._load_study()
        if study.get_trials(deepcopy=False) and self.sampler is not None:
            # A seeded sampler restarted on a study would propose its first trials' parameters again.
            study.sampler.reseed_rng()
        self._retry_interrupted(study)
        done = len(counted_trials(study))
        log.info(
            "study %r holds %d of %d trials; %s",
            self.study_name,
            done,
            self.n_trials,
            "nothing to run" if done >= self.n_trials else f"running {self.n_trials - done}",
        )
        returns: list[JobReturn] = []
        while (remaining := self.n_trials - len(counted_trials(study))) > 0:
            trials = [study.ask(space) for _ in range(min(self.n_jobs, remaining))]
            batch = [fixed + [f"{key}={value}" for key, value in trial.params.items()] for trial in trials]
            self.validate_batch_is_legal(batch)
            results = self.launcher.launch(batch, initial_job_idx=trials[0].number)
            for trial, result in zip(trials, results, strict=True):
                self._tell(study, trial, result)
            returns.extend(results)
        self._write_summary(study, sweep_dir)
        return returns

    def _load_study(self) -> optuna.Study:
        if self.storage and self.storage.startswith("sqlite:///"):
            Path(self.storage.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return optuna.create_study(
            study_name=self.study_name,
            storage=self.storage,
            sampler=self.sampler,
            direction=self.direction,
            load_if_exists=True,
        )

    def _retry_interrupted(self, study: optuna.Study) -> None:
        """Trials left RUNNING by a killed sweep are marked failed and queued again with the same parameters."""
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study.tell(trial.number, state=TrialState.FAIL)
            study.enqueue_trial(trial.params, user_attrs={RETRY_OF: trial.number}, skip_if_exists=False)
            log.warning(
                "trial %d was interrupted (the sweep stopped while it ran): queued again", trial.number
            )

    def _tell(self, study: optuna.Study, trial: optuna.Trial, result: JobReturn) -> None:
        trial.set_user_attr("overrides", list(result.overrides))
        if result.working_dir:
            trial.set_user_attr("output_dir", str(result.working_dir))
        if result.status != JobStatus.COMPLETED:
            log.warning(
                "trial %d failed (%s): recorded as failed, the sweep goes on",
                trial.number,
                result._return_value,
            )
            study.tell(trial, state=TrialState.FAIL)
            return
        value = result.return_value
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            log.warning("trial %d returned %r, not a finite number: recorded as failed", trial.number, value)
            study.tell(trial, state=TrialState.FAIL)
            return
        study.tell(trial, float(value))
        log.info("trial %d: %s -> %g", trial.number, trial.params, value)

    def _write_summary(self, study: optuna.Study, sweep_dir: Path) -> None:
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        summary: dict[str, Any] = {
            "study_name": self.study_name,
            "storage": self.storage,
            "direction": self.direction,
            "trials": {
                state.name.lower(): len(study.get_trials(deepcopy=False, states=(state,)))
                for state in TrialState
            },
        }
        if complete:
            summary.update(
                best_value=study.best_value, best_params=study.best_params, best_trial=study.best_trial.number
            )
            log.info(
                "best trial %d: %g with %s", study.best_trial.number, study.best_value, study.best_params
            )
        atomic_write_bytes(sweep_dir / "optimization_results.yaml", OmegaConf.to_yaml(summary).encode())
        if not complete:  # a clean exit: every trial's own error is already in the log above
            raise SystemExit(
                f"error: study {self.study_name!r} has no completed trial; see the failed jobs' logs in {sweep_dir}"
            )


def counted_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials that count towards `n_trials`: finished ones, except interrupted runs that were queued again."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs[RETRY_OF] for t in trials if RETRY_OF in t.user_attrs}
    return [t for t in trials if t.state.is_finished() and t.number not in retried]
