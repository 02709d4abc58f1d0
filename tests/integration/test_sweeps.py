"""Sweeps as users run them: Hydra multirun grids and resumable Optuna studies, then the summary script."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from seq2seq.config import PROJECT_ROOT

pytestmark = pytest.mark.slow

# Small enough that a trial takes seconds: debug=tiny trains 5 steps.
TINY_SPACE = [
    "encoder.hidden_size=choice(8,16)",
    "decoder.hidden_size=choice(16,32)",
    "encoder.rnn.num_layers=1",
    "decoder.dropout=interval(0,0.3)",
    "data.max_tokens=choice(512,1024)",
]


def sweep_command(sweep_dir: Path, cache_dir: Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        "train.py",
        "hparams_search=bundled_bleu",
        "debug=tiny",
        f"hydra.sweep.dir={sweep_dir}",
        f"paths.cache_dir={cache_dir}",
        *TINY_SPACE,
        *overrides,
    ]


def load_study(sweep_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name="bundled_bleu", storage=f"sqlite:///{sweep_dir}/study.sqlite")


def states(sweep_dir: Path) -> list[TrialState]:
    if not (sweep_dir / "study.sqlite").is_file():
        return []
    try:
        return [trial.state for trial in load_study(sweep_dir).get_trials(deepcopy=False)]
    except KeyError:  # the study is not created yet
        return []


def run(command: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    """Runs to the end; `.stdout` holds both streams (Hydra logs the sweep to stdout, Python warnings go to stderr)."""
    return subprocess.run(
        command,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


def summarize(sweep_dir: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "scripts/summarize_sweep.py", str(sweep_dir), *args]
    return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_optuna_sweep_killed_after_two_trials_resumes_with_the_rest(tmp_path: Path, cache_dir: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    command = sweep_command(sweep_dir, cache_dir, "hydra.sweeper.n_trials=4")
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(
        command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while states(sweep_dir).count(TrialState.COMPLETE) < 2:
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "two trials did not finish in 300 s"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # as a lost node or `kill -9` would: no cleanup runs
    first.wait()
    killed_with = states(sweep_dir)
    assert killed_with.count(TrialState.COMPLETE) == 2

    second = run(command)
    assert second.returncode == 0, second.stdout[-3000:]
    assert "holds 2 of 4 trials; running 2" in second.stdout
    assert len(re.findall(r"Launching 1 jobs locally", second.stdout)) == 2  # only the remaining trials ran
    trials = load_study(sweep_dir).get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 4
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    if interrupted:  # the kill caught trial 2 running: it ran again with the parameters it had been given
        (retry,) = [t for t in complete if t.user_attrs.get("retry_of") == interrupted[0].number]
        assert (
            interrupted[0].params.items() <= retry.params.items()
        )  # all of them unless killed while they were drawn
    summary = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert summary["trials"]["complete"] == 4 and summary["best_value"] == max(t.value for t in complete)

    # Running it again finds the study full and launches nothing.
    third = run(command)
    assert third.returncode == 0 and "holds 4 of 4 trials; nothing to run" in third.stdout
    assert "Launching" not in third.stdout

    shown = summarize(sweep_dir, "--plot", str(tmp_path / "sweep.png"))
    assert shown.returncode == 0, shown.stderr
    rows = [line.split() for line in shown.stdout.splitlines()[2:6]]
    assert [int(row[0]) for row in rows] == [1, 2, 3, 4]
    bleu = [float(row[2]) for row in rows]
    assert bleu == sorted(bleu, reverse=True)
    columns = set(
        shown.stdout.splitlines()[0].split()[3:]
    )  # keys whose values differ (a choice may repeat in 4 draws)
    assert (
        {"model.optimizer.lr", "decoder.dropout", "model.label_smoothing"}
        <= columns
        <= {
            "model.optimizer.lr",
            "encoder.hidden_size",
            "decoder.hidden_size",
            "decoder.dropout",
            "model.label_smoothing",
            "data.max_tokens",
        }
    )
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_failed_trial_is_recorded_and_the_sweep_goes_on(tmp_path: Path, cache_dir: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    # Adam rejects a negative learning rate: those trials' jobs raise. Six seeded random draws give both values.
    command = sweep_command(
        sweep_dir,
        cache_dir,
        "hydra.sweeper.n_trials=6",
        "model.optimizer.lr=choice(0.002,-1.0)",
        "encoder.hidden_size=8",
        "decoder.hidden_size=16",
        "decoder.dropout=0.1",
        "data.max_tokens=512",
        "model.label_smoothing=0.1",
        "hydra.sweeper.sampler._target_=optuna.samplers.RandomSampler",
    )
    done = run(command)
    assert done.returncode == 0, done.stdout[-3000:]
    assert re.search(
        r"trial \d failed \(Invalid learning rate: -1.0\): recorded as failed, the sweep goes on", done.stdout
    )
    trials = load_study(sweep_dir).get_trials()
    assert len(trials) == 6
    assert {(t.params["model.optimizer.lr"], t.state) for t in trials} == {
        (0.002, TrialState.COMPLETE),
        (-1.0, TrialState.FAIL),
    }
    failed = sum(t.state == TrialState.FAIL for t in trials)
    shown = summarize(sweep_dir)
    assert (
        shown.returncode == 0 and f"{failed} job(s) without a result (failed or interrupted)" in shown.stdout
    )


def test_sweep_where_every_trial_fails_exits_with_an_error(tmp_path: Path, cache_dir: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    done = run(sweep_command(sweep_dir, cache_dir, "hydra.sweeper.n_trials=2", "model.optimizer.lr=-1.0"))
    assert done.returncode == 1
    assert (
        f"error: study 'bundled_bleu' has no completed trial; see the failed jobs' logs in {sweep_dir}"
        in done.stdout
    )
    assert len(load_study(sweep_dir).get_trials(states=(TrialState.FAIL,))) == 2


def test_multirun_grid_then_summary(tmp_path: Path, cache_dir: Path) -> None:
    sweep_dir = tmp_path / "grid"
    command = [
        sys.executable,
        "train.py",
        "-m",
        "debug=tiny",
        "encoder=lstm,gru",
        "strategy=masking,packing",
        "test=false",
        f"hydra.sweep.dir={sweep_dir}",
        f"paths.cache_dir={cache_dir}",
    ]
    done = run(command)
    assert done.returncode == 0, done.stdout[-3000:]
    assert sorted(p.parent.name for p in sweep_dir.glob("*/results.json")) == ["0", "1", "2", "3"]
    shown = summarize(
        sweep_dir, "--metric", "val/loss", "--minimize", "--json", str(tmp_path / "ranked.json")
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines()[0].split() == ["rank", "job", "val/loss", "encoder", "strategy"]
    assert (sweep_dir / "summary.png").is_file() and (tmp_path / "ranked.json").is_file()


def test_summary_of_a_folder_without_jobs_says_what_to_give(tmp_path: Path) -> None:
    shown = summarize(tmp_path)
    assert shown.returncode != 0
    assert f"{tmp_path} holds no Hydra job folders" in shown.stderr and "Traceback" not in shown.stderr


@pytest.mark.parametrize(
    "sweep_file", sorted((PROJECT_ROOT / "scripts" / "sweeps").glob("*.yaml")), ids=lambda p: p.stem
)
def test_wandb_sweep_command_runs_train_with_the_drawn_values(
    sweep_file: Path, tmp_path: Path, cache_dir: Path
) -> None:
    """Builds the command the way `wandb agent` does (wandb's own macro expansion) and runs it offline."""
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    sweep = yaml.safe_load(sweep_file.read_text())
    assert sweep["metric"]["name"] == "val/bleu" and "${args_no_hyphens}" in sweep["command"]
    drawn = {
        key: spec["values"][-1] if "values" in spec else spec["min"]
        for key, spec in sweep["parameters"].items()
    }
    macros = create_sweep_command_args({"args": {key: {"value": value} for key, value in drawn.items()}})
    macros |= {"env": ["/usr/bin/env"], "interpreter": [sys.executable], "program": [sweep["program"]]}
    command = [
        part
        for item in sweep["command"]
        for part in (macros[item[2:-1]] if item.startswith("${") else [item])
    ]
    tiny = ["debug=tiny", "test=false", f"hydra.run.dir={tmp_path / 'run'}", f"paths.cache_dir={cache_dir}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")} | {"WANDB_MODE": "offline"}
    done = subprocess.run(
        command + tiny,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    choices = yaml.safe_load((tmp_path / "run" / ".hydra" / "hydra.yaml").read_text())["hydra"]["runtime"][
        "choices"
    ]
    for key, value in drawn.items():
        if key in choices:  # a config group option, e.g. encoder=gru
            assert choices[key] == value
            continue
        node = config
        for part in key.split("."):
            node = node[part]
        assert node == value, key
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb"))
