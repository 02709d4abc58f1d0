"""The padding monitor: bucket names and the totals of the batches the Trainer hands over."""

from functools import partial

import lightning as L
import pytest
from torch import nn

from seq2seq.data.batch import collate
from seq2seq.models.attention import LuongAttention
from seq2seq.models.decoder import RecurrentDecoder
from seq2seq.models.encoders import RecurrentEncoder
from seq2seq.models.seq2seq import Seq2Seq
from seq2seq.models.state_init import ZeroInit
from seq2seq.padding import MaskingStrategy
from seq2seq.training.callbacks import PaddingMonitor


def tiny_module() -> L.LightningModule:
    """A LightningModule holding a small `net`, whose shapes the FLOP estimate reads."""
    module = L.LightningModule()
    encoder = partial(RecurrentEncoder, partial(nn.LSTM, bidirectional=True), hidden_size=4)
    decoder = partial(
        RecurrentDecoder, partial(nn.LSTM), hidden_size=4, init=ZeroInit, attention=LuongAttention
    )
    module.net = Seq2Seq(encoder, decoder, MaskingStrategy(), 12, 12, embedding_dim=4)
    return module


def test_bucket_names_cover_every_length() -> None:
    monitor = PaddingMonitor(bucket_edges=[16, 8])
    assert [monitor.bucket_name(i) for i in range(3)] == ["1-8", "9-16", "17+"]


def test_totals_come_from_the_batches_the_trainer_hands_over() -> None:
    """Drives the hooks as the Trainer does, with real collated batches; totals are token-weighted."""
    monitor, module = PaddingMonitor(bucket_edges=[8]), tiny_module()
    # (index, source ids, target ids): collate adds eos to sources, bos/eos to targets.
    batches = [
        collate([(0, [5, 6, 7], [5, 6]), (1, [5], [5, 6, 7, 8])]),  # src 2x4, target outputs 2x5: 2 + 2 pads
        collate([(2, [5] * 9, [6] * 9)]),  # one sentence, no pads: src 1x10, tgt 1x10
    ]
    for index, batch in enumerate(batches):
        monitor.on_train_batch_start(None, module, batch, index)
        monitor.on_train_batch_end(None, module, None, batch, index)
    assert (monitor.pad_tokens, monitor.all_tokens, monitor.tgt_tokens) == (4, 38, 18)
    summary = monitor.summary()
    assert summary["train/pad_fraction"] == pytest.approx(4 / 38)
    flops = [module.net.flops(batch) for batch in batches]
    assert flops[0].pad > 0 and flops[1].pad == 0  # the second batch has no pads
    assert summary["train/pad_compute_fraction"] == pytest.approx(
        flops[0].pad / (flops[0].total + flops[1].total)
    )
    assert summary["train/tokens_per_sec"] == pytest.approx(18 / monitor.step_seconds)
    assert monitor.step_seconds > 0
    # The first batch is 5 long (the "1-8" bucket), the second 10 (the "9+" bucket).
    assert monitor.state_dict()["epoch_buckets"] == {0: [4, 18], 1: [0, 20]}
