"""The checkpoint format: the `seq2seq` section train.py writes beside Lightning's state, and reading it back.

The section holds what rebuilds the model without a run folder: the resolved run config, the
sentencepiece models, and the random states that make a resumed run draw what the uninterrupted one
would. `metadata` writes it and `read_checkpoint` / `load_checkpoint` read it; nothing else touches it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from seq2seq.data.vocab import Vocab, Vocabs
from seq2seq.errors import InputError
from seq2seq.models.seq2seq import Seq2Seq

log = logging.getLogger(__name__)


class CheckpointError(InputError):
    """A checkpoint is missing, unreadable or not one of ours; the message says what to do."""


def metadata(config: dict | None, vocabs: Vocabs | None, rng_by_rank: list[dict]) -> dict:
    """The checkpoint's `seq2seq` section: run config, sentencepiece models (bytes) and random states.

    `rng` is rank 0's random states (as checkpoints have always held them), `rng_by_rank` every rank's.
    """
    saved = {}
    if vocabs is not None:
        saved = {"src": vocabs.src.model_bytes, "tgt": vocabs.tgt.model_bytes, "joint": vocabs.joint}
    return {"config": config, "vocabs": saved, "rng": rng_by_rank[0], "rng_by_rank": rng_by_rank}


def saved_rng(checkpoint: dict, rank: int = 0, world_size: int = 1) -> dict | None:
    """The random states a checkpoint saved for `rank`, if any (checkpoints from before they were saved
    have none). A run of another world size than the saved one gets rank 0's, as before ranks had their own:
    it trains on, though not with the dropout masks the saved run would have drawn."""
    section = checkpoint.get("seq2seq", {})
    by_rank = section.get("rng_by_rank")
    if by_rank and len(by_rank) == world_size:
        return by_rank[rank]
    if by_rank and world_size > 1:
        log.warning(
            "the checkpoint holds the random states of %d rank(s), this run has %d: every rank resumes with "
            "rank 0's, so dropout masks differ from those of an uninterrupted run",
            len(by_rank),
            world_size,
        )
    return section.get("rng")


def saved_vocabs(checkpoint: dict) -> Vocabs:
    """The sentencepiece vocabularies a checkpoint carries."""
    saved = checkpoint["seq2seq"]["vocabs"]
    src = Vocab(saved["src"])
    return Vocabs(src, src) if saved["joint"] else Vocabs(src, Vocab(saved["tgt"]))


@dataclass
class LoadedModel:
    """A checkpoint's network (eval mode), vocabularies and resolved training config."""

    net: Seq2Seq
    vocabs: Vocabs
    config: DictConfig


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint dictionary of a file written by `train.py`, on the CPU.

    Raises:
        CheckpointError: the file is missing, is not a readable checkpoint, or lacks our metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"Checkpoint not found: {path}. Pass a .ckpt file from a run's checkpoints/ folder."
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 -- torch raises several types for truncated or foreign files
        raise CheckpointError(
            f"Cannot read checkpoint {path}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}. "
            f"The file is corrupted or not a PyTorch checkpoint; use another one (checkpoints/last.ckpt or a best-*.ckpt)."
        ) from None
    meta = checkpoint.get("seq2seq") if isinstance(checkpoint, dict) else None
    if not meta or not meta.get("config") or not meta.get("vocabs"):
        raise CheckpointError(
            f"{path} has no seq2seq metadata (config and sentencepiece models): it was not written by this "
            f"framework's train.py. Use a checkpoint from a seq2seq run directory."
        )
    return checkpoint


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Loads a checkpoint written by `train.py`; it needs no run directory, config or vocabulary files.

    Raises:
        CheckpointError: the file is missing, is not a readable checkpoint, or lacks our metadata.
    """
    checkpoint = read_checkpoint(path)
    vocabs = saved_vocabs(checkpoint)
    config = OmegaConf.create(checkpoint["seq2seq"]["config"])
    if "strategy" in config.model.net:  # written before the padding object was called `padding` in code
        config.model.net.padding = config.model.net.pop("strategy")
    weights = {
        key.removeprefix("net."): value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith("net.")
    }
    net: Seq2Seq = instantiate(
        config.model.net,
        src_vocab_size=len(vocabs.src),
        tgt_vocab_size=len(vocabs.tgt),
        output_ids=weights.get("output_ids"),  # absent before the output layer scored a subset
    )
    try:
        net.load_state_dict(weights)
    except RuntimeError as error:  # missing, unexpected or reshaped parameters
        raise CheckpointError(
            f"The weights in {path} do not fit the model this version of seq2seq builds from the checkpoint's "
            f"config ({str(error).splitlines()[1].strip() if len(str(error).splitlines()) > 1 else error}). It was "
            f"written by another version (the attention encoder, for one, changed from sinusoidal to rotary "
            f"positions); evaluate it with the version that trained it, or train it again."
        ) from None
    return LoadedModel(net.to(device).eval(), vocabs, config)
