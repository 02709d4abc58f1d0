"""Attention: masked keys get no weight, and keys prepared once score as when scored each time."""

import pytest
import torch

from seq2seq.models.attention import BahdanauAttention, LuongAttention, masked_softmax


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_masked_keys_get_zero_weight_and_an_all_pad_row_gives_zeros_not_nan(dtype) -> None:
    scores = torch.randn(2, 3, 4).to(dtype)
    mask = torch.tensor([[True, True, False, False], [False, False, False, False]])
    weights = masked_softmax(scores, mask)
    assert torch.isfinite(weights).all()
    assert (weights[0, :, 2:] == 0).all()
    assert torch.allclose(weights[0].sum(-1).float(), torch.ones(3), atol=4 * torch.finfo(dtype).eps)
    assert (weights[1] == 0).all()


@pytest.mark.parametrize(
    "attention",
    [
        LuongAttention(5, 7),
        LuongAttention(7, 7, score="dot"),
        LuongAttention(7, 7, score="dot", scaled=True),
        BahdanauAttention(5, 7, 6),
    ],
    ids=repr,
)
def test_context_ignores_masked_keys(attention) -> None:
    query, keys = torch.randn(2, 3, attention.query_size), torch.randn(2, 4, 7)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    context, weights = attention(query, keys, mask)
    assert context.shape == (2, 3, 7) and weights.shape == (2, 3, 4)
    changed = keys.clone()
    changed[~mask] = 1e3  # whatever sits at pad positions must not matter
    assert torch.allclose(attention(query, changed, mask)[0], context, atol=1e-5)


def test_dot_score_needs_equal_sizes() -> None:
    with pytest.raises(ValueError, match="decoder.hidden_size .* equal to the encoder.s memory size"):
        LuongAttention(5, 7, score="dot")


@pytest.mark.parametrize(
    "attention",
    [
        LuongAttention(5, 7),
        LuongAttention(7, 7, score="dot"),
        LuongAttention(7, 7, score="dot", scaled=True),
        BahdanauAttention(5, 7, 6),
    ],
    ids=repr,
)
def test_keys_prepared_once_give_the_scores_and_gradients_of_scoring_each_time(attention) -> None:
    """The decoder's input-feeding loop prepares the keys' side once per batch; steps then reuse it."""
    torch.manual_seed(0)
    query, keys = torch.randn(2, 3, attention.query_size), torch.randn(2, 4, 7, requires_grad=True)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    plain = attention(query, keys, mask)
    (plain[0].sum() + plain[1].pow(2).sum()).backward()
    plain_grads = [keys.grad.clone()] + [p.grad.clone() for p in attention.parameters()]
    keys.grad = None
    attention.zero_grad()
    prepared = attention(query, keys, mask, attention.prepare(keys))
    (prepared[0].sum() + prepared[1].pow(2).sum()).backward()
    torch.testing.assert_close(prepared, plain)
    torch.testing.assert_close([keys.grad] + [p.grad for p in attention.parameters()], plain_grads)


def test_scaled_dot_divides_the_dot_scores_by_the_square_root_of_the_key_size() -> None:
    query, keys = torch.randn(2, 3, 16), torch.randn(2, 4, 16)
    plain = LuongAttention(16, 16, score="dot").score(query, keys)
    scaled = LuongAttention(16, 16, score="dot", scaled=True)
    torch.testing.assert_close(scaled.score(query, keys), plain / 4)
    torch.testing.assert_close(scaled.score_prepared(query, scaled.prepare(keys)), plain / 4)
