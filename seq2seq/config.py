"""Hydra/OmegaConf glue: where the configs live, and the resolvers and generated configs they use."""

from __future__ import annotations

import inspect
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = PROJECT_ROOT / "conf"
# Set by the trainer group's own files, or passed in by train.py (they are objects, not settings).
TRAINER_ARGUMENTS_NOT_IN_CONFIG = ("self", "logger", "callbacks")
# `???` values that train.py fills in itself, from the trained vocabularies.
FILLED_IN_BY_TRAINING = ("model.net.src_vocab_size", "model.net.tgt_vocab_size")


def unset_keys(cfg: DictConfig | ListConfig, prefix: str = "") -> list[str]:
    """Dotted keys whose value is `???` (mandatory, not given), found without resolving interpolations."""
    keys = cfg.keys() if isinstance(cfg, DictConfig) else range(len(cfg))
    unset = []
    for key in keys:
        name = f"{prefix}{key}"
        if OmegaConf.is_missing(cfg, key):
            unset.append(name)
            continue
        node = cfg._get_node(key)
        if isinstance(node, DictConfig | ListConfig) and not node._is_interpolation():
            unset += unset_keys(node, f"{name}.")
    return unset


def setup_hydra() -> None:
    """Registers what conf/ refers to: the `${project_root:}` resolver and the `trainer/lightning` config.

    `trainer/lightning` is every `lightning.Trainer` argument at Lightning's own default, read from its
    signature, so that `trainer.X=...` works for any of them without a `+` and conf/trainer/default.yaml
    holds only the settings this project changes.
    """
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))
    ConfigStore.instance().store(group="trainer", name="lightning", node=lightning_trainer_defaults())


def lightning_trainer_defaults() -> dict:
    """{argument: default} of `lightning.Trainer`, for the arguments a config can hold."""
    import lightning as L  # here, not at the top: every command imports this module, most never compose a config

    return {
        name: parameter.default
        for name, parameter in inspect.signature(L.Trainer.__init__).parameters.items()
        if name not in TRAINER_ARGUMENTS_NOT_IN_CONFIG
    }
