"""The encoder-decoder model: embeddings, an injected encoder and decoder, and the output layer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seq2seq.data.batch import Batch
from seq2seq.data.vocab import EOS_ID, PAD_ID, UNK_ID
from seq2seq.errors import InputError
from seq2seq.models.decoder import DecoderState, RecurrentDecoder
from seq2seq.models.encoder_output import EncoderOutput
from seq2seq.models.flops import Flops
from seq2seq.padding import PaddingStrategy


def uniform_rows(table: nn.Embedding) -> None:
    """U(-0.1, 0.1) rows, the pad row zero."""
    with torch.no_grad():
        table.weight.uniform_(-0.1, 0.1)
        table.weight[table.padding_idx].zero_()


# How `Seq2Seq` starts its embedding tables: PyTorch's own N(0, 1) rows as built, or `uniform_rows`.
EMBEDDING_INITS: dict[str, Callable[[nn.Embedding], None]] = {
    "normal": lambda table: None,
    "uniform": uniform_rows,
}


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
        embedding_init: `normal`, N(0, 1) (PyTorch's `nn.Embedding`), or `uniform`, U(-0.1, 0.1) (fairseq's
            and OpenNMT-py's): the starting scale of every embedding row (the pad row stays zero).
        param_init: every other parameter (RNN, attention, bridge and output weights and biases) drawn
            from U(-param_init, param_init), as OpenNMT-py's `param_init` (0.1 by default there) and
            fairseq's LSTM model (0.1) start theirs; None keeps each PyTorch module's own default (for
            an RNN U(-1/sqrt(H), 1/sqrt(H)), for a linear layer about U(-1/sqrt(in), 1/sqrt(in))). An
            encoder whose class sets `keeps_own_init` (the Transformer layers, whose scales were chosen
            with their own init) keeps its parameters as it drew them; the decoder and output layer
            still take the bound.
        output_ids: the target pieces the output layer scores, ascending, `<unk>` and `<eos>` among them
            (`TranslationDataModule.output_ids`: those the training targets use); None scores every piece.
            A joint vocabulary's target side uses about half of its pieces, and on a real vocabulary the
            output layer is the largest layer of a step. The layer keeps a weight row for every piece (so
            checkpoints, tying and the embeddings keep their shapes) and multiplies with the scored rows
            only; a piece outside them counts as `<unk>` in the loss and is never produced.
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
        embedding_init: str = "normal",
        param_init: float | None = None,
        output_ids: Tensor | list[int] | None = None,
    ) -> None:
        super().__init__()
        self.src_embed, self.tgt_embed = self._embeddings(
            src_vocab_size, tgt_vocab_size, embedding_dim, share_embeddings, embedding_init
        )
        self.encoder = encoder(input_size=embedding_dim, padding=padding)
        self.decoder = decoder(input_size=embedding_dim, memory_size=self.encoder.output_size)
        self.generator = nn.Linear(self.decoder.output_size, tgt_vocab_size)
        if param_init is not None:
            self._uniform_init(param_init)
        if tie_embeddings:
            self._tie_output(embedding_dim)
        self.register_buffer("output_ids", None)
        self.register_buffer("output_rows", None, persistent=False)
        self._fixed_rows: tuple[Tensor, Tensor] | None = None  # set inside `output_rows_fixed` only
        if output_ids is not None:
            ids = output_ids if isinstance(output_ids, Tensor) else list(output_ids)  # a list, or a config's
            self._score_only(torch.as_tensor(ids, dtype=torch.long), tgt_vocab_size)

    @staticmethod
    def _embeddings(
        src_vocab_size: int, tgt_vocab_size: int, dim: int, shared: bool, init: str
    ) -> tuple[nn.Embedding, nn.Embedding]:
        """The source and target tables (one table twice when `shared`), each initialised once by `init`."""
        if init not in EMBEDDING_INITS:
            raise InputError(
                f"model.net.embedding_init must be one of {', '.join(EMBEDDING_INITS)}; got {init!r}"
            )
        if shared and src_vocab_size != tgt_vocab_size:
            raise InputError(
                f"model.net.share_embeddings=true needs a joint vocabulary, but the source has {src_vocab_size} "
                f"pieces and the target {tgt_vocab_size}; set data.vocab.joint=true or share_embeddings=false"
            )
        src = nn.Embedding(src_vocab_size, dim, padding_idx=PAD_ID)
        tgt = src if shared else nn.Embedding(tgt_vocab_size, dim, padding_idx=PAD_ID)
        for table in dict.fromkeys([src, tgt]):  # once each, in a fixed order
            EMBEDDING_INITS[init](table)
        return src, tgt

    def _tie_output(self, embedding_dim: int) -> None:
        """The output layer's weights become the target embedding table's."""
        if self.decoder.output_size != embedding_dim:
            raise InputError(
                f"model.net.tie_embeddings=true needs the decoder hidden size ({self.decoder.output_size}) to equal "
                f"model.net.embedding_dim ({embedding_dim}); change one of them or set tie_embeddings=false"
            )
        self.generator.weight = self.tgt_embed.weight

    def _uniform_init(self, bound: float) -> None:
        """U(-bound, bound) for every parameter outside the embedding tables and outside an encoder that
        keeps its own init, in their registration order."""
        if not bound > 0:
            raise InputError(f"model.net.param_init must be a positive bound or null; got {bound!r}")
        kept = {id(self.src_embed.weight), id(self.tgt_embed.weight)}
        if getattr(self.encoder, "keeps_own_init", False):
            kept |= {id(parameter) for parameter in self.encoder.parameters()}
        with torch.no_grad():
            for parameter in self.parameters():
                if id(parameter) not in kept:
                    parameter.uniform_(-bound, bound)

    def _score_only(self, ids: Tensor, vocab_size: int) -> None:
        """Sets the output layer's scored pieces `ids` and the row each piece's target maps to."""
        if (
            ids.dim() != 1
            or not bool((ids[1:] > ids[:-1]).all())
            or (ids.numel() and not 0 <= int(ids[0]) <= int(ids[-1]) < vocab_size)
            or not bool(torch.isin(torch.tensor([UNK_ID, EOS_ID]), ids).all())
        ):
            raise InputError(
                f"output_ids must be ascending piece ids below the target vocabulary size ({vocab_size}) that include "
                f"<unk> ({UNK_ID}) and <eos> ({EOS_ID}); got {ids.numel()} ids"
            )
        rows = torch.full((vocab_size,), int(torch.searchsorted(ids, UNK_ID)), dtype=torch.long)
        rows[ids] = torch.arange(ids.numel())
        self.output_ids, self.output_rows = ids, rows

    @property
    def output_size(self) -> int:
        """How many pieces the output layer scores."""
        return self.generator.out_features if self.output_ids is None else self.output_ids.numel()

    def project(self, hidden: Tensor) -> Tensor:
        """(..., H) decoder outputs -> (..., output_size) logits over the scored pieces."""
        if self.output_ids is None:
            return self.generator(hidden)
        return F.linear(hidden, *self._scored_rows())

    def _scored_rows(self) -> tuple[Tensor, Tensor]:
        """The output layer's weight and bias rows of the scored pieces: those `output_rows_fixed` gathered
        on entry while inside it, else gathered on this call (so that training updates the full layer)."""
        if self._fixed_rows is not None:
            return self._fixed_rows
        weight, bias, ids = self.generator.weight, self.generator.bias, self.output_ids
        return weight.index_select(0, ids), bias.index_select(0, ids)

    @contextmanager
    def output_rows_fixed(self) -> Iterator[None]:
        """Inside: every `project` reuses the scored rows of the output layer gathered on entry.

        A search projects once per decoding step, and gathering 8,000 rows of a real vocabulary at
        each step took a tenth of a beam search's time; the searches run inside this. The rows are
        gathered again at each entry, never kept across calls: a cache keyed on the tensors' version
        counters went stale, because PyTorch's fused Adam updates the weights in place without bumping
        them, so the validation inside `fit` scored every epoch with the first validation's rows.
        Nested entries keep the outer rows. Only under no_grad (a search): with gradients, each call
        gathers, so that training reaches the full layer.
        """
        if self.output_ids is None or self._fixed_rows is not None or torch.is_grad_enabled():
            yield
            return
        weight, bias, ids = self.generator.weight, self.generator.bias, self.output_ids
        self._fixed_rows = (weight.index_select(0, ids), bias.index_select(0, ids))
        try:
            yield
        finally:
            self._fixed_rows = None

    def output_targets(self, ids: Tensor) -> Tensor:
        """Target piece ids -> the logit rows that score them (`<unk>`'s for a piece not scored)."""
        return ids if self.output_rows is None else self.output_rows[ids]

    def output_tokens(self, rows: Tensor) -> Tensor:
        """Logit rows (e.g. the search's choices) -> the target piece ids they score."""
        return rows if self.output_ids is None else self.output_ids[rows]

    @property
    def padding(self) -> PaddingStrategy:
        """The padding strategy: the encoder holds the one reference, which the loss mask also reads."""
        return self.encoder.padding

    def set_padding(self, padding: PaddingStrategy) -> None:
        """Serves the trained weights with another padding strategy (the encoder and the loss share it)."""
        self.encoder.padding = padding

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
        return self.project(hidden if positions is None else hidden[positions])

    def teacher_forced(self, batch: Batch, positions: Tensor) -> tuple[Tensor, Tensor]:
        """What the losses take: (N, output_size) logits at the N True `positions` (see `forward`) and the
        (B, T) targets as rows of those logits (`output_targets`)."""
        return self(batch, positions), self.output_targets(batch.tgt_out)

    def flops(self, batch: Batch) -> Flops:
        """Matrix-multiply FLOPs of a teacher-forced step on `batch`, and those at pads (seq2seq/models/flops.py)."""
        src_steps, steps = batch.src.size(1), batch.tgt_out.size(1)
        projected = self.padding.loss_mask(batch.tgt_mask).sum()  # where `forward` runs the output layer
        return (
            self.encoder.flops(batch.src_lengths, src_steps)
            + self.decoder.flops(batch.tgt_lengths, steps, batch.src_lengths, src_steps)
            + Flops.at(2 * self.generator.in_features * self.output_size, projected, batch.tgt_lengths.sum())
        )

    def decode_step(
        self, prev: Tensor, state: DecoderState, encoded: EncoderOutput
    ) -> tuple[Tensor, DecoderState, Tensor | None]:
        """prev (B,) token ids -> logits (B, output_size) (`output_tokens` maps their rows to piece ids),
        next state, attention weights (B, S) or None."""
        out, state, weights = self.decoder.step(self.tgt_embed(prev), state, encoded)
        return self.project(out), state, weights
