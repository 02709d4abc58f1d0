"""Encoders: recurrent (LSTM/GRU/RNN, any strategy) and self-attention (Transformer)."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from seq2seq.models.encoder_output import EncoderOutput
from seq2seq.models.flops import Flops, dense_flops, pairs
from seq2seq.models.transformer import RotaryTransformerLayer, rotary_angles
from seq2seq.ops.dropout import Dropout
from seq2seq.padding import PaddingStrategy


class RecurrentEncoder(nn.Module):
    """An RNN over embedded tokens; how it treats pads is the padding strategy's business.

    Args:
        rnn: builds the RNN from (input_size, hidden_size, batch_first): an `nn.LSTM`/`nn.GRU`
            partial carrying num_layers, dropout and bidirectional from the config.
        input_size: embedding size.
        hidden_size: per-direction hidden size.
        padding: the padding strategy.
        dropout: dropout on the embedded input and on the memory that attention reads (fairseq's LSTM
            encoder's `dropout_in` and `dropout_out`); the final summary that starts the decoder is
            kept whole. Training only, so evaluation stays exact.
    """

    def __init__(
        self,
        rnn: Callable[..., nn.RNNBase],
        input_size: int,
        hidden_size: int,
        padding: PaddingStrategy,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.rnn = rnn(input_size=input_size, hidden_size=hidden_size, batch_first=True)
        self.padding = padding
        self.dropout = Dropout(dropout)
        self.output_size = hidden_size * (2 if self.rnn.bidirectional else 1)

    def forward(self, embedded: Tensor, lengths: Tensor, mask: Tensor) -> EncoderOutput:
        """embedded (B, S, E), lengths (B,), mask (B, S) -> memory (B, S, D*H), final (B, D*H)."""
        memory, final = self.padding.run_rnn(self.rnn, self.dropout(embedded), lengths)
        return EncoderOutput(self.dropout(memory), final, self.padding.key_padding_mask(mask))

    def flops(self, lengths: Tensor, steps: int) -> Flops:
        """Matrix-multiply FLOPs over a (B, steps) batch of true `lengths` (seq2seq/models/flops.py)."""
        real = lengths.sum()
        computed = self.padding.rnn_positions(lengths, steps)
        return Flops.at(dense_flops(self.rnn), computed, real)


class SelfAttentionEncoder(nn.Module):
    """A pre-norm Transformer encoder with rotary positions and a key padding mask.

    The embeddings are projected to the model width with unit-variance weights (each output feature
    keeps the embeddings' scale) and are not multiplied by sqrt(d_model): positions enter every
    attention score through the rotation instead of being added to, and drowned by, the tokens.
    What each choice bought is measured in benchmarks/README.md ("How the attention encoder came to learn").

    Args:
        input_size: embedding size.
        padding: the padding strategy (naive attends to pads, the others mask them).
        hidden_size: width of the Transformer layers (d_model, the memory size).
        num_heads: attention heads per layer (hidden_size / num_heads must be even).
        num_layers: Transformer layers.
        feedforward_size: hidden size of each layer's feed-forward block.
        dropout: dropout inside the layers and on the input.
    """

    # model.net.param_init leaves these layers as they are drawn here: the input projection's unit
    # variance and the layers' PyTorch init are what they were measured with (the decoder still takes it).
    keeps_own_init = True

    def __init__(
        self,
        input_size: int,
        padding: PaddingStrategy,
        hidden_size: int = 256,
        num_heads: int = 4,
        num_layers: int = 2,
        feedforward_size: int = 512,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.padding = padding
        self.output_size = hidden_size
        self.input_proj = nn.Linear(input_size, hidden_size)
        nn.init.normal_(self.input_proj.weight, std=input_size**-0.5)
        nn.init.zeros_(self.input_proj.bias)
        self.dropout = Dropout(dropout)
        self.layers = nn.ModuleList(
            RotaryTransformerLayer(hidden_size, num_heads, feedforward_size, dropout)
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(hidden_size)
        self.head_size = hidden_size // num_heads

    def forward(self, embedded: Tensor, lengths: Tensor, mask: Tensor) -> EncoderOutput:
        """embedded (B, S, E), lengths (B,), mask (B, S) -> memory (B, S, M), final (B, M)."""
        x = self.dropout(self.input_proj(embedded))  # (B, S, M)
        key_mask = self.padding.key_padding_mask(mask)
        # A row without a real token (an empty source) attends to all of its pads rather than to
        # nothing, which would be NaN; its memory is never attended to and its pooled summary is zero.
        keep = None if key_mask is None else key_mask | ~key_mask.any(1, keepdim=True)
        angles = rotary_angles(x.size(1), self.head_size, x.device)
        for layer in self.layers:
            x = layer(x, keep, angles)
        memory = self.norm(x)  # (B, S, M)
        return EncoderOutput(memory, self.padding.pool(memory, mask), key_mask)

    def flops(self, lengths: Tensor, steps: int) -> Flops:
        """Matrix-multiply FLOPs over a (B, steps) batch of true `lengths`: every position runs every layer."""
        dense = Flops.at(dense_flops(self), lengths.numel() * steps, lengths.sum())
        attention = Flops.at(4 * self.output_size * len(self.layers), *pairs(lengths, steps, lengths, steps))
        return dense + attention
