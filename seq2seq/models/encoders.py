"""Encoders: recurrent (LSTM/GRU/RNN, any strategy) and self-attention."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from seq2seq.models.encoder_output import EncoderOutput
from seq2seq.padding import PaddingStrategy


class RecurrentEncoder(nn.Module):
    """An RNN over embedded tokens; how it treats pads is the strategy's business.

    Args:
        rnn: builds the RNN from (input_size, hidden_size, batch_first): an `nn.LSTM`/`nn.GRU`
            partial carrying num_layers, dropout and bidirectional from the config.
        input_size: embedding size.
        hidden_size: per-direction hidden size.
        strategy: the padding strategy.
    """

    def __init__(self, rnn: Callable[..., nn.RNNBase], input_size: int, hidden_size: int, strategy: PaddingStrategy) -> None:
        super().__init__()
        self.rnn = rnn(input_size=input_size, hidden_size=hidden_size, batch_first=True)
        self.strategy = strategy
        self.output_size = hidden_size * (2 if self.rnn.bidirectional else 1)

    def forward(self, embedded: Tensor, lengths: Tensor, mask: Tensor) -> EncoderOutput:
        """embedded (B, S, E), lengths (B,), mask (B, S) -> memory (B, S, D*H), final (B, D*H)."""
        memory, final = self.strategy.run_rnn(self.rnn, embedded, lengths)
        return EncoderOutput(memory, final, self.strategy.key_padding_mask(mask))


def sinusoidal_positions(length: int, size: int, device: torch.device) -> Tensor:
    """(length, size) fixed sine/cosine position encodings (Vaswani et al., 2017)."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, size, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / size))
    table = torch.zeros(length, size, device=device)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: size // 2])
    return table


class SelfAttentionEncoder(nn.Module):
    """A pre-norm Transformer encoder with sinusoidal positions and a key padding mask.

    Args:
        input_size: embedding size.
        hidden_size: width of the Transformer layers (d_model, the memory size).
        num_heads: attention heads per layer.
        num_layers: Transformer layers.
        feedforward_size: hidden size of each layer's feed-forward block.
        dropout: dropout inside the layers and on the input.
        strategy: the padding strategy (naive attends to pads, the others mask them).
    """

    def __init__(
        self,
        input_size: int,
        strategy: PaddingStrategy,
        hidden_size: int = 256,
        num_heads: int = 4,
        num_layers: int = 3,
        feedforward_size: int = 1024,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.strategy = strategy
        self.output_size = hidden_size
        self.input_proj = nn.Linear(input_size, hidden_size) if input_size != hidden_size else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            hidden_size, num_heads, feedforward_size, dropout, batch_first=True, norm_first=True
        )
        # Nested tensors would drop pad positions behind our back; the strategy decides instead.
        self.layers = nn.TransformerEncoder(layer, num_layers, norm=nn.LayerNorm(hidden_size), enable_nested_tensor=False)

    def forward(self, embedded: Tensor, lengths: Tensor, mask: Tensor) -> EncoderOutput:
        """embedded (B, S, E), lengths (B,), mask (B, S) -> memory (B, S, M), final (B, M)."""
        x = self.input_proj(embedded) * math.sqrt(self.output_size)
        x = self.dropout(x + sinusoidal_positions(x.size(1), self.output_size, x.device).to(x.dtype))
        key_mask = self.strategy.key_padding_mask(mask)
        memory = self.layers(x, src_key_padding_mask=None if key_mask is None else ~key_mask)  # (B, S, M)
        return EncoderOutput(memory, self.strategy.pool(memory, mask), key_mask)
