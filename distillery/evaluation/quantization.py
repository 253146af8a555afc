"""Quantized students (``student.quantize: int8``): post-training dynamic int8 quantization for evaluation.

Every ``nn.Linear`` weight becomes int8 (symmetric, one float32 scale per output row); activations are
quantized to int8 on the fly, per row, at each call, and the product runs as an int8 matmul with int32
accumulation (``torch._int_mm``). Done with torchao's ``Int8DynamicActivationInt8WeightConfig`` (torchao is
PyTorch's maintained quantization library; ``torch.ao.quantization.quantize_dynamic``, the older API it
replaces, still runs in torch 2.13 but is deprecated there, and so are the quantized dtypes it stores).
Activations use 7 bits (``reduce_range``): oneDNN's int8 matmul on CPUs without AVX-512 VNNI (AVX2 laptops and
runners, and every CPU under ``reproducible_cpu: avx2``) adds pairs of u8·s8 products in int16, which full
8-bit activations overflow: an MLP's predictions then agreed with fp32 on 78.9 % of rows instead of 98.4 %
(`python bench/cpu_paths.py`). With 7 bits they agree on 99.2 % on every path, bit for bit on AVX-512 and AVX2.
Only Linear layers are quantized: convolutions (the CNN), embeddings, LayerNorm and biases stay fp32.
The result depends on fp32 noise at rounding boundaries: a change in an activation's 7th digit (another
padding of a text batch, another kernel) can move it one int8 step. The quantized models are scored and
timed by the evaluate stage and never saved as outputs; their size on disk is that of their state dict
written with safetensors (int8 weights + scales, torchao's format).
"""
from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import torch
from torch import nn

WEIGHTS_FILE = "model.safetensors"


def _torchao():
    """torchao's quantization API, imported lazily (only ``quantize: int8`` uses it; transformers imports
    torchao too when it is installed, see ``distillery.cli.quiet_torchao``)."""
    import torchao.quantization as quantization

    return quantization


def quantize_int8(model: nn.Module) -> nn.Module:
    """A copy of ``model`` on CPU, in eval mode, with every ``nn.Linear`` weight quantized to int8 and its
    input quantized dynamically (the original is left as it is)."""
    quantization = _torchao()
    quantized = copy.deepcopy(model).to("cpu").eval()
    quantization.quantize_(quantized, quantization.Int8DynamicActivationInt8WeightConfig(reduce_range=True))
    return quantized


def is_int8(tensor) -> bool:
    """Whether ``tensor`` (a parameter) holds int8 data (torchao's ``Int8Tensor``)."""
    return getattr(tensor, "qdata", None) is not None and tensor.qdata.dtype == torch.int8


def int8_parameters(model: nn.Module) -> int:
    """How many of ``model``'s parameters are stored as int8."""
    return sum(p.numel() for p in model.parameters() if is_int8(p))


def save_quantized(model: nn.Module, path: Path) -> int:
    """Write the quantized ``model``'s state dict as safetensors (torchao's flattening: ``qdata`` int8,
    ``scale`` float32 and a zero point per quantized weight, the rest as is); return the file's bytes."""
    _torchao()
    from safetensors.torch import save_file
    from torchao.prototype.safetensors.safetensors_support import flatten_tensor_state_dict

    tensors, metadata = flatten_tensor_state_dict(model.state_dict())
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)
    return Path(path).stat().st_size


def load_quantized(model: nn.Module, path: Path) -> nn.Module:
    """``model`` (a copy of the architecture, fp32) with the quantized weights saved at ``path`` put in."""
    _torchao()
    from safetensors import safe_open
    from torchao.prototype.safetensors.safetensors_support import unflatten_tensor_state_dict

    with safe_open(str(path), "pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    state, leftover = unflatten_tensor_state_dict(tensors, metadata)
    if leftover:
        raise ValueError(f"{path}: tensors left over after unflattening: {sorted(leftover)}")
    model.load_state_dict(state, assign=True)
    return model.eval()


def _tensor_bytes(state: dict) -> tuple[int, int]:
    """Bytes of a quantized state dict's tensor data as stored (int8 weights + scales + zero points, fp32
    rest), and as the fp32 model stores them (each tensor at its logical dtype)."""
    stored = fp32 = 0
    for value in state.values():
        if is_int8(value):
            stored += sum(t.numel() * t.element_size() for t in (value.qdata, value.scale, value.zero_point)
                          if t is not None)
        else:
            stored += value.numel() * value.element_size()
        fp32 += value.numel() * torch.finfo(value.dtype).bits // 8 if value.is_floating_point() \
            else value.numel() * value.element_size()
    return stored, fp32


def quantized_size(model_dir: Path, quantized: nn.Module) -> dict:
    """Bytes on disk of the int8 model: ``weights_bytes``, its safetensors file (``weights_bytes_fp32``: the fp32
    model's), and ``size_bytes``, the model directory's size with its fp32 weights replaced by that file
    (config and tokenizer files count as for the fp32 model, so the two sizes compare). ``tensor_bytes`` /
    ``tensor_bytes_fp32``: the tensor data alone, without the files' headers (torchao's header describes each
    quantized tensor in JSON, which weighs for tiny models)."""
    with tempfile.TemporaryDirectory() as tmp:
        weights = save_quantized(quantized, Path(tmp) / WEIGHTS_FILE)
    files = [f for f in Path(model_dir).rglob("*") if f.is_file()]
    fp32_weights = sum(f.stat().st_size for f in files if f.suffix == ".safetensors")
    total = sum(f.stat().st_size for f in files)
    tensors, tensors_fp32 = _tensor_bytes(quantized.state_dict())
    return {"size_bytes": total - fp32_weights + weights, "weights_bytes": weights, "weights_bytes_fp32": fp32_weights,
            "tensor_bytes": tensors, "tensor_bytes_fp32": tensors_fp32}
