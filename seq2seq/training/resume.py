"""Which checkpoint a run resumes from, and whether it can: readable and trained on the same vocabulary."""

from __future__ import annotations

import logging
from pathlib import Path

from seq2seq.data.vocab import Vocabs
from seq2seq.training.checkpoint import CheckpointError, read_checkpoint, saved_vocabs

log = logging.getLogger(__name__)


def checkpoint_to_resume(ckpt_path: str | None, resume: bool, checkpoint_dir: Path | None) -> Path | None:
    """`ckpt_path=PATH` or `ckpt_path=last` (this run's `last.ckpt`, which must exist), or with
    `resume=true` this run's `last.ckpt` when there is one (a fresh start otherwise, e.g. a requeued job's first try).
    `checkpoint_dir` is None when the run writes no checkpoints (`callbacks.model_checkpoint=null`).
    """
    if ckpt_path and ckpt_path != "last":
        if not Path(ckpt_path).is_file():
            raise CheckpointError(
                f"ckpt_path={ckpt_path}: no such file. Pass a .ckpt from a run's checkpoints/ folder, or ckpt_path=last."
            )
        return Path(ckpt_path)
    if ckpt_path != "last" and not resume:
        return None
    if checkpoint_dir is None:
        raise CheckpointError(
            f"{'ckpt_path=last' if ckpt_path == 'last' else 'resume=true'} resumes from this run's last.ckpt, but "
            f"callbacks.model_checkpoint=null switched checkpoints off: drop that override, or pass a checkpoint "
            f"file as ckpt_path=PATH."
        )
    last = checkpoint_dir / "last.ckpt"
    if last.is_file():
        return last
    if ckpt_path == "last":
        raise CheckpointError(
            f"ckpt_path=last: there is no {last}. Resume in the interrupted run's folder "
            f"(hydra.run.dir=<that folder>), or pass the checkpoint file itself as ckpt_path=PATH."
        )
    log.info("resume=true: no %s yet, starting from scratch", last)
    return None


def check_resumable(path: Path, vocabs: Vocabs) -> None:
    """Raises CheckpointError unless `path` is a readable checkpoint of ours trained with these vocabularies."""
    saved = saved_vocabs(read_checkpoint(path))
    same = saved.src.model_bytes == vocabs.src.model_bytes and saved.tgt.model_bytes == vocabs.tgt.model_bytes
    if not same or saved.joint != vocabs.joint:
        raise CheckpointError(
            f"{path} was trained with other sentencepiece vocabularies than this run's data gives "
            f"(data.path, data.src_lang/tgt_lang and data.vocab.* decide them): its embeddings would index the "
            f"wrong pieces. Resume with the data settings of the run that wrote it (its config.yaml), or start a new "
            f"run without ckpt_path/resume."
        )
