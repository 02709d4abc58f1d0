"""Following SLURM jobs from a test: queue and accounting states, and a preempted job through its requeue.

Shared by test_slurm.py (one node) and test_two_nodes.py (two).
"""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path

from seq2seq.config import PROJECT_ROOT

ACTIVE = {
    "PENDING",
    "CONFIGURING",
    "RUNNING",
    "COMPLETING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "RESIZING",
    "SUSPENDED",
}


def wait_for(condition, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def queue_state(job: str) -> str:
    """The job's state as squeue shows it ("" once it has left the queue)."""
    done = subprocess.run(
        ["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip()


def job_states_by_id(job: str) -> str:
    done = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-j", job, "-o", "State"], capture_output=True, text=True, check=True
    )
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else ""


def logged_steps(run_dir: Path) -> list[int]:
    """The steps whose training loss the run's CSV log holds, in the order logged."""
    with open(run_dir / "csv" / "metrics.csv", newline="") as handle:
        return [int(row["step"]) for row in csv.DictReader(handle) if row.get("train/loss")]


def sbatch_preemptible(
    tmp_path: Path, run_dir: Path, cache_dir: Path, options: list[str], launch: str, *overrides: str
) -> tuple[str, Path]:
    """sbatch a requeueable tiny training run of 300 steps with resume=true: its job id and its log.

    `options`: further #SBATCH lines; `launch`: what runs train.py (`exec`, or `srun` for a task per node).
    """
    header = ["--requeue", "--open-mode=append", f"--output={tmp_path}/out-%j.log", *options]
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/bash\n"
        + "".join(f"#SBATCH {line}\n" for line in header)
        + f"cd {PROJECT_ROOT}\nexport PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1\n"
        f"{launch} {sys.executable} train.py debug=tiny trainer.max_steps=300 data.max_tokens=256 test=false "
        f"{' '.join(overrides)} hydra.run.dir={run_dir} paths.cache_dir={cache_dir} resume=true\n"
    )
    done = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, check=True)
    job = done.stdout.strip()
    return job, tmp_path / f"out-{job}.log"


def follow_preemption(job: str, log: Path, run_dir: Path, signal_batch_step: bool) -> None:
    """Sends the running job SIGUSR1, then follows it through its requeue and rerun to the end.

    `signal_batch_step`: signal the batch script's own process (a job that runs train.py without srun);
    otherwise the job's srun tasks, on every node. Cancels the job however it ends.
    """

    def logged(text: str) -> bool:
        return log.exists() and text in log.read_text(errors="replace")

    try:
        wait_for(lambda: logged("checkpoint after the current step and exit"), "training to start", 300)
        batch = ["--batch"] if signal_batch_step else []
        subprocess.run(["scancel", *batch, "--signal=USR1", job], check=True)
        wait_for(lambda: logged(f"scontrol requeue {job}: done"), "the job to requeue itself", 120)
        # Why it stopped is logged before the requeue: SLURM then ends the job's processes, in a CI run
        # before the closing `error:` line was printed.
        text = log.read_text(errors="replace")
        assert -1 < text.find("Stopped by SIGUSR1 after step") < text.find(f"scontrol requeue {job}: done"), (
            text[-3000:]
        )
        # SLURM holds a requeued job for a while (BeginTime); let it start in 2 s, not at once: slurmd
        # rejects a launch credential made in the same second as the revoked one of the first run
        # ("Killing non-startable batch job: Job credential revoked"; it ended a CI run this way).
        wait_for(lambda: queue_state(job) == "PENDING", "the requeued job to pend", 60)
        subprocess.run(
            ["scontrol", "update", f"jobid={job}", "StartTime=now+2"], capture_output=True, check=False
        )
        # Follow the rerun through its log and the queue: the accounting database can still report the
        # first attempt for a while (a CI run once read FAILED there and cancelled the rerun unstarted).
        wait_for(lambda: logged(f"resuming from {run_dir}/checkpoints/last.ckpt"), "the rerun to start", 300)
        wait_for(lambda: queue_state(job) not in ACTIVE, "the rerun to finish", 600)
        recorded = time.monotonic() + 60  # then the caller's assertion on the state shows the log
        while job_states_by_id(job) != "COMPLETED" and time.monotonic() < recorded:
            time.sleep(0.5)
    finally:
        subprocess.run(["scancel", job], check=False)
