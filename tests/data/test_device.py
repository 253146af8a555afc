"""A batch's small CPU tensors onto the training device: as ``.to`` does on a CPU; on a GPU without a host sync
(the GPU test runs where CUDA is, e.g. ``bench/gpu_session.sh first``)."""
from __future__ import annotations

import pytest
import torch

from distillery.data.augment import jitter_batch
from distillery.data.device import to_device
from distillery.training.trainer import TensorDictDataset

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the copy without a host sync)")


def test_on_the_cpu_a_tensor_stays_as_it_is():
    tensor = torch.arange(5)
    assert to_device(tensor, torch.device("cpu")) is tensor


@CUDA
def test_a_batch_and_its_jitter_reach_the_gpu_without_a_host_sync():
    cpu = TensorDictDataset(features=torch.rand(300, 8, 8), labels=torch.arange(300))
    gpu = TensorDictDataset(**cpu.columns).to("cuda")
    indices = torch.randperm(300).tolist()
    torch.manual_seed(5)
    expected = jitter_batch(cpu.__getitems__(indices)["features"], 2)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # a synchronizing call raises
    try:
        torch.manual_seed(5)
        batch = gpu.__getitems__(indices)
        jittered = jitter_batch(batch["features"], 2)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.equal(batch["labels"].cpu(), torch.tensor(indices))
    assert torch.equal(jittered.cpu(), expected)  # the same draws wherever the images are
