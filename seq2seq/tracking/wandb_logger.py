"""Weights & Biases logging that works on a first run: offline, with a sync hint, when no account is set up."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger

log = logging.getLogger(__name__)


def wandb_api_key_configured() -> bool:
    """True when W&B can authenticate without asking: WANDB_API_KEY, or a `wandb login` entry in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


class RunWandbLogger(WandbLogger):
    """Lightning's WandbLogger, offline unless an API key is configured, with a best-checkpoint artifact.

    Args:
        offline: True/False forces the mode; None is offline when WANDB_MODE=offline or no API key is found.
        log_model: log the best checkpoint as a `model` artifact (alias "best") when the run ends. Done
            here rather than by Lightning, which refuses `log_model` offline; offline artifacts upload on sync.
        **kwargs: WandbLogger / `wandb.init` arguments (project, entity, group, tags, name, save_dir, ...).
    """

    def __init__(self, offline: bool | None = None, log_model: bool = False, **kwargs) -> None:
        if offline is None:
            offline = os.environ.get("WANDB_MODE") in ("offline", "dryrun") or not wandb_api_key_configured()
        if offline and os.environ.get("WANDB_MODE") not in ("offline", "dryrun", "disabled"):
            log.warning(
                "W&B: no API key (WANDB_API_KEY or `wandb login`), so this run logs offline under %s/wandb; "
                "upload it later with `wandb sync %s/wandb/offline-run-*`",
                kwargs.get("save_dir", "."),
                kwargs.get("save_dir", "."),
            )
        if kwargs.get("save_dir"):
            Path(kwargs["save_dir"]).mkdir(parents=True, exist_ok=True)
        super().__init__(offline=offline, log_model=False, **kwargs)
        self.log_best_model = log_model
