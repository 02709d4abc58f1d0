"""The rotary Transformer layer: scores depend on offsets only; bad shapes are refused with the config keys."""

from __future__ import annotations

import pytest
import torch

from seq2seq.models.transformer import RotaryTransformerLayer, rotary_angles, rotate


def test_rotated_scores_depend_on_the_offset_between_query_and_key_only() -> None:
    torch.manual_seed(0)
    query, key = torch.randn(8), torch.randn(8)
    cos, sin = rotary_angles(40, 8, torch.device("cpu"))

    def score(p: int, q: int) -> torch.Tensor:
        return rotate(query, cos[p], sin[p]) @ rotate(key, cos[q], sin[q])

    assert torch.allclose(score(3, 1), score(30, 28), atol=1e-5)
    assert torch.allclose(score(0, 5), score(17, 22), atol=1e-5)
    assert not torch.allclose(score(3, 1), score(3, 2), atol=1e-3)


def test_rotation_keeps_the_norm() -> None:
    x = torch.randn(2, 5, 6)
    cos, sin = rotary_angles(5, 6, torch.device("cpu"))
    assert torch.allclose(rotate(x, cos, sin).norm(dim=-1), x.norm(dim=-1), atol=1e-5)


def test_a_token_moved_along_a_padded_row_keeps_its_output_when_its_context_moves_with_it() -> None:
    torch.manual_seed(0)
    layer = RotaryTransformerLayer(8, 2, 16, dropout=0.0).eval()
    sentence = torch.randn(1, 4, 8)
    shifted = torch.cat([torch.randn(1, 3, 8), sentence], dim=1)  # the same 4 tokens at positions 3..6
    keep_alone = torch.ones(1, 4, dtype=torch.bool)
    keep_shifted = torch.tensor([[False] * 3 + [True] * 4])
    alone = layer(sentence, keep_alone, rotary_angles(4, 4, torch.device("cpu")))
    moved = layer(shifted, keep_shifted, rotary_angles(7, 4, torch.device("cpu")))
    assert torch.allclose(alone, moved[:, 3:], atol=1e-5)


@pytest.mark.parametrize(("size", "heads"), [(10, 4), (6, 2)])
def test_widths_that_do_not_split_into_even_heads_name_the_config_keys(size: int, heads: int) -> None:
    with pytest.raises(ValueError, match=r"encoder.hidden_size .* encoder.num_heads"):
        RotaryTransformerLayer(size, heads, 16, dropout=0.0)
