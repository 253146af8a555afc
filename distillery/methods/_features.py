"""What feature-based methods need to know about a model's intermediate outputs, read from its config.

``hidden_states[0]`` is the input (text models: the embeddings); ``hidden_states[i]`` for i >= 1 the
output of hidden block i (MLP: hidden layer i; CNN: conv block i, then the dense layer; text models:
transformer layer i). A layer index in params counts blocks from 1; -1 is the last block (the
penultimate embedding of MLPs and CNNs).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: torch is imported where a function runs it
    from torch import nn


def arch(model) -> str:
    """``mlp``, ``cnn`` or ``hf`` (any Hugging Face transformer)."""
    kind = model.config.model_type
    return {"distillery-mlp": "mlp", "distillery-cnn": "cnn"}.get(kind, "hf")


def num_blocks(model) -> int:
    """How many hidden blocks the model has (the length of ``hidden_states`` minus one)."""
    config = model.config
    if arch(model) == "mlp":
        return len(config.hidden_sizes)
    if arch(model) == "cnn":
        return len(config.channels) + 1
    return config.num_hidden_layers if hasattr(config, "num_hidden_layers") else config.n_layers


def block_index(model, layer: int, where: str) -> int:
    """``layer`` (1..n, or -1 for the last) as an index into ``hidden_states``; an error text names ``where``."""
    n = num_blocks(model)
    index = n if layer == -1 else layer
    if not 1 <= index <= n:
        raise ValueError(f"{where} = {layer}: the model has hidden blocks 1..{n} (or -1 for the last)")
    return index


def feature_shape(model, index: int) -> tuple:
    """The shape of ``hidden_states[index]`` without the batch (and, for text, the sequence) dimension:
    ``(width,)`` for vectors and token states, ``(channels, height, width)`` for feature maps."""
    config = model.config
    kind = arch(model)
    if kind == "mlp":
        return (math.prod(config.input_shape),) if index == 0 else (config.hidden_sizes[index - 1],)
    if kind == "cnn":
        shape = list(config.input_shape)
        channels, height, width = ([1] + shape) if len(shape) == 2 else shape
        if index == 0:
            return (channels, height, width)
        if index <= len(config.channels):
            return (config.channels[index - 1], height // 2 ** index, width // 2 ** index)
        return (config.hidden_size,)
    return (config.hidden_size if hasattr(config, "hidden_size") else config.dim,)


def projection(student_shape: tuple, teacher_shape: tuple) -> nn.Module:
    """A trainable map from student features to the teacher's width: a 1x1 convolution for feature maps
    (same spatial size), a linear layer otherwise (applied to the last dimension of token states)."""
    from torch import nn

    if len(student_shape) == 3:
        return nn.Conv2d(student_shape[0], teacher_shape[0], kernel_size=1)
    return nn.Linear(student_shape[0], teacher_shape[0])


def layer_pairs(layers: list) -> list[tuple[int, int]]:
    """A ``layers`` param as (student layer, teacher layer) pairs: each entry is one layer number for both
    models or a ``[student, teacher]`` pair. ValueError (the text says why) when it is neither."""
    if not layers:
        raise ValueError("must be a non-empty list")
    pairs = []
    for entry in layers:
        if _is_int(entry):
            pairs.append((entry, entry))
        elif isinstance(entry, list) and len(entry) == 2 and all(map(_is_int, entry)):
            pairs.append((entry[0], entry[1]))
        else:
            raise ValueError(f"each entry must be a layer number (both models) or a [student, teacher] pair, "
                             f"got {entry!r}")
    return pairs


def check_layer_pairs(layers) -> str | None:
    """``layer_pairs`` as a ``Field`` check: the error text, or None."""
    try:
        layer_pairs(layers)
    except ValueError as exc:
        return str(exc)
    return None


def pair_indices(pairs: list[tuple[int, int]], n_student: int, n_teacher: int | None,
                 where: str) -> list[tuple[int, int]]:
    """Layer ``pairs`` (blocks 1..n, -1 the last) as indices into the student's and the teacher's ``hidden_states``,
    given how many blocks each has (``n_teacher`` None: not known yet, left as given). ValueError names ``where``."""
    out = []
    for s, t in pairs:
        indices = []
        for role, layer, n in (("student", s, n_student), ("teacher", t, n_teacher)):
            index = layer if n is None else (n if layer == -1 else layer)
            if n is not None and not 1 <= index <= n:
                raise ValueError(f"{where}: the {role} has no block {layer} (blocks 1..{n}, or -1 for the last)")
            indices.append(index)
        out.append(tuple(indices))
    return out


def described_models(params: dict) -> list[tuple[str, dict]]:
    """``(role, model param block)`` of the models params describe: the student, and the teacher unless it is a
    ready ``teacher.checkpoint`` (whose architecture only its config tells)."""
    roles = ("student",) if params["teacher"]["checkpoint"] else ("student", "teacher")
    return [(role, params[role]["model"]) for role in roles]


def spec_blocks(spec: dict) -> int | None:
    """``num_blocks`` of the model a ``*.model`` param block builds; None for ``hf`` (its config tells)."""
    if spec["arch"] == "mlp":
        return len(spec["hidden_sizes"])
    if spec["arch"] == "cnn":
        return len(spec["channels"]) + 1
    return None


def in_float32(fn, *tensors, **kwargs):
    """``fn(*tensors, **kwargs)`` in float32 with autocast off: the distances, norms and Gram matrices of feature
    losses lose too much in fp16/bf16, and fp16 flushes the clamps that keep their gradients finite to zero."""
    import torch

    with torch.autocast(tensors[0].device.type, enabled=False):
        return fn(*(t.float() for t in tensors), **kwargs)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
