"""The LightningDataModule: parallel files -> sentencepiece ids -> bucketed, padded batches."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from seq2seq.data.batch import collate
from seq2seq.data.corpus import CorpusError, ParallelText, read_parallel
from seq2seq.data.loader import ResumableDataLoader
from seq2seq.data.sampler import BucketBatchSampler
from seq2seq.data.vocab import Vocabs, build_vocabs
from seq2seq.errors import InputError

log = logging.getLogger(__name__)


@dataclass
class PairDataset(Dataset):
    """Token ids of one split plus its raw text (references for BLEU)."""

    text: ParallelText
    src_ids: list[list[int]]
    tgt_ids: list[list[int]]

    def __len__(self) -> int:
        return len(self.src_ids)

    def __getitem__(self, index: int) -> tuple[int, list[int], list[int]]:
        return index, self.src_ids[index], self.tgt_ids[index]

    @property
    def src_lengths(self) -> list[int]:
        return [len(ids) + 1 for ids in self.src_ids]  # + eos, as collated

    @property
    def tgt_lengths(self) -> list[int]:
        return [len(ids) + 1 for ids in self.tgt_ids]


def drop_pairs(text: ParallelText, keep: list[bool]) -> ParallelText:
    src = [s for s, k in zip(text.src, keep) if k]
    tgt = [t for t, k in zip(text.tgt, keep) if k]
    return ParallelText(src, tgt, text.src_path, text.tgt_path)


class TranslationDataModule(L.LightningDataModule):
    """Reads `path/{train,valid,test}.{src_lang,tgt_lang}` (plain or .gz) and serves bucketed batches.

    Args:
        path: folder of the parallel files.
        src_lang: source file suffix.
        tgt_lang: target file suffix.
        vocab: keyword arguments of `build_vocabs` (vocab_size, model_type, joint, character_coverage).
        cache_dir: where trained sentencepiece models are cached.
        max_tokens: padded-token budget of a training batch.
        max_sentences: optional cap on pairs per batch.
        eval_max_tokens: budget of validation/test batches (no gradients: can be larger).
        bucketing: length-bucketed batches (True) or random batches of the same budget (False).
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
        max_tokens: int = 4096,
        max_sentences: int | None = None,
        eval_max_tokens: int | None = None,
        bucketing: bool = True,
        max_length: int | None = None,
        too_long: str = "drop",
        empty_lines: str = "skip",
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        for key, value, allowed in (("too_long", too_long, ("drop", "truncate")), ("empty_lines", empty_lines, ("skip", "error"))):
            if value not in allowed:
                raise InputError(f"data.{key}={value!r} is not an option: use one of {', '.join(allowed)}.")
        super().__init__()
        self.path = Path(path)
        self.src_lang, self.tgt_lang = src_lang, tgt_lang
        self.vocab_settings = dict(vocab)
        self.cache_dir = cache_dir
        self.max_tokens, self.max_sentences = max_tokens, max_sentences
        self.eval_max_tokens = eval_max_tokens or max_tokens
        self.bucketing, self.max_length = bucketing, max_length
        self.too_long, self.empty_lines = too_long, empty_lines
        self.num_workers, self.seed = num_workers, seed
        self.vocabs: Vocabs | None = None
        self.splits: dict[str, PairDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.vocabs is not None:
            return
        train = self._clean(read_parallel(self.path, "train", self.src_lang, self.tgt_lang), "train")
        if not train.src:
            raise CorpusError(
                f"{train.src_path}: no training pair is left once pairs with an empty side are skipped. "
                f"Check that {train.src_path.name} and {train.tgt_path.name} hold text on the same lines."
            )
        self.vocabs = build_vocabs(train.src, train.tgt, self.cache_dir, **self.vocab_settings)
        self.splits["train"] = self._encode(train, limit=self.max_length)
        for split in ("valid", "test"):
            self.splits[split] = self._encode(self._clean(read_parallel(self.path, split, self.src_lang, self.tgt_lang), split))

    def _clean(self, text: ParallelText, split: str) -> ParallelText:
        keep = [bool(s) and bool(t) for s, t in zip(text.src, text.tgt)]
        if all(keep):
            return text
        empty = [number for number, kept in enumerate(keep, start=1) if not kept]
        shown = ", ".join(map(str, empty[:10])) + (", ..." if len(empty) > 10 else "")
        if self.empty_lines == "error":
            raise CorpusError(
                f"{text.src_path} / {text.tgt_path}: {len(empty)} line(s) with an empty side (lines {shown}). "
                f"Remove them from both files, or set data.empty_lines=skip to leave those pairs out."
            )
        log.warning("%s: skipped %d pairs with an empty side (lines %s of %s)", split, len(empty), shown, text.src_path)
        return drop_pairs(text, keep)

    def _encode(self, text: ParallelText, limit: int | None = None) -> PairDataset:
        src_ids, tgt_ids = self.vocabs.src.encode(text.src), self.vocabs.tgt.encode(text.tgt)
        if limit is None:
            return PairDataset(text, src_ids, tgt_ids)
        keep = [len(s) <= limit and len(t) <= limit for s, t in zip(src_ids, tgt_ids)]
        if all(keep):
            return PairDataset(text, src_ids, tgt_ids)
        if self.too_long == "truncate":
            log.warning("truncated %d training pairs to data.max_length=%d tokens", keep.count(False), limit)
            return PairDataset(text, [s[:limit] for s in src_ids], [t[:limit] for t in tgt_ids])
        log.warning("dropped %d training pairs longer than data.max_length=%d (data.too_long=truncate keeps them, cut)", keep.count(False), limit)
        kept = [i for i, k in enumerate(keep) if k]
        return PairDataset(drop_pairs(text, keep), [src_ids[i] for i in kept], [tgt_ids[i] for i in kept])

    def _loader(self, split: str, max_tokens: int, train: bool) -> DataLoader:
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
            dataset, batch_sampler=sampler, collate_fn=collate, num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0, generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.max_tokens, train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("valid", self.eval_max_tokens, train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_max_tokens, train=False)

    def save_vocabs(self, folder: Path) -> list[Path]:
        """Copies the sentencepiece models in use into `folder` (the run directory)."""
        named = {"joint": self.vocabs.src} if self.vocabs.joint else {"src": self.vocabs.src, "tgt": self.vocabs.tgt}
        paths = []
        for name, vocab in named.items():
            paths.append(Path(folder) / f"spm.{name}.model")
            vocab.save(paths[-1])
        return paths
