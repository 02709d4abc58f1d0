"""The loss: label-smoothed cross-entropy as PyTorch computes it, counted positions only, and metrics."""

import math

import pytest
import torch
import torch.nn.functional as F

from seq2seq.models.loss import SmoothedCrossEntropy, masked_cross_entropy, sentence_nll, token_nll
from seq2seq.training.metrics import corpus_bleu, exact_match


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_smoothed_cross_entropy_gives_pytorchs_losses_and_gradients(eps: float) -> None:
    torch.manual_seed(0)
    logits = (3 * torch.randn(6, 11)).requires_grad_()
    targets = torch.tensor([0, 3, 10, 3, 7, 1])
    weights = torch.rand(6)  # a different upstream gradient per row
    ours = token_nll(logits, targets, eps)
    theirs = F.cross_entropy(logits, targets, reduction="none", label_smoothing=eps)
    assert torch.allclose(ours, theirs, atol=1e-5)
    (grad,) = torch.autograd.grad((ours * weights).sum(), logits)
    (expected,) = torch.autograd.grad((theirs * weights).sum(), logits)
    assert torch.allclose(grad, expected, atol=1e-6)
    double = logits.detach().double().requires_grad_()
    assert torch.autograd.gradcheck(lambda x: SmoothedCrossEntropy.apply(x, targets, eps), (double,))


def test_smoothed_cross_entropy_keeps_the_logits_dtype_for_their_gradient() -> None:
    logits = torch.randn(4, 9, dtype=torch.bfloat16, requires_grad=True)
    losses = token_nll(logits, torch.tensor([1, 2, 3, 4]), 0.1)
    losses.sum().backward()
    assert losses.dtype == torch.float32 and logits.grad.dtype == torch.bfloat16


def test_pad_positions_do_not_count() -> None:
    logits = torch.randn(2, 3, 5)
    targets = torch.tensor([[1, 2, 0], [3, 0, 0]])
    mask = targets != 0
    loss_sum, count = masked_cross_entropy(logits, targets, mask)
    changed = logits.clone()
    changed[~mask] = 100.0
    assert count.item() == 3
    assert torch.allclose(masked_cross_entropy(changed, targets, mask)[0], loss_sum)
    expected = -torch.log_softmax(logits, -1)[mask].gather(1, targets[mask][:, None]).sum()
    assert torch.allclose(loss_sum, expected)


def test_logits_gathered_at_the_counted_positions_give_the_same_losses() -> None:
    """What `Seq2Seq.forward(batch, mask)` hands the losses: (N, V) at the real positions only."""
    logits = torch.randn(2, 3, 5)
    targets = torch.tensor([[1, 2, 0], [3, 0, 0]])
    mask = targets != 0
    full, gathered = (
        masked_cross_entropy(logits, targets, mask, 0.1),
        masked_cross_entropy(logits[mask], targets, mask, 0.1),
    )
    assert torch.allclose(full[0], gathered[0]) and full[1] == gathered[1] == 3
    assert torch.allclose(sentence_nll(logits[mask], targets, mask), sentence_nll(logits, targets, mask))
    assert torch.isclose(
        sentence_nll(logits, targets, mask)[1], -torch.log_softmax(logits[1, 0], -1)[3].double()
    )


def test_uniform_logits_give_log_vocab_per_token_and_sentence_sums() -> None:
    logits = torch.zeros(2, 4, 8)
    targets = torch.tensor([[1, 2, 3, 0], [4, 0, 0, 0]])
    loss_sum, count = masked_cross_entropy(logits, targets, targets != 0, label_smoothing=0.1)
    assert math.isclose(loss_sum.item() / count.item(), math.log(8), rel_tol=1e-6)
    assert torch.allclose(
        sentence_nll(logits, targets, targets != 0), torch.tensor([3, 1], dtype=torch.float64) * math.log(8)
    )


def test_metrics() -> None:
    assert math.isclose(corpus_bleu(["a b c d e"], ["a b c d e"]), 100.0)
    assert exact_match(["a b ", "c"], ["a b", "d"]) == 50.0
    with pytest.raises(ValueError, match="1 hypotheses for 2 references"):  # never a silent truncation
        exact_match(["a b"], ["a b", "d"])
