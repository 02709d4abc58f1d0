"""The frameworks benchmarks/peers.py compares, a module each, and the harness they share.

Each framework module has `train(args, corpus, run_dir, env) -> (target tokens/s, checkpoint snapshots)`
and `translate(args, corpus, run_dir, env, checkpoint) -> test-set lines`. Besides the peers table's
shared model, three rows train a framework's own recipe: `ours-default` (what `train.py` gives on the
corpus), `fairseq-transformer` and `opennmt-defaults`, what a user of that framework would pick instead.
"""

from functools import partial
from types import SimpleNamespace

from toolkits import fairseq, joeynmt, opennmt, ours

TOOLS = {module.__name__.rsplit(".", 1)[-1]: module for module in (ours, joeynmt, opennmt, fairseq)} | {
    "ours-default": SimpleNamespace(train=partial(ours.train, shared=False), translate=ours.translate),
    "fairseq-transformer": SimpleNamespace(
        train=partial(fairseq.train, model=fairseq.TRANSFORMER), translate=fairseq.translate
    ),
    "opennmt-defaults": SimpleNamespace(
        train=partial(opennmt.train, model=opennmt.DEFAULTS), translate=opennmt.translate
    ),
}
SHARED_MODEL = ("ours", "joeynmt", "opennmt", "fairseq")  # the rows that train the peers table's model


def package_of(tool: str) -> str:
    """The framework a row runs (its virtualenv): `fairseq-transformer` runs fairseq."""
    return tool.split("-", 1)[0]
