"""Runs of several processes and hosts: which rank is where, a lost rank named, logs written once.

Lightning and torch.distributed do the distributed work itself (DDP, gloo or NCCL, SLURM's and
torchrun's environments). What they leave to us:

- When a rank dies (its process killed, its node gone), the others fail in their next collective with
  gloo's or NCCL's message, which names a socket address (`Connection closed by peer [10.0.0.12]:4312`)
  or nothing at all (a timeout), never the rank, the host or what to do. `PeerTable` records each rank's
  host and address when training starts, and `lost_rank_error` turns such a failure into one paragraph
  naming the lost rank and the checkpoint to resume from. The wait itself is bounded by the strategy's
  collective timeout (`device.timeout_s` in conf/device/ddp.yaml).
- Every process of a run writes Hydra's `train.log` into the same run folder, interleaving their lines;
  `log_files_on_rank_zero` keeps that file to global rank 0 (the others still log to their console,
  which SLURM and torchrun keep per task).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch.distributed as dist
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from seq2seq.errors import LostRank, Preempted
from seq2seq.training.preemption import PreemptionCheckpoint

log = logging.getLogger(__name__)

# A peer's socket address as gloo prints it: "[10.77.0.12]:4312" (IPv6 inside the brackets too).
PEER_ADDRESS = re.compile(r"\[([0-9A-Fa-f:.]+)\]:\d+")
# What gloo and NCCL say when a peer went away or stopped answering (torch 2.x messages). A timeout closes
# gloo's connection to that peer, so any other collective already queued on it (DDP's bucket all-reduces)
# fails with "Application timeout caused pair closure" instead, and that one may be the error raised.
LOST_PEER = re.compile(
    r"Connection (closed|reset) by peer|Broken pipe|Timed out waiting|timed out|Socket Timeout|"
    r"timeout caused pair closure|Socket (unexpectedly )?closed|NCCL communicator was aborted|"
    r"remote process exited"
)


@dataclass(frozen=True)
class Peer:
    """Where one rank runs: its global rank, its host's name and the address the others reach it at."""

    rank: int
    host: str
    address: str


def own_address() -> str:
    """The address this process reaches the run's main host from (the one its peers see it at)."""
    main = os.environ.get("MASTER_ADDR", "127.0.0.1")
    port = int(os.environ.get("MASTER_PORT", "29500"))
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((main, port))  # a UDP "connection" sends nothing: it only picks the route
            return probe.getsockname()[0]
    except OSError:
        return "unknown"


class PeerTable(L.Callback):
    """Gathers every rank's host and address at the start of fitting, for `lost_rank_error`.

    One `all_gather_object` when the process group is up (a run of one process gathers nothing); the
    table is logged once, by rank 0, so the log shows which rank ran where.
    """

    def __init__(self) -> None:
        self.peers: list[Peer] = []

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or trainer.world_size < 2 or not dist.is_initialized():
            return
        mine = Peer(trainer.global_rank, socket.gethostname(), own_address())
        gathered: list[Peer | None] = [None] * trainer.world_size
        dist.all_gather_object(gathered, mine)
        self.peers = [peer for peer in gathered if peer is not None]
        if trainer.is_global_zero:
            log.info("ranks: %s", ", ".join(f"{p.rank} on {p.host} ({p.address})" for p in self.peers))


def lost_rank_error(error: BaseException, trainer: L.Trainer) -> LostRank | Preempted | None:
    """The one-paragraph `LostRank` behind a failed collective of a run of several ranks, else None.

    A rank that had saved to stop on a signal (`PreemptionCheckpoint`) gets that `Preempted` instead:
    every rank stops at the same step, and the first to exit ends the collectives of the others.
    """
    preemption = next((c for c in trainer.callbacks if isinstance(c, PreemptionCheckpoint)), None)
    if preemption is not None and (stop := preemption.saved_stop()) is not None:
        return stop
    table = next((c for c in trainer.callbacks if isinstance(c, PeerTable)), None)
    if table is None or not table.peers or trainer.world_size < 2:
        return None
    message = " ".join(str(e) for e in _chain(error))
    if not isinstance(error, dist.DistError) and not LOST_PEER.search(message):
        return None
    addresses = {_normal(found) for found in PEER_ADDRESS.findall(message)}
    me = trainer.global_rank
    lost = [p for p in table.peers if _normal(p.address) in addresses and p.rank != me]
    who = (
        "lost " + ", ".join(f"rank {p.rank} (host {p.host}, {p.address})" for p in lost)
        if lost
        else "a rank stopped answering"
    )
    reason = next((line.strip() for line in message.splitlines() if LOST_PEER.search(line)), message.strip())
    return LostRank(
        f"{who} at step {trainer.global_step}: rank {me} on {socket.gethostname()} waited for it in a collective "
        f"and gave up ({_last_part(reason)}). Its process or node went away, or the network between them "
        f"failed. {_resume_hint(_last_checkpoint(trainer))} A silent rank ends the others after device.timeout_s "
        f"({_timeout_s(trainer)} s here)."
    )


def _last_checkpoint(trainer: L.Trainer) -> Path | None:
    callback = trainer.checkpoint_callback
    if callback is None:
        return None
    last = Path(callback.dirpath or trainer.default_root_dir) / "last.ckpt"
    newest = last if last.exists() else Path(callback.last_model_path or callback.best_model_path or last)
    return newest if newest.exists() else None


def _resume_hint(checkpoint: Path | None) -> str:
    where = f"the last checkpoint, {checkpoint}" if checkpoint else "the last checkpoint of this run folder"
    return (
        f"Start the run again on every node with resume=true (the same hydra.run.dir), or requeue the SLURM "
        f"job: training continues from {where}."
    )


def _timeout_s(trainer: L.Trainer) -> str:
    timeout = getattr(trainer.strategy, "_timeout", None)
    return f"{timeout.total_seconds():g}" if timeout is not None else "?"


def _chain(error: BaseException | None):
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def _normal(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


def _last_part(reason: str, limit: int = 200) -> str:
    reason = re.sub(r"^\[[^\]]*\.(cc|cpp|h):\d+\]\s*", "", reason)  # gloo's "[../pair.cc:534] " prefix
    reason = re.split(r"(?<=[a-z])\. ", reason, maxsplit=1)[0].rstrip(".")  # its first sentence
    return reason if len(reason) <= limit else reason[: limit - 3] + "..."


class _RankZero(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(rank_zero_only, "rank", 0) == 0  # Lightning sets it once the ranks are known


def log_files_on_rank_zero() -> None:
    """Keeps the root logger's file handlers (Hydra's `train.log`) to global rank 0 of a distributed run."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and not any(
            isinstance(f, _RankZero) for f in handler.filters
        ):
            handler.addFilter(_RankZero())
