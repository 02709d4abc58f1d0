"""Preparing a corpus into memory-mapped arrays: content, caching, rebuilds, races, interruptions, damage."""

from __future__ import annotations

import gzip
import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seq2seq.config import PROJECT_ROOT
from seq2seq.data import corpus as corpus_module
from seq2seq.data import encoding as encoding_module
from seq2seq.data import prepare as prepare_module
from seq2seq.data.corpus import CorpusError
from seq2seq.data.datamodule import TranslationDataModule
from seq2seq.data.encoding import Shard
from seq2seq.data.mapped import MappedPairs
from seq2seq.data.prepare import prepare
from seq2seq.data.shards import merge_shards, prepare_shard
from seq2seq.data.sources import CorpusFiles, PrepareSettings
from seq2seq.data.vocab import EOS_ID, UNK_ID
from seq2seq.errors import InputError

BUNDLED = PROJECT_ROOT / "data" / "bundled"
VOCAB = {"vocab_size": 300, "model_type": "bpe", "joint": True, "character_coverage": 1.0, "seed": 0}


def bundled_lines(split: str, side: str, count: int) -> list[str]:
    return gzip.open(BUNDLED / f"{split}.{side}.gz", "rt").read().splitlines()[:count]


def make_corpus(folder: Path, train: int = 600, prefix: str = "train", skip: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in ((prefix, train), ("valid", 30), ("test", 30)):
        for side, lang in (("src", "de"), ("tgt", "en")):
            source = "train" if split == prefix else split
            lines = bundled_lines(source, side, count + skip)[skip:]
            (folder / f"{split}.{lang}").write_text("\n".join(lines) + "\n")
    return folder


def prepare_corpus(
    corpus: Path, root: Path, train: list[str] | None = None, **settings
) -> prepare_module.Prepared:
    files = CorpusFiles.find(corpus, "de", "en", train)
    return prepare(
        files, PrepareSettings(**{"vocab": VOCAB, **settings}), root / "prepared", root / "spm", workers=2
    )


def test_arrays_hold_the_sentencepiece_ids_and_evaluation_splits_keep_their_text(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    prepared = prepare_corpus(corpus, tmp_path)
    assert prepared.built
    vocabs = prepared.vocabs()
    train = MappedPairs(prepared.folder, "train", prepared.manifest)
    src, tgt = (corpus / "train.de").read_text().splitlines(), (corpus / "train.en").read_text().splitlines()
    assert len(train) == 600 and train.text is None
    expected_src, expected_tgt = vocabs.src.encode(src), vocabs.tgt.encode(tgt)
    for index in (0, 1, 299, 599):
        assert train[index] == (index, expected_src[index], expected_tgt[index])
    assert train.src_lengths.tolist() == [len(ids) + 1 for ids in expected_src]
    valid = MappedPairs(prepared.folder, "valid", prepared.manifest)
    assert valid.text.tgt == (corpus / "valid.en").read_text().splitlines()
    assert prepared.manifest["token_dtype"] == "uint16"
    assert all(
        json.loads((prepared.folder / "manifest.json").read_text())["splits"][s]["pairs"]
        for s in ("train", "valid", "test")
    )


def test_second_call_maps_the_same_folder_without_preparing(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    first = prepare_corpus(corpus, tmp_path)
    os.utime(corpus / "train.de")  # a new modification time, the same bytes: checked by hash, still valid
    again = prepare_corpus(corpus, tmp_path)
    assert not again.built and again.folder == first.folder


def test_a_changed_corpus_file_or_setting_is_prepared_again(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    first = prepare_corpus(corpus, tmp_path)
    before = MappedPairs(first.folder, "train", first.manifest)[0]
    lines = (corpus / "train.de").read_text().splitlines()
    (corpus / "train.de").write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    changed = prepare_corpus(corpus, tmp_path)
    assert changed.built and changed.folder == first.folder
    assert MappedPairs(changed.folder, "train", changed.manifest)[0][1] != before[1]
    other_vocab = prepare_corpus(corpus, tmp_path, vocab={**VOCAB, "vocab_size": 280})
    assert other_vocab.built and other_vocab.folder != first.folder


def test_empty_and_overlong_pairs_are_counted_with_line_numbers_across_worker_chunks(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(encoding_module, "CHUNK_PAIRS", 50)  # several chunks in flight on two workers
    corpus = make_corpus(tmp_path / "corpus")
    lines = (corpus / "train.en").read_text().splitlines()
    for number in (4, 120, 577):
        lines[number - 1] = "  "
    (corpus / "train.en").write_text("\n".join(lines) + "\n")
    prepared = prepare_corpus(corpus, tmp_path, max_length=12)
    counts = prepared.manifest["splits"]["train"]
    assert counts["empty"] == {str(corpus.resolve() / "train.de"): [3, [4, 120, 577]]}
    assert 0 < counts["too_long"] and counts["pairs"] == 597 - counts["too_long"]
    assert counts["longest"]["src"] <= 12 and counts["lines"] == [600]
    with pytest.raises(CorpusError, match=r"3 line\(s\) with an empty side \(lines 4, 120, 577\)"):
        prepare_corpus(corpus, tmp_path, empty_lines="error")


def test_lines_end_at_newline_only_and_a_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    src = (corpus / "train.de").read_text().splitlines()
    src[2] = src[2].replace(" ", " \r ", 1)  # a stray carriage return inside line 3: still one line
    (corpus / "train.de").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(src).encode() + b"\r\n")
    prepared = prepare_corpus(corpus, tmp_path)
    assert prepared.manifest["splits"]["train"]["pairs"] == 600
    vocabs = prepared.vocabs()
    train = MappedPairs(prepared.folder, "train", prepared.manifest)
    assert train[0][1] == vocabs.src.encode([src[0]])[0]  # no mark glued to the first token


def test_several_training_corpora_make_one_split_with_their_line_counts(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus", train=400, prefix="europarl")
    make_corpus(corpus, train=250, prefix="news", skip=400)
    prepared = prepare_corpus(corpus, tmp_path, train=["europarl", "news"])
    counts = prepared.manifest["splits"]["train"]
    assert counts["lines"] == [400, 250] and counts["pairs"] == 650
    vocabs = prepared.vocabs()
    train = MappedPairs(prepared.folder, "train", prepared.manifest)
    assert train[400][1] == vocabs.src.encode([(corpus / "news.de").read_text().splitlines()[0]])[0]


def race(corpus: str, root: str, results) -> None:
    results.put(prepare_corpus(Path(corpus), Path(root)).built)


def test_two_processes_at_once_prepare_once_and_share_the_result(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [context.Process(target=race, args=(str(corpus), str(tmp_path), results)) for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0, 0]
    assert sorted(results.get() for _ in processes) == [
        False,
        True,
    ]  # one prepared, the other waited and mapped
    assert len([p for p in (tmp_path / "spm").iterdir() if p.is_dir()]) == 1  # sentencepiece trained once
    assert len([p for p in (tmp_path / "prepared").iterdir() if p.is_dir()]) == 1  # no partial folder left


KILLED_BEFORE_MANIFEST = """
import os, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from seq2seq.data import prepared_format
from test_prepare import prepare_corpus
real = prepared_format.atomic_write_bytes
def write(path, data):
    if path.name == "manifest.json":
        os._exit(9)  # killed after every array was written, before the manifest
    real(path, data)
prepared_format.atomic_write_bytes = write
prepare_corpus(Path({corpus!r}), Path({root!r}))
"""


def test_a_preparation_killed_mid_write_leaves_no_manifest_and_is_redone(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    script = KILLED_BEFORE_MANIFEST.format(
        tests=str(Path(__file__).parent), corpus=str(corpus), root=str(tmp_path)
    )
    killed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert killed.returncode == 9, killed.stderr
    assert not list((tmp_path / "prepared").glob("*/manifest.json"))
    redone = prepare_corpus(corpus, tmp_path)
    assert redone.built and (redone.folder / "manifest.json").is_file()
    assert not list((tmp_path / "prepared").glob("*.partial"))  # the killed run's leftovers are swept


def test_a_damaged_array_file_is_named_in_one_clear_error(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    prepared = prepare_corpus(corpus, tmp_path)
    damaged = prepared.folder / "train.tgt.tokens"
    damaged.write_bytes(damaged.read_bytes()[:-6])
    with pytest.raises(
        CorpusError, match=r"Prepared data are damaged: .*train\.tgt\.tokens: it has \d+ bytes"
    ) as error:
        MappedPairs(prepared.folder, "train", prepared.manifest)
    assert f"Delete the folder {prepared.folder}" in str(error.value)


def test_shards_prepared_apart_and_merged_equal_one_preparation(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(encoding_module, "CHUNK_PAIRS", 70)  # several chunks per shard
    monkeypatch.setattr(corpus_module, "BLOCK", 1000)  # shards count lines over several blocks
    corpus = make_corpus(tmp_path / "corpus", train=400, prefix="europarl")
    make_corpus(corpus, train=250, prefix="news", skip=400)  # shard 1 of 3 spans both corpora
    lines = (corpus / "news.en").read_text().splitlines()
    lines[9] = ""  # an empty line in shard 2's run: reported as line 10 of news.de
    (corpus / "news.en").write_text("\n".join(lines) + "\n")
    train = ["europarl", "news"]
    whole = prepare_corpus(corpus, tmp_path / "one", train=train, max_length=14)
    assert whole.manifest["splits"]["train"]["empty"] == {str(corpus.resolve() / "news.de"): [1, [10]]}
    files = CorpusFiles.find(corpus, "de", "en", train)
    settings = PrepareSettings(vocab=VOCAB, max_length=14)
    sharded = tmp_path / "sharded"
    with pytest.raises(
        CorpusError, match=r"Cannot merge: shard 0 of 3 .* is missing or unfinished.*--shard 0/3"
    ):
        merge_shards(files, settings, sharded / "prepared", sharded / "spm", 3, workers=2)
    for index in (2, 0, 1):  # any order, as the jobs of an array happen to run
        prepare_shard(files, settings, sharded / "prepared", sharded / "spm", Shard(index, 3), workers=2)
    merged = merge_shards(files, settings, sharded / "prepared", sharded / "spm", 3, workers=2)
    assert merged.built and merged.folder.name == whole.folder.name
    assert merged.manifest["splits"] == whole.manifest["splits"]
    for path in whole.folder.iterdir():
        if path.name != "manifest.json":
            assert (merged.folder / path.name).read_bytes() == path.read_bytes(), path.name


def test_the_output_layer_scores_the_pieces_the_training_targets_use(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus")
    settings = {"path": str(corpus), "src_lang": "de", "tgt_lang": "en", "vocab": VOCAB}
    settings |= {"cache_dir": str(tmp_path / "spm"), "prepared_dir": str(tmp_path / "prepared")}
    datamodule = TranslationDataModule(**settings, prepare_workers=1)
    datamodule.setup("fit")
    scored = datamodule.output_ids()
    train = datamodule.splits["train"]
    used = {t for i in range(len(train)) for t in train[i][2]}
    assert set(scored) == used | {UNK_ID, EOS_ID} and len(scored) < len(datamodule.vocabs.tgt)  # joint
    assert datamodule.net_sizes()["output_ids"] == scored
    everything = TranslationDataModule(**settings, prepare_workers=1, output_vocab="all")
    everything.setup("fit")
    assert everything.output_ids() is None
    with pytest.raises(InputError, match="data.output_vocab='some' is not an option"):
        TranslationDataModule(**settings, output_vocab="some")
