"""Tiny models shared by the model tests."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from seq2seq.models.attention import LuongAttention
from seq2seq.models.decoder import RecurrentDecoder
from seq2seq.models.encoders import RecurrentEncoder, SelfAttentionEncoder
from seq2seq.models.seq2seq import Seq2Seq
from seq2seq.models.state_init import BridgeInit
from seq2seq.padding import MaskingStrategy, PackingStrategy, StateResetStrategy

VOCAB = 20
ENCODERS = {
    "bilstm": partial(RecurrentEncoder, partial(nn.LSTM, bidirectional=True), hidden_size=8),
    "gru": partial(RecurrentEncoder, partial(nn.GRU), hidden_size=8),
    "bigru2": partial(
        RecurrentEncoder, partial(nn.GRU, num_layers=2, bidirectional=True, dropout=0.3), hidden_size=8
    ),
    "attention": partial(SelfAttentionEncoder, hidden_size=8, num_heads=2, num_layers=1, feedforward_size=16),
}
EXACT = [
    ("bilstm", MaskingStrategy()),
    ("bigru2", MaskingStrategy()),
    ("bilstm", PackingStrategy()),
    ("bilstm", StateResetStrategy()),
    ("gru", MaskingStrategy()),
    ("attention", MaskingStrategy()),
]
PAIRS = [
    (0, [5, 6, 7], [8, 9]),
    (1, [4] * 11, [9, 10, 11, 12, 13, 14, 15]),
    (2, [12], [13]),
    (3, [7, 8, 9, 10, 11, 12], [5, 6, 7]),
]


def build(
    encoder: str,
    strategy,
    decoder_rnn=nn.LSTM,
    attention=LuongAttention,
    init=BridgeInit,
    input_feeding=False,
) -> Seq2Seq:
    torch.manual_seed(0)
    decoder = partial(
        RecurrentDecoder,
        partial(decoder_rnn),
        hidden_size=8,
        init=init,
        attention=attention,
        input_feeding=input_feeding,
        dropout=0.2,
    )
    return Seq2Seq(ENCODERS[encoder], decoder, strategy, VOCAB, VOCAB, embedding_dim=6).eval()
