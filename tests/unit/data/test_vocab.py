"""Sentencepiece vocabularies: fixed special ids, round trips, and the cache of trained models."""

from pathlib import Path

from seq2seq.data.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID, build_vocabs

SRC = [f"der hund {i} sieht die katze" for i in range(200)]
TGT = [f"the dog {i} sees the cat" for i in range(200)]


def test_special_ids_are_fixed_and_text_round_trips(tmp_path: Path) -> None:
    vocabs = build_vocabs(SRC, TGT, tmp_path, vocab_size=60, model_type="bpe")
    processor = vocabs.src.processor
    assert (processor.pad_id(), processor.unk_id(), processor.bos_id(), processor.eos_id()) == (
        PAD_ID,
        UNK_ID,
        BOS_ID,
        EOS_ID,
    )
    ids = vocabs.tgt.encode(["the dog 7 sees the cat"])
    assert vocabs.tgt.decode([[BOS_ID] + ids[0] + [EOS_ID, PAD_ID]]) == ["the dog 7 sees the cat"]


def test_second_build_loads_the_cache_instead_of_retraining(tmp_path: Path) -> None:
    first = build_vocabs(SRC, TGT, tmp_path, vocab_size=60, model_type="bpe")
    models = list(tmp_path.glob("*/joint.model"))
    assert len(models) == 1
    stamp = models[0].stat().st_mtime_ns
    second = build_vocabs(SRC, TGT, tmp_path, vocab_size=60, model_type="bpe")
    assert models[0].stat().st_mtime_ns == stamp
    assert second.src.model_bytes == first.src.model_bytes


def test_separate_vocabularies_and_new_settings_get_their_own_models(tmp_path: Path) -> None:
    joint = build_vocabs(SRC, TGT, tmp_path, vocab_size=60, model_type="bpe")
    separate = build_vocabs(SRC, TGT, tmp_path, vocab_size=40, model_type="unigram", joint=False)
    assert joint.joint and not separate.joint
    assert separate.src.model_bytes != separate.tgt.model_bytes
    assert len([path for path in tmp_path.iterdir() if path.is_dir()]) == 2


def test_short_and_long_lists_encode_and_decode_alike(tmp_path: Path) -> None:
    """Short lists go line by line, long ones through sentencepiece's thread pool: the same ids and text."""
    vocabs = build_vocabs(SRC, TGT, tmp_path, vocab_size=60, model_type="bpe")
    lines = SRC * 2  # 400 lines: past POOLED_FROM
    ids = vocabs.src.encode(lines)
    assert [vocabs.src.encode([line])[0] for line in lines[:150]] == ids[:150]
    assert vocabs.src.decode(ids) == lines
    assert vocabs.src.decode(ids[:3]) == lines[:3] and vocabs.src.encode([]) == [] == vocabs.src.decode([])
