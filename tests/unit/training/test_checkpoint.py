"""The checkpoint format: what train.py writes into a checkpoint's seq2seq section reads back the same,
and a file that is missing, damaged or not ours is named in one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from seq2seq.data.vocab import build_vocabs
from seq2seq.training.checkpoint import CheckpointError, metadata, read_checkpoint, saved_rng, saved_vocabs

SRC = [f"der hund {i} sieht die katze" for i in range(200)]
TGT = [f"the dog {i} sees the cat" for i in range(200)]


@pytest.mark.parametrize("joint", [True, False])
def test_the_section_written_reads_back_the_same_vocabularies_config_and_random_states(
    tmp_path: Path, joint: bool
) -> None:
    vocabs = build_vocabs(SRC, TGT, tmp_path / "cache", vocab_size=40, model_type="bpe", joint=joint)
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {}, "seq2seq": metadata({"seed": 7}, vocabs, [{"torch": [1, 2]}])}, path)
    checkpoint = read_checkpoint(path)
    loaded = saved_vocabs(checkpoint)
    assert loaded.joint == joint
    assert (loaded.src.model_bytes, loaded.tgt.model_bytes) == (
        vocabs.src.model_bytes,
        vocabs.tgt.model_bytes,
    )
    assert checkpoint["seq2seq"]["config"] == {"seed": 7} and saved_rng(checkpoint) == {"torch": [1, 2]}


def test_a_checkpoint_from_before_random_states_were_saved_has_none() -> None:
    assert saved_rng({"seq2seq": {"config": {}, "vocabs": {}}}) is None


def test_each_rank_resumes_with_its_own_random_states_and_another_world_size_with_rank_0s() -> None:
    checkpoint = {"seq2seq": metadata({}, None, [{"torch": [0]}, {"torch": [1]}])}
    assert [saved_rng(checkpoint, rank, 2) for rank in (0, 1)] == [{"torch": [0]}, {"torch": [1]}]
    assert saved_rng(checkpoint, 2, 4) == saved_rng(checkpoint) == {"torch": [0]}
    # A checkpoint from before every rank's states were saved: rank 0's for every rank, as then.
    old = {"seq2seq": {"config": {}, "vocabs": {}, "rng": {"torch": [0]}}}
    assert saved_rng(old, 1, 2) == {"torch": [0]}


@pytest.mark.parametrize(
    "content,expected",
    [
        (None, "Checkpoint not found"),
        (b"not a checkpoint", "Cannot read checkpoint"),
        ({"state_dict": {}}, "has no seq2seq metadata"),
    ],
    ids=["missing", "damaged", "foreign"],
)
def test_a_file_that_is_not_one_of_ours_is_named_with_what_to_do(tmp_path: Path, content, expected) -> None:
    path = tmp_path / "model.ckpt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(CheckpointError, match=expected) as raised:
        read_checkpoint(path)
    assert str(path) in str(raised.value)
