"""Random generator states saved in checkpoints, so that a resumed run draws the same dropout masks."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


def rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA generator states, as tensors and plain types (weights_only-loadable)."""
    version, mt_state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, torch.tensor(mt_state, dtype=torch.int64), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restores what `rng_state` saved (CUDA states only where CUDA is in use)."""
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state.tolist()), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def every_rank_rng_state() -> list[dict[str, Any]]:
    """`rng_state` of every rank of a distributed run, in rank order (one entry outside one).

    Each rank draws its own dropout masks, so a resumed rank needs its own states back, not rank 0's.
    A collective: every rank must call it, as every rank builds the checkpoint Lightning saves.
    """
    mine = rng_state()
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return [mine]
    gathered: list[dict[str, Any] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, mine)
    return [state for state in gathered if state is not None]
