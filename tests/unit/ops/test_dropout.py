"""Our CPU dropout draws the same distribution as PyTorch's and differentiates the same way."""

from __future__ import annotations

import pytest
import torch

from seq2seq.ops.dropout import Dropout, dropout


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_keeps_each_element_with_probability_one_minus_p_scaled_by_its_inverse(p) -> None:
    torch.manual_seed(0)
    x = torch.ones(400, 500)
    out = dropout(x, p, training=True)
    kept = out != 0
    assert abs(kept.float().mean().item() - (1 - p)) < 0.005
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / (1 - p)))
    assert abs(out.mean().item() - 1.0) < 0.01  # unbiased, as F.dropout


def test_the_gradient_is_the_mask_and_evaluation_is_the_identity() -> None:
    torch.manual_seed(1)
    x = torch.randn(64, 32, requires_grad=True)
    out = dropout(x, 0.3, training=True)
    out.sum().backward()
    assert torch.allclose(x.grad, (out / x).detach(), rtol=1e-5)
    assert dropout(x, 0.3, training=False) is x and dropout(x, 0.0, training=True) is x
    module = Dropout(0.3).eval()
    assert module(x) is x


def test_low_precision_inputs_keep_their_dtype_and_p_one_drops_everything() -> None:
    x = torch.randn(100, 100, dtype=torch.bfloat16)
    out = dropout(x, 0.25, training=True)
    assert out.dtype == torch.bfloat16 and abs((out != 0).float().mean().item() - 0.75) < 0.02
    assert not dropout(x, 1.0, training=True).any()
    with pytest.raises(ValueError):
        dropout(x, 1.5, training=True)
