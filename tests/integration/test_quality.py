"""Quality guard: every encoder must learn the bundled task, not only run on it.

Each encoder trains the default recipe for 2 epochs with the fixed seed, and its validation BLEU must
clear a floor. The floors sit well under what was measured (the README's "Does every option learn?") so
that float rounding on another CPU cannot trip them, and far above what a model that does not learn
gets: the attention encoder scored 4 BLEU here before issue 12. Deterministic, not timed. With unscaled
dot-product attention in the decoder, the attention encoder's 2-epoch point hung on rounding and seed
(validation BLEU 77.4-96.1 over six seeds; seed 1234 alone moved by 15 between two Adam kernels); with the
scaled dot product that `encoder=attention` picks since issue 24, six seeds gave 93.9-98.5.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.utils import instantiate

from seq2seq.config import PROJECT_ROOT

pytestmark = pytest.mark.slow

# encoder -> (overrides, epochs, validation BLEU floor). Validation BLEU measured after 2 epochs: bi-LSTM 95.0
# and bi-GRU with a GRU decoder 91.9 with param_init=0.1 (94.9 and 90.1 with PyTorch's init, before issue 24);
# attention (Transformer, scaled dot-product attention in the decoder, PyTorch's init) 94.1.
FLOORS = {
    "lstm": ([], 2, 85.0),
    "gru": (["encoder=gru", "decoder=gru"], 2, 80.0),
    "attention": (["encoder=attention"], 2, 85.0),
}


@pytest.mark.parametrize("encoder", FLOORS)
def test_each_encoder_learns_the_bundled_task_in_a_few_epochs(
    encoder: str, tmp_path: Path, cache_dir: Path, compose_config
) -> None:
    overrides, epochs, floor = FLOORS[encoder]
    command = [
        sys.executable,
        "train.py",
        f"hydra.run.dir={tmp_path}",
        f"paths.cache_dir={cache_dir}",
        f"trainer.max_epochs={epochs}",
        "test=false",
        "logger={}",
        "trainer.enable_progress_bar=false",
        *overrides,
    ]
    done = subprocess.run(
        command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=1200, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    datamodule = instantiate(compose_config(overrides).data)
    datamodule.setup("fit")
    assert results["steps"] == epochs * len(datamodule.train_dataloader())  # every epoch trained in full
    assert results["val/bleu"] >= floor, (
        f"{encoder}: validation BLEU {results['val/bleu']:.2f} is below its floor {floor}"
    )
