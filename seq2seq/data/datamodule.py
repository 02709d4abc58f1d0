"""The LightningDataModule: parallel files -> prepared, memory-mapped ids -> bucketed, padded batches."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from seq2seq.data.batch import Batch, collate
from seq2seq.data.corpus import ParallelText
from seq2seq.data.loader import ResumableDataLoader
from seq2seq.data.mapped import MappedPairs
from seq2seq.data.prepare import Prepared, prepare
from seq2seq.data.prepared_format import SPLITS
from seq2seq.data.sampler import BucketBatchSampler
from seq2seq.data.sources import CorpusFiles, PrepareSettings
from seq2seq.data.vocab import EOS_ID, UNK_ID, Vocabs
from seq2seq.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LargestBatch:
    """The training batch that costs the most memory, and what it costs."""

    batch: Batch
    longest: int  # tokens of its longest pair

    @property
    def padded_tokens(self) -> int:
        """Sentences x the longest pair's tokens: what data.max_tokens bounds."""
        return len(self.batch) * self.longest


class TranslationDataModule(L.LightningDataModule):
    """Prepares `path/{train,valid,test}.{src_lang,tgt_lang}` (plain or .gz) once and serves bucketed batches.

    `setup` maps the prepared arrays (`seq2seq.data.prepare`), preparing them first when no folder
    matches the files and settings; under DDP or SLURM one process prepares and the others wait.

    Args:
        path: folder of the parallel files.
        src_lang: source file suffix.
        tgt_lang: target file suffix.
        vocab: keyword arguments of `build_vocabs` (vocab_size, model_type, joint, character_coverage, seed).
        cache_dir: where trained sentencepiece models are cached.
        prepared_dir: where prepared corpora are kept (one folder per files + settings).
        train: training corpora as file prefixes (`P` means `P.{src_lang}` and `P.{tgt_lang}`, relative to
            `path`), prepared as one training split; None is `path/train`.
        prepare_workers: processes that encode the corpus (None: the CPUs available, at most 8).
        max_tokens: padded-token budget of a training batch.
        max_sentences: optional cap on pairs per batch.
        eval_max_tokens: budget of validation/test batches (no gradients: can be larger).
        bucketing: length-bucketed batches (True) or random batches of the same budget (False).
        output_vocab: which target pieces the model's output layer scores: "seen" (those the training
            targets use, and `<unk>` and `<eos>`) or "all". A joint vocabulary's target side uses about
            half of its pieces: "seen" halves the largest layer of a step (`Seq2Seq`'s `output_ids`).
        max_length: longest training pair (tokens, either side) that is kept as it is.
        too_long: "drop" training pairs longer than `max_length` or "truncate" them to it (counted in the log).
        empty_lines: "skip" pairs with an empty side (counted in the log) or "error" naming the lines.
        num_workers: DataLoader worker processes.
        seed: base seed of the batch shuffling.
    """

    def __init__(
        self,
        path: str,
        src_lang: str,
        tgt_lang: str,
        vocab: dict,
        cache_dir: str,
        prepared_dir: str | None = None,
        train: list[str] | None = None,
        prepare_workers: int | None = None,
        max_tokens: int = 4096,
        max_sentences: int | None = None,
        eval_max_tokens: int | None = None,
        bucketing: bool = True,
        output_vocab: str = "seen",
        max_length: int | None = None,
        too_long: str = "drop",
        empty_lines: str = "skip",
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        for key, value, allowed in (
            ("too_long", too_long, ("drop", "truncate")),
            ("empty_lines", empty_lines, ("skip", "error")),
            ("output_vocab", output_vocab, ("seen", "all")),
        ):
            if value not in allowed:
                raise InputError(f"data.{key}={value!r} is not an option: use one of {', '.join(allowed)}.")
        super().__init__()
        self.path = Path(path)
        self.src_lang, self.tgt_lang = src_lang, tgt_lang
        self.vocab_settings = dict(vocab)
        self.cache_dir = cache_dir
        self.prepared_dir = prepared_dir or str(Path(cache_dir).parent / "prepared")
        self.train = list(train) if train else None
        self.prepare_workers = prepare_workers
        self.max_tokens, self.max_sentences = max_tokens, max_sentences
        self.eval_max_tokens = eval_max_tokens or max_tokens
        self.bucketing, self.max_length = bucketing, max_length
        self.output_vocab = output_vocab
        self.too_long, self.empty_lines = too_long, empty_lines
        self.num_workers, self.seed = num_workers, seed
        self.vocabs: Vocabs | None = None
        self.splits: dict[str, MappedPairs] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.vocabs is not None:
            return
        prepared = self.prepare()
        log.info(
            "%s %s",
            "prepared the corpus into" if prepared.built else "mapping the corpus prepared in",
            prepared.folder,
        )
        prepared.log_counts()
        self.vocabs = prepared.vocabs()
        self.splits = {split: MappedPairs(prepared.folder, split, prepared.manifest) for split in SPLITS}

    def output_ids(self) -> list[int] | None:
        """The target pieces the output layer scores (see `output_vocab`): ascending ids, or None for all."""
        if self.output_vocab == "all":
            return None
        used = self.splits["train"].tgt.used_ids(len(self.vocabs.tgt))
        return sorted(set(used.tolist()) | {UNK_ID, EOS_ID})  # pad and bos are never targets

    def net_sizes(self) -> dict:
        """What the network takes from the data: `model.net`'s vocabulary sizes and scored target pieces."""
        return {
            "src_vocab_size": len(self.vocabs.src),
            "tgt_vocab_size": len(self.vocabs.tgt),
            "output_ids": self.output_ids(),
        }

    def prepare(self) -> Prepared:
        """The prepared folder of this corpus and these settings, made now if none matches."""
        return prepare(
            self.corpus_files(),
            self.prepare_settings(),
            self.prepared_dir,
            self.cache_dir,
            self.prepare_workers,
        )

    def corpus_files(self) -> CorpusFiles:
        return CorpusFiles.find(self.path, self.src_lang, self.tgt_lang, self.train)

    def prepare_settings(self) -> PrepareSettings:
        return PrepareSettings(self.vocab_settings, self.max_length, self.too_long, self.empty_lines)

    def loader(self, split: str, max_tokens: int, train: bool) -> DataLoader:
        """Batches of `split` under `max_tokens`: shuffled and cut anew each epoch as training batches
        (`train`, sharded over the trainer's ranks), or in a fixed order as evaluation batches."""
        dataset = self.splits[split]
        trainer = self.trainer
        sampler = BucketBatchSampler(
            dataset.src_lengths,
            dataset.tgt_lengths,
            max_tokens=max_tokens,
            max_sentences=self.max_sentences,
            bucketing=self.bucketing if train else True,
            shuffle=train,
            seed=self.seed,
            # Evaluation runs whole on every rank, so each rank's metric covers the full split.
            num_replicas=trainer.world_size if train and trainer else 1,
            rank=trainer.global_rank if train and trainer else 0,
        )
        # The training loader's position is checkpointed (mid-epoch resume). Its own generator keeps
        # DataLoader from drawing its base seed from the global RNG, which a resumed run would draw
        # at another point than the uninterrupted one (and so change every later dropout mask).
        loader = ResumableDataLoader if train else DataLoader
        return loader(
            dataset,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", self.max_tokens, train=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader("valid", self.eval_max_tokens, train=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", self.eval_max_tokens, train=False)

    def references(self, split: str) -> ParallelText:
        """The text of an evaluation split ("valid" or "test"): sources and references, in corpus order."""
        return self.splits[split].text

    def train_lengths(self) -> tuple[np.ndarray, np.ndarray]:
        """Token lengths of every training pair: (source, target)."""
        train = self.splits["train"]
        return train.src_lengths, train.tgt_lengths

    def largest_train_batch(self) -> LargestBatch:
        """The training batch with the most padded slots (what data.max_tokens bounds), collated."""
        loader = self.train_dataloader()
        ids = loader.batch_sampler.largest_batch()
        longest = int(loader.batch_sampler.longest()[ids].max())
        return LargestBatch(collate([loader.dataset[i] for i in ids]), longest)

    def save_vocabs(self, folder: Path) -> list[Path]:
        """Copies the sentencepiece models in use into `folder` (the run directory)."""
        return self.vocabs.save(folder)
