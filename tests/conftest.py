"""Shared fixtures: the real config composed with Hydra, tiny models, a session-wide sentencepiece cache."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from seq2seq.config import CONFIG_DIR, setup_hydra

setup_hydra()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One sentencepiece cache for the whole session, so each vocabulary is trained once."""
    return Path(os.environ.get("SEQ2SEQ_TEST_CACHE") or tmp_path_factory.mktemp("cache"))


@pytest.fixture
def compose_config(tmp_path: Path, cache_dir: Path) -> Callable[[list[str]], DictConfig]:
    """Composes the real `conf/train.yaml` with overrides, with paths that need no Hydra run."""

    def compose_with(overrides: list[str]) -> DictConfig:
        with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
            cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)  # `${hydra:runtime.choices.encoder}` and the like resolve
        with open_dict(cfg):
            del cfg["hydra"]
            cfg.paths.output_dir = str(tmp_path)
            cfg.paths.cache_dir = str(cache_dir)
        return cfg

    return compose_with


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 4 MiB tmpfs of its own (a full disk is then easy to reach); skipped where tmpfs cannot be mounted."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def fill_disk() -> Callable[[Path, int], None]:
    """fill(disk, leave): writes a filler file until about `leave` bytes of `disk` are free."""

    def fill(disk: Path, leave: int) -> None:
        free = shutil.disk_usage(disk).free
        (disk / "filler").write_bytes(b"\0" * max(0, free - leave))

    return fill
