"""Tiny checkpoints trained once per test session with the real config and Trainer."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from seq2seq.config import CONFIG_DIR
from seq2seq.train import train

TINY_MODELS = {
    "masking": [],  # the default recipe: a bidirectional LSTM with strategy=masking
    "packing": ["encoder=lstm", "strategy=packing"],
    "state_reset": ["encoder=gru", "decoder=gru", "strategy=state_reset", "decoder.input_feeding=true"],
    "masking_uni": ["encoder=lstm", "strategy=masking", "encoder.rnn.bidirectional=false"],
    "attention": ["encoder=attention", "strategy=masking", "decoder/attention=bahdanau"],
    "naive": ["encoder=lstm", "strategy=naive", "trainer.max_steps=60"],  # its test needs no sharp model
    "masking_outputs": ["strategy=masking_outputs"],  # not exact: the server decodes it with state_reset
    "naive_sharp": ["encoder=lstm", "strategy=naive"],  # naive, trained as long as the others
}
# One epoch of a small model: val BLEU ~65 in ~40 s. Sharp predictions matter: an untrained model emits
# near-tied repetitions whose order float rounding can flip, which says nothing about padding.
SMALL = [
    "debug=tiny",
    "trainer.max_steps=-1",
    "test=false",
    "encoder.hidden_size=96",
    "decoder.hidden_size=128",
    "model.net.embedding_dim=64",
    "model.optimizer.lr=0.005",
    "logger={}",
]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path):
    """name -> path of the best checkpoint of a tiny model trained on the bundled corpus."""
    trained: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in trained:
            run_dir = tmp_path_factory.mktemp(f"run-{name}")
            with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
                cfg = compose(config_name="train", overrides=SMALL + TINY_MODELS[name])
            with open_dict(cfg):
                cfg.paths.output_dir, cfg.paths.cache_dir = str(run_dir), str(cache_dir)
            trained[name] = Path(train(cfg)["best_checkpoint"])
        return trained[name]

    return get
