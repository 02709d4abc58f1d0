"""Two hosts for real: DDP across the two namespace hosts of `scripts/slurm/local_cluster.sh start --nodes 2`.

Each host is a network namespace with its own hostname, address and slurmd; ranks on different hosts talk
over the bridge between them, never over loopback. torchrun is started on both hosts (`local_cluster.sh
on NODE ...`), and SLURM runs two-node jobs through the submitit launcher and sbatch. Every run must train
exactly as one host running the same ranks: the same batches give the same per-rank step losses.

Skipped when the two hosts are not there; `.ci/run` starts them, and SEQ2SEQ_REQUIRE_SLURM makes a
missing cluster fail instead.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from slurm_jobs import follow_preemption, job_states_by_id, logged_steps, sbatch_preemptible

from seq2seq.config import PROJECT_ROOT
from seq2seq.errors import LostRank

CLUSTER = PROJECT_ROOT / "scripts" / "slurm" / "local_cluster.sh"
NODES = ("node1", "node2")
HERE = Path(__file__).parent


def hosts_are_up() -> bool:
    if shutil.which("ip") is None or shutil.which("sinfo") is None:
        return False
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    done = subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True, check=False)
    return all(f"s2s-{node}" in listed for node in NODES) and set(NODES) <= set(done.stdout.split())


REQUIRED = os.environ.get("SEQ2SEQ_REQUIRE_SLURM") == "1"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.slurm,
    pytest.mark.skipif(
        not REQUIRED and not hosts_are_up(),
        reason="no two-node cluster (scripts/slurm/local_cluster.sh start --nodes 2)",
    ),
]

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(HERE)}
# The batches of the single-host DDP test: no dropout or clipping between the runs compared, no bucket
# shuffling, so rank r takes batches r, r+2, ... wherever it runs.
SAME_BATCHES = [
    "debug=tiny",
    "decoder.dropout=0",
    "trainer.gradient_clip_val=0",
    "trainer.max_steps=4",
    "trainer.limit_val_batches=4",
    "data.bucketing=false",
    "trainer.accelerator=cpu",
    "device=ddp",
]


def capture_losses(folder: Path) -> list[str]:
    return [
        "+callbacks.loss_capture._target_=loss_capture.LossCapture",
        f"+callbacks.loss_capture.folder={folder}",
    ]


def read_losses(folder: Path) -> list[list]:
    return [json.loads(path.read_text()) for path in sorted(folder.glob("rank*.json"))]


def assert_same_losses(measured: list[list], expected: list[list]) -> None:
    assert len(measured) == len(expected) == 2, (len(measured), len(expected))
    for rank, (ours, theirs) in enumerate(zip(measured, expected, strict=True)):
        assert [s[0] for s in ours] == [s[0] for s in theirs], rank  # the same steps
        assert [s[2:] for s in ours] == [s[2:] for s in theirs], (
            rank
        )  # the same batches (tokens, pair indices)
        assert [s[1] for s in ours] == pytest.approx([s[1] for s in theirs], rel=1e-5), rank


def assert_written_once(run_dir: Path) -> None:
    """results.json, config.yaml, the checkpoints and train.log come from global rank 0 alone."""
    log = (run_dir / "train.log").read_text()
    assert log.count("run folder:") == 1, log[-3000:]  # every rank logs it; only rank 0 into the file
    assert "ranks: 0 on node1" in log and "1 on node2" in log, log[-3000:]
    assert json.loads((run_dir / "results.json").read_text())["steps"] > 0
    assert list((run_dir / "checkpoints").glob("*.ckpt")) and not list(run_dir.rglob("*.tmp"))


def on_host(node: str, *command: str) -> list[str]:
    return [str(CLUSTER), "on", node, *command]


def torchrun_on_both(
    run_dir: Path, logs: Path, *overrides: str, per_node: int = 1, cache: Path | list[Path]
) -> list[subprocess.Popen]:
    """torchrun on node1 and node2, rendezvous at node1, one `train.py` run of 2 x `per_node` ranks."""
    port = random.randint(20000, 40000)
    caches = cache if isinstance(cache, list) else [cache, cache]
    logs.mkdir(parents=True, exist_ok=True)
    started = []
    for rank, (node, cache_dir) in enumerate(zip(NODES, caches, strict=True)):
        command = on_host(
            node,
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nnodes=2",
            f"--nproc-per-node={per_node}",
            f"--node-rank={rank}",
            "--master-addr=node1",
            f"--master-port={port}",
            "train.py",
            f"trainer.devices={per_node}",
            "trainer.num_nodes=2",
            f"hydra.run.dir={run_dir}",
            f"paths.cache_dir={cache_dir}",
            *overrides,
        )
        with (logs / f"{node}.log").open("w") as out:
            started.append(
                subprocess.Popen(
                    command,
                    cwd=PROJECT_ROOT,
                    env=ENV,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: killed as a whole, as a node would be
                )
            )
    return started


def wait_all(processes: list[subprocess.Popen], run_dir: Path, timeout: float = 600) -> list[int]:
    try:
        return [process.wait(timeout=timeout) for process in processes]
    finally:
        for node, process in zip(NODES, processes, strict=True):
            kill_run_on(node, run_dir)
            kill_group(process)


def kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def kill_run_on(node: str, run_dir: Path, signum: signal.Signals = signal.SIGKILL) -> int:
    """SIGKILLs (or sends `signum` to) every process of the run `run_dir` on that host, as a lost node
    would end them: its torchrun agent and its ranks (torchrun starts each rank in a session of its own).
    The host's slurmd is left running. Returns how many were signalled."""
    host = os.stat(f"/run/netns/s2s-{node}").st_ino
    killed = 0
    for proc in Path("/proc").iterdir():
        try:
            ours = proc.name.isdigit() and os.stat(proc / "ns" / "net").st_ino == host
            if ours and f"hydra.run.dir={run_dir}".encode() in (proc / "cmdline").read_bytes():
                os.kill(int(proc.name), signum)
                killed += 1
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return killed


def error_line(log: str) -> str:
    """The one `error: ` paragraph a survivor printed; failing with the log's end when there is not one."""
    lines = [line for line in log.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, log[-6000:]
    return lines[0]


def text_of(logs: Path) -> str:
    return "\n".join(
        f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(logs.glob("*.log"))
    )


@pytest.fixture(scope="module")
def one_host_losses(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> list[list]:
    """The reference: the same run as 2 DDP processes of this one host (Lightning starts the second)."""
    run_dir = tmp_path_factory.mktemp("one-host")
    done = subprocess.run(
        [
            sys.executable,
            "train.py",
            *SAME_BATCHES,
            "trainer.devices=2",
            f"hydra.run.dir={run_dir}",
            f"paths.cache_dir={cache_dir}",
            *capture_losses(run_dir / "losses"),
        ],
        cwd=PROJECT_ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return read_losses(run_dir / "losses")


def test_torchrun_across_two_hosts_trains_as_one_host(
    one_host_losses, tmp_path: Path, cache_dir: Path
) -> None:
    run_dir = tmp_path / "run"
    runs = torchrun_on_both(
        run_dir, tmp_path / "logs", *SAME_BATCHES, *capture_losses(run_dir / "losses"), cache=cache_dir
    )
    assert wait_all(runs, run_dir) == [0, 0], text_of(tmp_path / "logs")
    assert_same_losses(read_losses(run_dir / "losses"), one_host_losses)
    assert_written_once(run_dir)


def test_a_two_node_slurm_job_through_the_launcher_trains_as_one_host(
    one_host_losses, tmp_path: Path, cache_dir: Path
) -> None:
    """`python train.py -m hydra/launcher=slurm hydra.launcher.nodes=2 ...`: one task per node, ranks from SLURM."""
    sweep_dir, losses = tmp_path / "sweep", tmp_path / "losses"
    done = subprocess.run(
        [
            sys.executable,
            "train.py",
            "-m",
            "hydra/launcher=slurm",
            "hydra.launcher.nodes=2",
            "hydra.launcher.tasks_per_node=1",
            "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.mem_gb=2",
            "hydra.launcher.timeout_min=15",
            f"hydra.launcher.name=two-nodes-{uuid.uuid4().hex[:8]}",
            f"hydra.sweep.dir={sweep_dir}",
            *SAME_BATCHES,
            "trainer.num_nodes=2",
            "trainer.devices=1",
            f"paths.cache_dir={cache_dir}",
            *capture_losses(losses),
        ],
        cwd=PROJECT_ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    task_logs = "".join(p.read_text()[-2000:] for p in sorted(sweep_dir.glob(".submitit/*/*_log.err")))
    assert done.returncode == 0, done.stderr[-3000:] + task_logs
    assert_same_losses(read_losses(losses), one_host_losses)
    assert_written_once(sweep_dir / "0")
    assert OmegaConf.load(sweep_dir / "0" / "config.yaml").trainer.num_nodes == 2


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("disks", ["node-local", "shared"])
def test_one_process_per_cache_prepares_the_corpus_and_the_others_wait(disks: str, tmp_path: Path) -> None:
    """2 hosts x 2 ranks. Each host with a cache of its own (a node-local disk): one rank per host prepares.
    One cache for all (a shared file system): one rank in all. Every other rank maps what was prepared."""
    caches = (
        [tmp_path / node / "cache" for node in NODES]
        if disks == "node-local"
        else [tmp_path / "shared" / "cache"] * 2
    )
    run_dir = tmp_path / "run"
    runs = torchrun_on_both(
        run_dir,
        tmp_path / "logs",
        *SAME_BATCHES,
        "trainer.max_steps=1",
        "test=false",
        per_node=2,
        cache=caches,
    )
    assert wait_all(runs, run_dir) == [0, 0], text_of(tmp_path / "logs")
    prepared = {
        node: (tmp_path / "logs" / f"{node}.log").read_text().count("prepared the corpus into")
        for node in NODES
    }
    mapped = {
        node: (tmp_path / "logs" / f"{node}.log").read_text().count("mapping the corpus prepared in")
        for node in NODES
    }
    if disks == "node-local":
        assert prepared == {"node1": 1, "node2": 1} and mapped == {"node1": 1, "node2": 1}, text_of(
            tmp_path / "logs"
        )
        # Both hosts prepared the same vocabulary and arrays, or their ranks would train on other ids.
        assert files_of(caches[0].parent) == files_of(caches[1].parent)
    else:
        assert sum(prepared.values()) == 1 and sum(mapped.values()) == 3, text_of(tmp_path / "logs")


# Long enough that node2 is killed mid-run: a checkpoint (last.ckpt) at every validation, every 40 steps.
RESUMABLE = [
    "debug=tiny",
    "trainer.accelerator=cpu",
    "device=ddp",
    "device.timeout_s=60",
    "trainer.max_steps=120",
    "trainer.val_check_interval=40",
    "data.max_tokens=256",
    "test=false",
]


def captured_by_step(folder: Path) -> dict[int, list]:
    return {(rank, step[0]): step for rank, steps in enumerate(read_losses(folder)) for step in steps}


def test_a_node_lost_mid_run_ends_the_survivor_then_resume_continues_exactly(
    tmp_path: Path, cache_dir: Path
) -> None:
    whole = torchrun_on_both(
        tmp_path / "whole",
        tmp_path / "whole-logs",
        *RESUMABLE,
        *capture_losses(tmp_path / "whole-losses"),
        cache=cache_dir,
    )
    assert wait_all(whole, tmp_path / "whole") == [0, 0], text_of(tmp_path / "whole-logs")

    run_dir, logs = tmp_path / "run", tmp_path / "logs"
    node1, node2 = torchrun_on_both(run_dir, logs, *RESUMABLE, cache=cache_dir)
    try:
        deadline = time.monotonic() + 300
        while not (run_dir / "checkpoints" / "last.ckpt").exists():
            assert time.monotonic() < deadline and node1.poll() is None, text_of(logs)
            time.sleep(0.2)
        assert kill_run_on("node2", run_dir) >= 2  # its torchrun agent and its rank
        killed = time.monotonic()
        code = node1.wait(timeout=300)
        waited = time.monotonic() - killed
    finally:
        for node, process in zip(NODES, (node1, node2), strict=True):
            kill_run_on(node, run_dir)
            kill_group(process)
    survivor = (logs / "node1.log").read_text(errors="replace")
    assert code != 0 and waited < 90, (code, waited, survivor[-3000:])  # bounded: device.timeout_s=60 at most
    line = error_line(survivor)
    assert "lost rank 1 (host node2, 10.77.0.12)" in line and "resume=true" in line, line
    assert f"exitcode  : {LostRank.exit_code}" in survivor or f"exit code {LostRank.exit_code}" in survivor, (
        survivor[-3000:]
    )
    assert not (run_dir / "results.json").exists()

    resumed = torchrun_on_both(
        run_dir,
        logs,
        *RESUMABLE,
        "resume=true",
        *capture_losses(tmp_path / "resumed-losses"),
        cache=cache_dir,
    )
    assert wait_all(resumed, run_dir) == [0, 0], text_of(logs)
    expected, got = captured_by_step(tmp_path / "whole-losses"), captured_by_step(tmp_path / "resumed-losses")
    first = min(step for _, step in got)  # the step after the checkpoint's: 41 or 81 (steps count from 1)
    assert first in (41, 81) and len(got) == 2 * (121 - first), sorted(got)[:4]
    for key, step in got.items():  # step for step the same batches and losses as the run never interrupted
        assert step[2:] == expected[key][2:] and step[1] == pytest.approx(expected[key][1], rel=1e-5), key
    assert json.loads((run_dir / "results.json").read_text())["steps"] == 120


DDP_ACROSS_TWO_NODES = ["device=ddp", "trainer.accelerator=cpu", "trainer.num_nodes=2", "trainer.devices=1"]


def test_a_preempted_two_node_job_checkpoints_once_requeues_both_nodes_and_resumes(
    tmp_path: Path, cache_dir: Path
) -> None:
    """sbatch a two-node job (srun, a rank per node), signal both ranks with SIGUSR1: they stop at the same
    step, rank 0 saves once and requeues the job, and the rerun continues on both nodes to the end."""
    run_dir = tmp_path / "run"
    two_nodes = ["--nodes=2", "--ntasks-per-node=1", "--cpus-per-task=1", "--mem=2G"]
    job, log = sbatch_preemptible(tmp_path, run_dir, cache_dir, two_nodes, "srun", *DDP_ACROSS_TWO_NODES)
    follow_preemption(job, log, run_dir, signal_batch_step=False)
    text = log.read_text(errors="replace")
    assert job_states_by_id(job) == "COMPLETED", text[-3000:]
    stops = [
        line for line in text.splitlines() if "[seq2seq.training.preemption][WARNING] - Stopped by" in line
    ]
    assert len(stops) == 2 and len({line.split("Stopped by ")[1] for line in stops}) == 1, (
        stops
    )  # both ranks, one step
    assert text.count(f"scontrol requeue {job}: done") == 1, text[-3000:]  # requeued once, by rank 0
    assert text.count(f"resuming from {run_dir}/checkpoints/last.ckpt") == 2  # both ranks resumed
    train_log = (run_dir / "train.log").read_text()
    assert train_log.count("ranks: 0 on node1 (10.77.0.11), 1 on node2 (10.77.0.12)") == 2, train_log[-3000:]
    assert json.loads((run_dir / "results.json").read_text())["steps"] == 300
    assert logged_steps(run_dir) == list(range(300))  # the two attempts together log every step once


def test_a_node_that_stops_answering_ends_the_survivor_after_device_timeout_s(
    tmp_path: Path, cache_dir: Path
) -> None:
    """node2's run is frozen (SIGSTOP: its sockets stay open, nothing closes them as a kill would), as a
    hung host or a network partition leaves it: rank 0 waits in its collective for `device.timeout_s`, then
    exits with the one-line paragraph, instead of hanging for the default half hour."""
    run_dir, logs = tmp_path / "run", tmp_path / "logs"
    node1, node2 = torchrun_on_both(run_dir, logs, *RESUMABLE, "device.timeout_s=15", cache=cache_dir)
    try:
        deadline = time.monotonic() + 300
        while not (run_dir / "checkpoints" / "last.ckpt").exists():
            assert time.monotonic() < deadline and node1.poll() is None, text_of(logs)
            time.sleep(0.2)
        assert kill_run_on("node2", run_dir, signal.SIGSTOP) >= 2
        frozen = time.monotonic()
        code = node1.wait(timeout=300)
        waited = time.monotonic() - frozen
    finally:
        for node, process in zip(NODES, (node1, node2), strict=True):
            kill_run_on(node, run_dir)
            kill_group(process)
    survivor = (logs / "node1.log").read_text(errors="replace")
    assert code != 0 and 10 < waited < 60, (
        code,
        waited,
        survivor[-3000:],
    )  # the timeout, not at once or never
    line = error_line(survivor)
    assert "at step" in line and "device.timeout_s (15 s here)" in line and "resume=true" in line, line
