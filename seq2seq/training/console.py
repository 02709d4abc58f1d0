"""What a training run prints: the run folder, padding and throughput figures, translations, results.

Lightning also prints advertising tips (`litlogger`, `litmodels`) and a deprecation warning that its
own code triggers in torch's pytree module; neither is anything a user of this framework can act on.
"""

from __future__ import annotations

import logging
import warnings

LIGHTNING_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


class DropTips(logging.Filter):
    """Drops Lightning's "💡 Tip: ... try installing ..." messages."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


def quiet_lightning() -> None:
    """Silences what Lightning prints that is not for our users; everything else stays."""
    for name in LIGHTNING_LOGGERS:
        logging.getLogger(name).addFilter(DropTips())
    warnings.filterwarnings(
        "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
    )
