"""sentencepiece vocabularies: trained from the training split, cached by content, fixed special ids.

Special ids are the same in every model this framework trains, so that batches, losses and search
can rely on them: pad=0, unk=1, bos=2, eos=3.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import sentencepiece as spm

from seq2seq.data.locking import file_lock
from seq2seq.errors import InputError
from seq2seq.files import atomic_folder, atomic_write_bytes

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3

# sentencepiece encodes or decodes a list on a pool of threads it starts for that call: about 90 us
# before the first line, and more when the cores are busy, against 3-5 us per line one at a time
# (a served request, a batch of translations). The pool pays off from about this many lines.
POOLED_FROM = 128


class Vocab:
    """One sentencepiece model: text <-> ids with the fixed special ids above."""

    def __init__(self, model_bytes: bytes) -> None:
        self.model_bytes = model_bytes
        self.processor = spm.SentencePieceProcessor(model_proto=model_bytes)
        specials = (
            self.processor.pad_id(),
            self.processor.unk_id(),
            self.processor.bos_id(),
            self.processor.eos_id(),
        )
        if specials != (PAD_ID, UNK_ID, BOS_ID, EOS_ID):
            raise InputError(
                f"sentencepiece model has special ids {specials}, expected (pad, unk, bos, eos) = (0, 1, 2, 3)"
            )

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        return cls(Path(path).read_bytes())

    def __len__(self) -> int:
        return self.processor.get_piece_size()

    def encode(self, lines: list[str]) -> list[list[int]]:
        """Token ids of each line, without bos/eos."""
        if len(lines) >= POOLED_FROM:
            return self.processor.encode(lines, out_type=int)
        return [self.processor.encode(line, out_type=int) for line in lines]

    def decode(self, ids: list[list[int]]) -> list[str]:
        """Detokenized text of each id sequence; special ids are dropped."""
        kept = [[i for i in seq if i > EOS_ID] for seq in ids]
        if len(kept) >= POOLED_FROM:
            return self.processor.decode(kept)
        return [self.processor.decode(seq) for seq in kept]

    def save(self, path: Path) -> None:
        atomic_write_bytes(path, self.model_bytes)


class Vocabs:
    """Source and target vocabularies; the same object twice when the vocabulary is joint.

    A plain class rather than a dataclass: Hydra's `instantiate` would turn a dataclass argument into a config node.
    """

    def __init__(self, src: Vocab, tgt: Vocab) -> None:
        self.src, self.tgt = src, tgt

    @property
    def joint(self) -> bool:
        return self.src is self.tgt

    def save(self, folder: Path, prefix: str = "spm.") -> list[Path]:
        """Writes `{prefix}joint.model`, or `{prefix}src.model` and `{prefix}tgt.model`, into `folder`."""
        named = {"joint": self.src} if self.joint else {"src": self.src, "tgt": self.tgt}
        paths = [Path(folder) / f"{prefix}{name}.model" for name in named]
        for path, vocab in zip(paths, named.values(), strict=True):
            vocab.save(path)
        return paths

    @classmethod
    def load(cls, folder: Path, joint: bool, prefix: str = "spm.") -> Vocabs:
        """The models `save` wrote into `folder`."""
        if joint:
            model = Vocab.load(Path(folder) / f"{prefix}joint.model")
            return cls(model, model)
        return cls(
            Vocab.load(Path(folder) / f"{prefix}src.model"), Vocab.load(Path(folder) / f"{prefix}tgt.model")
        )


def train_sentencepiece(
    lines: Iterable[str], vocab_size: int, model_type: str, character_coverage: float, seed: int
) -> bytes:
    """Trains a model in memory and returns its bytes.

    `lines` may be a stream: sentencepiece keeps a random sample of at most `input_sentence_size`
    sentences (reservoir sampling), so a corpus of any size trains in bounded memory.
    """
    model = io.BytesIO()
    spm.set_random_generator_seed(seed)
    source = Reading(lines)
    try:
        train_from(source, model, vocab_size, model_type, character_coverage)
    except RuntimeError:
        if source.error is None:
            raise
    # e.g. a CorpusError: sentencepiece would report it as its own INTERNAL error
    if source.error is not None:
        raise source.error
    return model.getvalue()


class Reading:
    """Iterates `lines` for sentencepiece and keeps the first error the stream raises, to re-raise it as it was."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines, self.error = iter(lines), None

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        try:
            return next(self.lines)
        except StopIteration:
            raise
        except Exception as error:  # noqa: BLE001 -- any reader error, re-raised by train_sentencepiece
            self.error = error
            raise StopIteration from None


def train_from(
    lines: Iterator[str], model: io.BytesIO, vocab_size: int, model_type: str, character_coverage: float
) -> None:
    spm.SentencePieceTrainer.train(
        sentence_iterator=lines,
        model_writer=model,
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=character_coverage,
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        hard_vocab_limit=False,  # a small corpus may not fill vocab_size; take what it has
        input_sentence_size=2_000_000,
        shuffle_input_sentence=True,
        num_threads=os.cpu_count() or 1,
        minloglevel=2,
    )


def content_key(src: list[str], tgt: list[str]) -> str:
    """A digest of the training text itself: the cache key of vocabularies trained from in-memory lists."""
    digest = hashlib.sha256()
    for side in (src, tgt):
        digest.update("\n".join(side).encode())
        digest.update(b"\0")
    return digest.hexdigest()


def build_vocabs(
    src: Iterable[str],
    tgt: Iterable[str],
    cache_dir: str | Path,
    vocab_size: int = 8000,
    model_type: str = "unigram",
    joint: bool = True,
    character_coverage: float = 1.0,
    seed: int = 0,
    corpus_key: str | None = None,
) -> Vocabs:
    """Trains sentencepiece on the training split, or loads the models cached for the same text and settings.

    Args:
        src: training source sentences: a list, or a re-iterable stream (each `iter` reads the corpus anew).
        tgt: training target sentences, aligned with `src`.
        cache_dir: folder holding one sub-folder per (text, settings) hash.
        vocab_size: pieces per model (an upper bound: small corpora may give fewer).
        model_type: `unigram` or `bpe`.
        joint: one model for both sides (enables tied source/target embeddings) or one per side.
        character_coverage: share of characters the model must cover (1.0 for small alphabets).
        seed: sentencepiece's sampling seed.
        corpus_key: what identifies the training text (e.g. digests of its files); None hashes `src` and
            `tgt`, which must then be lists.
    """
    settings = {
        "vocab_size": vocab_size,
        "model_type": model_type,
        "joint": joint,
        "character_coverage": character_coverage,
        "seed": seed,
    }
    key = corpus_key or content_key(src, tgt)
    folder = (
        Path(cache_dir)
        / hashlib.sha256(f"{key}{json.dumps(settings, sort_keys=True)}".encode()).hexdigest()[:16]
    )
    names = ["joint"] if joint else ["src", "tgt"]
    with file_lock(Path(cache_dir) / f".{folder.name}.lock"):  # one process trains; the others wait and load
        if not all((folder / f"{name}.model").is_file() for name in names):
            corpora = {"joint": itertools.chain(src, tgt)} if joint else {"src": src, "tgt": tgt}
            models = {
                name: train_sentencepiece(corpora[name], vocab_size, model_type, character_coverage, seed)
                for name in names
            }
            with atomic_folder(folder) as staging:  # replaces an incomplete folder (a model missing)
                for name, data in models.items():
                    (staging / f"{name}.model").write_bytes(data)
                (staging / "settings.json").write_text(json.dumps(settings, indent=2))
    return Vocabs.load(folder, joint, prefix="")
