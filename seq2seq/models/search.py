"""Decoding from a trained model (no Lightning here)."""

from __future__ import annotations

import torch
from torch import Tensor

from seq2seq.data.vocab import BOS_ID, EOS_ID, PAD_ID
from seq2seq.models.seq2seq import Seq2Seq


@torch.no_grad()
def greedy_search(
    model: Seq2Seq, src: Tensor, src_lengths: Tensor, src_mask: Tensor, max_len_a: float = 1.5, max_len_b: int = 10
) -> list[list[int]]:
    """Greedy decoding of a batch.

    Each sentence may produce at most `max_len_a * src_len + max_len_b` tokens, a limit that depends
    on the sentence alone, so that with an exact padding strategy its output does not depend on
    the batch it is decoded in.

    Args:
        model: the seq2seq model (put it in eval mode first).
        src: (B, S) source ids; src_lengths (B,); src_mask (B, S).
        max_len_a: length limit slope.
        max_len_b: length limit offset.

    Returns:
        One list of token ids per sentence, without bos and eos.
    """
    encoded = model.encode(src, src_lengths, src_mask)
    state = model.decoder.initial_state(encoded)
    limits = (max_len_a * src_lengths.to(src.device).float() + max_len_b).long()  # (B,)
    prev = torch.full_like(src_lengths, BOS_ID, device=src.device)
    done = torch.zeros_like(prev, dtype=torch.bool)
    tokens: list[Tensor] = []
    for step in range(int(limits.max())):
        logits, state, _ = model.decode_step(prev, state, encoded)
        token = logits.argmax(-1).masked_fill(done, PAD_ID)
        tokens.append(token)
        done = done | (token == EOS_ID) | (step + 1 >= limits)
        if bool(done.all()):
            break
        prev = token
    hypotheses = torch.stack(tokens, dim=1).tolist() if tokens else [[] for _ in range(src.size(0))]
    return [trim_at_eos(hyp) for hyp in hypotheses]


def trim_at_eos(ids: list[int]) -> list[int]:
    """Ids up to (not including) the first eos, without pads."""
    out = []
    for i in ids:
        if i == EOS_ID:
            break
        if i != PAD_ID:
            out.append(i)
    return out
