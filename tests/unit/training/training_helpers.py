"""A tiny Seq2SeqModule and a quiet real Trainer, shared by the training tests."""

from __future__ import annotations

from functools import partial

import lightning as L
import torch
from torch.utils.data import DataLoader

from seq2seq.data.batch import collate
from seq2seq.models.decoder import RecurrentDecoder
from seq2seq.models.encoders import SelfAttentionEncoder
from seq2seq.models.seq2seq import Seq2Seq
from seq2seq.models.state_init import ZeroInit
from seq2seq.padding import MaskingStrategy
from seq2seq.training.module import Seq2SeqModule

PAIRS = [(0, [5, 6, 7], [8, 9]), (1, [4, 5, 6, 7, 8], [9, 10, 11])]


def tiny_module(warmup_steps: int = 0, scheduler=None) -> Seq2SeqModule:
    torch.manual_seed(0)
    encoder = partial(SelfAttentionEncoder, hidden_size=8, num_heads=2, num_layers=1, feedforward_size=16)
    decoder = partial(RecurrentDecoder, partial(torch.nn.GRU), hidden_size=8, init=ZeroInit)
    net = Seq2Seq(encoder, decoder, MaskingStrategy(), src_vocab_size=16, tgt_vocab_size=16, embedding_dim=8)
    return Seq2SeqModule(
        net,
        partial(torch.optim.Adam, lr=0.01),
        scheduler=scheduler,
        scheduler_options={"interval": "step"},
        warmup_steps=warmup_steps,
    )


def tiny_trainer(**args) -> L.Trainer:
    quiet = {"enable_checkpointing": False, "enable_progress_bar": False, "enable_model_summary": False}
    return L.Trainer(**({"accelerator": "cpu", "logger": False} | quiet | args))


def batches(n: int) -> DataLoader:
    """n copies of one batch of the two pairs, as a loader of ready batches."""
    return DataLoader([collate(PAIRS)] * n, batch_size=None)
