"""A failed collective turned into the one-paragraph LostRank, and the run's files kept to rank 0."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from seq2seq.errors import Preempted
from seq2seq.training.csv_logger import ContinuingCSVLogger
from seq2seq.training.distributed import Peer, PeerTable, log_files_on_rank_zero, lost_rank_error
from seq2seq.training.preemption import PreemptionCheckpoint

GLOO_CLOSED = (
    "[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Read error [10.0.0.12]:4312: Connection reset by "
    "peer. This is typically caused by a remote worker hanging or bugs in the application."
)


def trainer_of(peers: list[Peer], rank: int = 0, tmp_path=None) -> SimpleNamespace:
    table = PeerTable()
    table.peers = peers
    checkpoint = SimpleNamespace(dirpath=str(tmp_path), last_model_path="", best_model_path="")
    return SimpleNamespace(
        callbacks=[table],
        world_size=len(peers),
        global_rank=rank,
        global_step=45,
        strategy=SimpleNamespace(_timeout=timedelta(seconds=60)),
        checkpoint_callback=checkpoint,
        default_root_dir=str(tmp_path),
    )


FOUR = [
    Peer(0, "node1", "10.0.0.11"),
    Peer(1, "node1", "10.0.0.11"),
    Peer(2, "node2", "10.0.0.12"),
    Peer(3, "node2", "10.0.0.12"),
]


def test_a_peer_address_in_gloos_message_names_the_ranks_of_that_host(tmp_path) -> None:
    (tmp_path / "last.ckpt").write_bytes(b"x")
    error = lost_rank_error(RuntimeError(GLOO_CLOSED), trainer_of(FOUR, rank=1, tmp_path=tmp_path))
    assert error is not None
    text = str(error)
    assert text.startswith("lost rank 2 (host node2, 10.0.0.12), rank 3 (host node2, 10.0.0.12) at step 45:")
    assert "(Read error [10.0.0.12]:4312: Connection reset by peer)" in text  # gloo's first sentence only
    assert f"{tmp_path / 'last.ckpt'}" in text and "resume=true" in text and "(60 s here)" in text
    assert "\n" not in text


def test_a_timeout_without_an_address_says_a_rank_stopped_answering(tmp_path) -> None:
    error = lost_rank_error(
        RuntimeError("[pair.cc:598] Timed out waiting 60000ms for recv operation to complete"),
        trainer_of(FOUR, tmp_path=tmp_path),
    )
    assert error is not None and str(error).startswith("a rank stopped answering at step 45")
    assert "the last checkpoint of this run folder" in str(error)  # none saved yet


def test_a_collective_queued_behind_the_timeout_is_a_rank_stopped_answering_too(tmp_path) -> None:
    """The timeout closes gloo's pair to the silent peer; an all-reduce queued on that pair then fails with
    its own message (a plain RuntimeError, as torch 2.13 raises it), and that may be the one raised."""
    error = lost_rank_error(
        RuntimeError("Application timeout caused pair closure"), trainer_of(FOUR, tmp_path=tmp_path)
    )
    assert error is not None and str(error).startswith("a rank stopped answering at step 45")
    assert "(Application timeout caused pair closure)" in str(error)


@pytest.mark.parametrize("peers", [FOUR, FOUR[:1]], ids=["four ranks", "one process"])
def test_other_errors_and_single_process_runs_are_left_as_they_are(peers, tmp_path) -> None:
    assert lost_rank_error(ValueError("a bad value"), trainer_of(peers, tmp_path=tmp_path)) is None
    if len(peers) == 1:
        assert lost_rank_error(RuntimeError(GLOO_CLOSED), trainer_of(peers, tmp_path=tmp_path)) is None


def test_train_log_gets_the_records_of_rank_zero_only(tmp_path, monkeypatch) -> None:
    handler = logging.FileHandler(tmp_path / "train.log")
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        log_files_on_rank_zero()
        log_files_on_rank_zero()  # idempotent: one filter
        assert len(handler.filters) == 1
        logger = logging.getLogger("seq2seq.test")
        logger.setLevel(logging.INFO)
        monkeypatch.setattr(rank_zero_only, "rank", 1, raising=False)
        logger.info("from rank 1")
        monkeypatch.setattr(rank_zero_only, "rank", 0, raising=False)
        logger.info("from rank 0")
        handler.flush()
        assert (tmp_path / "train.log").read_text() == "from rank 0\n"
    finally:
        root.removeHandler(handler)
        handler.close()


def test_a_rank_that_saved_to_stop_reports_the_stop_not_a_lost_peer(tmp_path) -> None:
    trainer = trainer_of(FOUR, tmp_path=tmp_path)
    preemption = PreemptionCheckpoint()
    preemption._stopping = "Stopped by SIGUSR1 after step 17"
    trainer.callbacks.append(preemption)
    error = lost_rank_error(RuntimeError(GLOO_CLOSED), trainer)
    assert isinstance(error, Preempted) and str(error) == "Stopped by SIGUSR1 after step 17"


def test_the_csv_log_of_a_resumed_run_is_read_and_rewritten_by_rank_zero_only(tmp_path, monkeypatch) -> None:
    logger = ContinuingCSVLogger(save_dir=str(tmp_path), name="", version="")
    metrics = Path(logger.log_dir) / "metrics.csv"
    metrics.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_text("step,train/loss\n0,5.0\n")
    monkeypatch.setattr(rank_zero_only, "rank", 1, raising=False)
    logger.experiment  # noqa: B018 -- a rank other than 0 gets Lightning's dummy: the file is left alone
    assert metrics.read_text() == "step,train/loss\n0,5.0\n"
    monkeypatch.setattr(rank_zero_only, "rank", 0, raising=False)
    assert logger.experiment._earlier == [{"step": "0", "train/loss": "5.0"}]  # rank 0 keeps the rows
