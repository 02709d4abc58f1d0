"""Attention weights of one translation, and a heatmap figure of them for dashboards."""

from __future__ import annotations

import numpy as np
import torch

from seq2seq.data.batch import collate
from seq2seq.data.vocab import Vocabs
from seq2seq.models.seq2seq import Seq2Seq


@torch.no_grad()
def attention_weights(net: Seq2Seq, src_ids: list[int], tgt_ids: list[int]) -> torch.Tensor | None:
    """(T, S) attention of each target position (tgt_ids + eos) over the source (src_ids + eos).

    The decoder is fed `tgt_ids` (e.g. the model's own hypothesis) one step at a time, as in search.
    Returns None for a decoder without attention.
    """
    batch = collate([(0, src_ids, tgt_ids)]).to(next(net.parameters()).device)
    encoded = net.encode(batch.src, batch.src_lengths, batch.src_mask)
    state = net.decoder.initial_state(encoded)
    rows = []
    for prev in batch.tgt_in.unbind(1):  # (1,) each
        _, state, weights = net.decode_step(prev, state, encoded)
        if weights is None:
            return None
        rows.append(weights[0])  # (S,)
    return torch.stack(rows).float().cpu()


def heatmap_image(
    weights: torch.Tensor, src_pieces: list[str], tgt_pieces: list[str], title: str = ""
) -> np.ndarray:
    """(T, S) weights -> an RGB image (H, W, 3) uint8: target pieces down, source pieces across."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = weights.shape
    figure, axes = plt.subplots(figsize=(max(4.0, 0.3 * cols + 1.5), max(3.0, 0.3 * rows + 1.2)), dpi=100)
    axes.imshow(weights.numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(cols), src_pieces, rotation=90, fontsize=7)
    axes.set_yticks(range(rows), tgt_pieces, fontsize=7)
    axes.set_xlabel("source")
    axes.set_ylabel("hypothesis")
    axes.set_title(title, fontsize=8)
    figure.tight_layout()
    figure.canvas.draw()
    image = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    plt.close(figure)
    return image


def translation_heatmap(net: Seq2Seq, vocabs: Vocabs, source: str, hypothesis: str) -> np.ndarray | None:
    """Heatmap image of the attention while `net` produces `hypothesis` for `source` (None without attention)."""
    src_ids, tgt_ids = vocabs.src.encode([source])[0], vocabs.tgt.encode([hypothesis])[0]
    weights = attention_weights(net, src_ids, tgt_ids)
    if weights is None:
        return None
    src_pieces = [vocabs.src.processor.id_to_piece(i) for i in src_ids] + ["</s>"]
    tgt_pieces = [vocabs.tgt.processor.id_to_piece(i) for i in tgt_ids] + ["</s>"]
    return heatmap_image(weights, src_pieces, tgt_pieces, title=source[:80])
