"""`python train.py -m hydra/launcher=slurm` against a real SLURM cluster (scripts/slurm/local_cluster.sh).

Skipped when no cluster answers `sinfo`; `.ci/run` starts the local cluster (two nodes) so that CI runs them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from slurm_jobs import ACTIVE, follow_preemption, job_states_by_id, logged_steps, sbatch_preemptible

from seq2seq.config import PROJECT_ROOT


def cluster_is_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    done = subprocess.run(
        ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, check=False, timeout=30
    )
    return done.returncode == 0 and any(state in done.stdout for state in ("idle", "mixed", "allocated"))


# CI starts a cluster and sets SEQ2SEQ_REQUIRE_SLURM, so that a cluster that did not come up fails instead of skipping.
REQUIRED = os.environ.get("SEQ2SEQ_REQUIRE_SLURM") == "1"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.slurm,
    pytest.mark.skipif(
        not REQUIRED and not cluster_is_up(), reason="no SLURM cluster (scripts/slurm/local_cluster.sh start)"
    ),
]

# One CPU and a thread each, so that the jobs of a sweep share the node instead of fighting over it.
SMALL_JOB = [
    "hydra/launcher=slurm",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=2",
    "hydra.launcher.timeout_min=15",
    "debug=tiny",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def sweep_command(sweep_dir: Path, cache_dir: Path, name: str, *overrides: str) -> list[str]:
    return [
        sys.executable,
        "train.py",
        "-m",
        *SMALL_JOB,
        f"hydra.launcher.name={name}",
        f"hydra.sweep.dir={sweep_dir}",
        f"paths.cache_dir={cache_dir}",
        *overrides,
    ]


def job_states(name: str) -> dict[str, str]:
    """Job id -> state, from SLURM's accounting, of the jobs named `name`."""
    done = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-S", "now-1days", "-o", "JobID,State", "--name", name],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(line.split("|", 1) for line in done.stdout.splitlines() if line)


def settled_job_states(name: str, count: int, timeout: float = 120) -> dict[str, str]:
    """`job_states` once `count` jobs are listed and none of them is still queued, running or finishing."""
    deadline = time.monotonic() + timeout
    while True:
        states = job_states(name)
        settled = len(states) == count and not ACTIVE.intersection(states.values())
        if settled or time.monotonic() > deadline:
            return states
        time.sleep(1)


def test_a_two_job_sweep_trains_on_slurm(tmp_path: Path, cache_dir: Path) -> None:
    name = f"sweep-{uuid.uuid4().hex[:8]}"
    sweep_dir = tmp_path / "sweep"
    done = subprocess.run(
        sweep_command(sweep_dir, cache_dir, name, "encoder=lstm,gru"),
        cwd=PROJECT_ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for job in ("0", "1"):
        results = json.loads((sweep_dir / job / "results.json").read_text())
        assert results["steps"] == 5 and math.isfinite(results["val/loss"])
    encoders = {OmegaConf.load(sweep_dir / job / "config.yaml").encoder.rnn._target_ for job in ("0", "1")}
    assert encoders == {"torch.nn.LSTM", "torch.nn.GRU"}
    # submitit hands back a job's result as soon as its pickle is written; SLURM's accounting marks the job
    # COMPLETED a moment later, once the batch step has exited, so the states are read once they settle.
    states = settled_job_states(name, count=2)
    assert set(states.values()) == {"COMPLETED"}, states


def test_a_cancelled_job_is_reported_as_failed_not_waited_for(tmp_path: Path, cache_dir: Path) -> None:
    name = f"cancel-{uuid.uuid4().hex[:8]}"
    command = sweep_command(
        tmp_path / "sweep", cache_dir, name, "trainer.max_steps=100000", "trainer.max_epochs=100"
    )
    launcher = subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 300
        job_id = ""
        while not job_id and time.monotonic() < deadline:
            time.sleep(2)
            queue = subprocess.run(
                ["squeue", "-h", "-n", name, "-t", "RUNNING", "-o", "%i"],
                capture_output=True,
                text=True,
                check=True,
            )
            job_id = queue.stdout.strip()
        assert job_id, "the job never started running"
        subprocess.run(["scancel", job_id], check=True)
        _, stderr = launcher.communicate(
            timeout=300
        )  # a launcher that cannot see the cancellation hangs here
    finally:
        launcher.kill()
    assert launcher.returncode != 0
    assert "CANCELLED" in stderr, stderr[-3000:]
    assert job_states(name)[job_id].startswith("CANCELLED")


def test_preempted_job_checkpoints_requeues_itself_and_resumes(tmp_path: Path, cache_dir: Path) -> None:
    """sbatch a training run, send it the pre-timeout signal (USR1): it saves, requeues, and the rerun finishes it."""
    run_dir = tmp_path / "run"
    job, log = sbatch_preemptible(tmp_path, run_dir, cache_dir, ["--cpus-per-task=1"], "exec")
    follow_preemption(job, log, run_dir, signal_batch_step=True)
    assert job_states_by_id(job) == "COMPLETED", log.read_text()[-3000:]
    assert json.loads((run_dir / "results.json").read_text())["steps"] == 300
    assert logged_steps(run_dir) == list(range(300))  # the two attempts together log every step once


def test_a_slurm_array_prepares_shards_that_merge_into_the_corpus_training_maps(tmp_path: Path) -> None:
    """One shard per array task (`--shard $SLURM_ARRAY_TASK_ID/2`), then `--merge 2`; train.py maps the result."""
    data = ["data=bundled", f"paths.cache_dir={tmp_path / 'cache'}"]
    preprocess = [sys.executable, "-m", "seq2seq.cli.preprocess", *data, "--workers", "1"]
    shard_job = f"cd {PROJECT_ROOT} && {' '.join(preprocess)} --shard $SLURM_ARRAY_TASK_ID/2"
    done = subprocess.run(
        [
            "sbatch",
            "--array=0-1",
            "--wait",
            "--cpus-per-task=1",
            "--mem=2G",
            f"--job-name=shards-{uuid.uuid4().hex[:8]}",
            f"--output={tmp_path}/shard-%a.log",
            "--wrap",
            shard_job,
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    logs = "".join(path.read_text() for path in sorted(tmp_path.glob("shard-*.log")))
    assert done.returncode == 0, done.stderr + logs[-3000:]
    merged = subprocess.run(
        [*preprocess, "--merge", "2"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert merged.returncode == 0, merged.stderr[-3000:]
    summary = json.loads(merged.stdout[merged.stdout.index("{") :])
    assert summary["prepared_now"] and summary["pairs"] == {"train": 30000, "valid": 500, "test": 1000}
    run_dir = tmp_path / "run"
    trained = subprocess.run(
        [sys.executable, "train.py", "debug=tiny", *data, f"hydra.run.dir={run_dir}"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert f"mapping the corpus prepared in {summary['folder']}" in (run_dir / "train.log").read_text()
