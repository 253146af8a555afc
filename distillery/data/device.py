"""A batch's small CPU tensors (its row indices, its jitter draws) onto the training device without a host sync.

A plain ``tensor.to("cuda")`` from pageable CPU memory copies and then waits for the stream
(``cudaStreamSynchronize``, PyTorch's ``memcpy_and_sync``): once per training step, the CPU would wait for the
previous step's kernels before queuing the next. From page-locked memory the copy is queued like a kernel;
PyTorch's caching host allocator keeps the page-locked buffer until the copy has run.
"""
from __future__ import annotations

import torch


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` (on the CPU) on ``device``: to a CUDA device through page-locked memory, asynchronously;
    elsewhere ``tensor.to(device)``."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)
