"""The encoder-decoder model: embeddings, an injected encoder and decoder, and the output layer."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from seq2seq.data.batch import Batch
from seq2seq.data.vocab import PAD_ID
from seq2seq.models.decoder import DecoderState, RecurrentDecoder
from seq2seq.models.encoder_output import EncoderOutput
from seq2seq.models.flops import Flops, dense_flops
from seq2seq.padding import PaddingStrategy


class Seq2Seq(nn.Module):
    """Embeds, encodes, decodes and projects to target-vocabulary logits.

    Args:
        encoder: builds the encoder from (input_size, padding).
        decoder: builds the decoder from (input_size, memory_size).
        padding: the padding strategy (config group `strategy`), shared with the encoder and the loss.
        src_vocab_size: source vocabulary size.
        tgt_vocab_size: target vocabulary size.
        embedding_dim: size of source and target embeddings.
        share_embeddings: one embedding table for both sides (needs a joint vocabulary).
        tie_embeddings: the output layer reuses the target embedding (needs decoder hidden size == embedding_dim).
    """

    def __init__(
        self,
        encoder: Callable[..., nn.Module],
        decoder: Callable[..., RecurrentDecoder],
        padding: PaddingStrategy,
        src_vocab_size: int,
        tgt_vocab_size: int,
        embedding_dim: int = 256,
        share_embeddings: bool = False,
        tie_embeddings: bool = False,
    ) -> None:
        super().__init__()
        self.padding = padding
        self.src_embed = nn.Embedding(src_vocab_size, embedding_dim, padding_idx=PAD_ID)
        if share_embeddings and src_vocab_size != tgt_vocab_size:
            raise ValueError(
                f"model.net.share_embeddings=true needs a joint vocabulary, but the source has {src_vocab_size} "
                f"pieces and the target {tgt_vocab_size}; set data.vocab.joint=true or share_embeddings=false"
            )
        self.tgt_embed = (
            self.src_embed
            if share_embeddings
            else nn.Embedding(tgt_vocab_size, embedding_dim, padding_idx=PAD_ID)
        )
        self.encoder = encoder(input_size=embedding_dim, padding=padding)
        self.decoder = decoder(input_size=embedding_dim, memory_size=self.encoder.output_size)
        self.generator = nn.Linear(self.decoder.output_size, tgt_vocab_size)
        if tie_embeddings:
            if self.decoder.output_size != embedding_dim:
                raise ValueError(
                    f"model.net.tie_embeddings=true needs the decoder hidden size ({self.decoder.output_size}) to equal "
                    f"model.net.embedding_dim ({embedding_dim}); change one of them or set tie_embeddings=false"
                )
            self.generator.weight = self.tgt_embed.weight

    def set_padding(self, padding: PaddingStrategy) -> None:
        """Serves the trained weights with another padding strategy (the encoder and the loss share it)."""
        self.padding = self.encoder.padding = padding

    def encode(self, src: Tensor, src_lengths: Tensor, src_mask: Tensor) -> EncoderOutput:
        """src (B, S) ids, src_lengths (B,), src_mask (B, S) -> encoder output."""
        return self.encoder(self.src_embed(src), src_lengths, src_mask)

    def forward(self, batch: Batch, positions: Tensor | None = None) -> Tensor:
        """Teacher-forced logits for `batch.tgt_out`.

        Args:
            batch: the batch.
            positions: (B, T) bool, the target positions to project; None: all of them.

        Returns:
            (B, T, V) logits, or (N, V) at the N True `positions` in row-major order: the output layer
            then runs on those positions only (on a real vocabulary it is the largest layer).
        """
        encoded = self.encode(batch.src, batch.src_lengths, batch.src_mask)
        hidden = self.decoder(self.tgt_embed(batch.tgt_in), encoded)  # (B, T, H)
        return self.generator(hidden if positions is None else hidden[positions])

    def flops(self, batch: Batch) -> Flops:
        """Matrix-multiply FLOPs of a teacher-forced step on `batch`, and those at pads (seq2seq/models/flops.py)."""
        src_steps, steps = batch.src.size(1), batch.tgt_out.size(1)
        projected = self.padding.loss_mask(batch.tgt_mask).sum()  # where `forward` runs the output layer
        return (
            self.encoder.flops(batch.src_lengths, src_steps)
            + self.decoder.flops(batch.tgt_lengths, steps, batch.src_lengths, src_steps)
            + Flops.at(dense_flops(self.generator), projected, batch.tgt_lengths.sum())
        )

    def decode_step(
        self, prev: Tensor, state: DecoderState, encoded: EncoderOutput
    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """prev (B,) token ids -> logits (B, V), next state, attention weights (B, S) or None."""
        out, state, weights = self.decoder.step(self.tgt_embed(prev), state, encoded)
        return self.generator(out), state, weights
