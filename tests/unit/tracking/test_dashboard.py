"""Dashboard helpers: config flattening, git state, W&B key detection, attention maps."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from seq2seq.models.attention import BahdanauAttention
from seq2seq.padding import MaskingStrategy
from seq2seq.tracking.attention_map import attention_weights, heatmap_image
from seq2seq.tracking.dashboard import flatten, git_state
from seq2seq.tracking.wandb_logger import wandb_api_key_configured
from tests.unit.models.tests_helpers import PAIRS, build


def test_flatten_gives_one_dotted_key_per_leaf() -> None:
    tree = {
        "encoder": {"hidden_size": 8, "rnn": {"num_layers": 2}},
        "seed": 1,
        "tags": ["a", "b"],
        "empty": {},
    }
    assert flatten(tree) == {
        "encoder.hidden_size": 8,
        "encoder.rnn.num_layers": 2,
        "seed": 1,
        "tags": ["a", "b"],
    }


def test_git_state_names_the_commit_of_this_checkout() -> None:
    state = git_state()
    assert re.fullmatch(r"[0-9a-f]{40}", state["git.commit"]) and isinstance(state["git.dirty"], bool)


def test_git_state_outside_a_repository_is_none(tmp_path: Path) -> None:
    assert git_state(tmp_path) == {"git.commit": None, "git.dirty": None}


def test_wandb_key_comes_from_env_or_netrc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_BASE_URL", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "missing"))
    assert not wandb_api_key_configured()
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    (tmp_path / "netrc").chmod(0o600)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert wandb_api_key_configured()
    monkeypatch.setenv("NETRC", str(tmp_path / "missing"))
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert wandb_api_key_configured()


@pytest.mark.parametrize("attention", ["luong", "bahdanau"])
def test_attention_weights_are_a_distribution_over_the_source(attention: str) -> None:
    net = build(
        "bilstm", MaskingStrategy(), **({"attention": BahdanauAttention} if attention == "bahdanau" else {})
    )
    _, src, tgt = PAIRS[1]
    weights = attention_weights(net, src, tgt)
    assert weights.shape == (len(tgt) + 1, len(src) + 1)  # eos on both sides
    torch.testing.assert_close(weights.sum(-1), torch.ones(len(tgt) + 1))


def test_no_attention_decoder_has_no_map() -> None:
    assert attention_weights(build("bilstm", MaskingStrategy(), attention=None), [5, 6], [7]) is None


def test_heatmap_is_an_rgb_image() -> None:
    image = heatmap_image(torch.softmax(torch.randn(3, 5), -1), list("abcde"), list("xyz"), title="t")
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype.name == "uint8"
    assert image.std() > 0  # something was drawn
