"""Mixed-precision helpers."""

from __future__ import annotations

import torch
from torch import Tensor


def _cpu_autocast_dtype() -> torch.dtype | None:
    if hasattr(torch, "get_autocast_dtype"):  # torch >= 2.4
        return torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None
    return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None


def rnn_input(x: Tensor) -> Tensor:
    """The input to hand an `nn.LSTM`/`nn.GRU` module: cast to the autocast dtype inside CPU autocast.

    Embeddings stay fp32 under autocast, and torch 2.13's oneDNN LSTM cannot run an fp32 input inside
    a bf16 autocast region ("could not create a primitive descriptor for the LSTM forward propagation
    primitive"; intel/torch-xpu-ops#4066, fixed upstream by pytorch/pytorch#187334). CUDA autocast
    casts RNN inputs itself, so this changes nothing there.
    """
    dtype = _cpu_autocast_dtype() if x.device.type == "cpu" else None
    return x.to(dtype) if dtype is not None and x.is_floating_point() else x
