"""The frameworks benchmarks/peers.py compares, a module each, and the harness they share.

Each framework module has `train(args, corpus, run_dir, env) -> (target tokens/s, checkpoint snapshots)`
and `translate(args, corpus, run_dir, env, checkpoint) -> test-set lines`.
"""

from toolkits import fairseq, joeynmt, opennmt, ours

TOOLS = {module.__name__.rsplit(".", 1)[-1]: module for module in (ours, joeynmt, opennmt, fairseq)}
