"""Model zoo: small MLP/CNN classifiers as ``PreTrainedModel``s, and one loader for every model.

The small models are registered with the ``Auto*`` classes, so every model, ours or from the
Hub, is saved with ``save_pretrained`` (safetensors) and loaded with the same ``load_model``.
Hugging Face text models are built in ``distillery.models.text``.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from ..errors import DistilleryError
from .params import ARCH_FIELDS

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


class MLPConfig(PreTrainedConfig):
    """A fully connected classifier: ``input_dim -> hidden_sizes... -> num_labels``."""

    model_type = "distillery-mlp"

    def __init__(self, input_shape=(64,), hidden_sizes=(256, 256), dropout=0.0, **kwargs):
        self.input_shape = list(input_shape)
        self.hidden_sizes = list(hidden_sizes)
        self.dropout = float(dropout)
        super().__init__(**kwargs)


class CNNConfig(PreTrainedConfig):
    """A small convnet on ``input_shape = (H, W)`` or ``(C, H, W)`` images.

    Each entry of ``channels`` is a 3x3 conv + ReLU + 2x2 max-pool; then one hidden layer.
    """

    model_type = "distillery-cnn"

    def __init__(self, input_shape=(8, 8), channels=(16, 32), hidden_size=64, dropout=0.0, **kwargs):
        self.input_shape = list(input_shape)
        self.channels = list(channels)
        self.hidden_size = int(hidden_size)
        self.dropout = float(dropout)
        super().__init__(**kwargs)


class SteadyTrainMode:
    """A module mixin: ``train(mode)`` returns at once when the module and every submodule already are in ``mode``.
    The ``Trainer`` calls ``model.train()`` at every step; setting each submodule's flag again through
    ``nn.Module.__setattr__`` is 3 % of a small student's step on a CPU (``bench/trainer_overhead.py``)."""

    def train(self, mode: bool = True):
        if all(module.training == mode for module in self.modules()):
            return self
        return super().train(mode)


class _Classifier(SteadyTrainMode, PreTrainedModel):
    """Shared forward: ``features -> logits`` (+ cross-entropy when ``labels`` are given)."""

    main_input_name = "features"
    _no_split_modules: list[str] = []

    def _init_weights(self, module):
        # Same scheme as torch's nn.Linear/Conv2d defaults, made explicit so that
        # post_init() is reproducible from the seed alone.
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            fan_in = module.weight[0].numel()
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(module.bias, -bound, bound)

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None, output_hidden_states: bool = False,
                **_unused):
        """``logits``; with ``output_hidden_states`` also ``hidden_states``: the input, then the output of every
        hidden block (an MLP's hidden layers after ReLU/dropout; a CNN's feature maps after each pooling, then
        its dense layer), in order, as distillation methods read them (``hidden_states[-1]`` is the penultimate
        embedding)."""
        x = features.to(self.dtype)
        hidden = [x] if output_hidden_states else None
        for layer in self.net:
            x = layer(x)
            if hidden is not None and isinstance(layer, self.block_ends):
                hidden.append(x)
        loss = None if labels is None else nn.functional.cross_entropy(x, labels)
        return SequenceClassifierOutput(loss=loss, logits=x, hidden_states=None if hidden is None else tuple(hidden))


class MLPForClassification(_Classifier):
    config_class = MLPConfig
    block_ends = (nn.Dropout,)

    def __init__(self, config: MLPConfig):
        super().__init__(config)
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(config.input_shape)
        for hidden in config.hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(config.dropout)]
            width = hidden
        layers.append(nn.Linear(width, config.num_labels))
        self.net = nn.Sequential(*layers)
        self.post_init()


class CNNForClassification(_Classifier):
    config_class = CNNConfig
    block_ends = (nn.MaxPool2d, nn.Dropout)

    def __init__(self, config: CNNConfig):
        super().__init__(config)
        shape = list(config.input_shape)
        in_ch, height, width = ([1] + shape) if len(shape) == 2 else shape
        layers: list[nn.Module] = [nn.Flatten(), nn.Unflatten(1, (in_ch, height, width))]
        for out_ch in config.channels:
            layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            in_ch, height, width = out_ch, height // 2, width // 2
        layers += [
            nn.Flatten(),
            nn.Linear(in_ch * height * width, config.hidden_size),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden_size, config.num_labels),
        ]
        self.net = nn.Sequential(*layers)
        self.post_init()


AutoConfig.register(MLPConfig.model_type, MLPConfig)
AutoConfig.register(CNNConfig.model_type, CNNConfig)
AutoModelForSequenceClassification.register(MLPConfig, MLPForClassification)
AutoModelForSequenceClassification.register(CNNConfig, CNNForClassification)

ARCHITECTURES = {"mlp": (MLPConfig, MLPForClassification), "cnn": (CNNConfig, CNNForClassification)}


def check_model_fits(spec: dict, input_shape: list[int], where: str) -> None:
    """Refuse a ``*.model`` block (``where``: ``teacher.model``, ``student.model``, ``teachers.<name>.model``) that
    cannot take inputs of ``input_shape`` (a row's, channels first): a CNN takes images, (H, W) or (C, H, W), and
    each of its ``channels`` blocks (3x3 conv, ReLU, 2x2 max-pool) halves H and W, rounding down, so at most
    log2 of the smaller side fit. MLPs take any shape; Hugging Face models take texts (not checked here)."""
    if spec["arch"] != "cnn":
        return
    shape = [int(n) for n in input_shape]
    if len(shape) not in (2, 3) or min(shape[-2:]) < 1:
        raise DistilleryError(f"{where}.arch = 'cnn' takes images, (H, W) or (C, H, W) per row; the inputs have shape "
                              f"{shape} (use arch: mlp)")
    height, width = shape[-2:]
    channels = list(spec["channels"]) if "channels" in spec else CNNConfig().channels  # a block without: the default
    blocks = len(channels)
    fit = min(height, width).bit_length() - 1  # the most halvings that leave at least 1 x 1
    if blocks > fit:
        size = f"{height}x{width}"
        raise DistilleryError(f"{where}.channels = {channels}: {blocks} block{'s' if blocks != 1 else ''} halve "
                              f"{size} to {height >> blocks}x{width >> blocks}: at most {fit} "
                              f"block{'s' if fit != 1 else ''} for {size} images (input shape {shape})")


def build_model(spec: dict, input_shape: list[int], label_names: list[str], where: str = "model") -> PreTrainedModel:
    """A freshly initialised model from a ``teacher.model`` / ``student.model`` param block (``where``, named in the
    refusal of a model that cannot take ``input_shape``: ``check_model_fits``)."""
    check_model_fits(spec, input_shape, where)
    config_cls, model_cls = ARCHITECTURES[spec["arch"]]
    options = {k: spec[k] for k in ARCH_FIELDS[spec["arch"]] if k in spec}
    config = config_cls(
        input_shape=input_shape,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: i for i, name in enumerate(label_names)},
        **options,
    )
    return model_cls(config)


def check_safetensors(path: str | Path) -> None:
    """Refuse a local model directory without ``.safetensors`` weights (pickled weights can run code on load)."""
    path = Path(path)
    if not path.is_dir() or any(path.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
    found = f"it has only pickle weights ({', '.join(pickles)})" if pickles else "it has no weights"
    raise DistilleryError(
        f"{path}: no .safetensors weights; {found}. Only safetensors are loaded, since a pickle file can run "
        "code when loaded. If you trust it, convert it once with "
        "AutoModelForSequenceClassification.from_pretrained(dir, use_safetensors=False).save_pretrained(dir)"
    )


def hide_loading_bars() -> None:
    """Draw no "Loading weights" bar (transformers draws one per model loaded, and evaluate loads every model);
    its other bars, downloads included, stay. For the stages' output: a library user keeps transformers' own."""
    from transformers.utils import logging as hf_logging

    def hook(factory, args, kwargs):
        quiet = kwargs.get("desc") == "Loading weights"
        return hf_logging.EmptyTqdm(*args, **kwargs) if quiet else factory(*args, **kwargs)

    hf_logging.set_tqdm_hook(hook)


def load_model(path: str | Path, trust_remote_code: bool = False) -> PreTrainedModel:
    """Load any classifier saved with ``save_pretrained`` (a local dir or a Hub id), safetensors only."""
    check_safetensors(path)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(path), use_safetensors=True, trust_remote_code=trust_remote_code
        )
    except OSError as exc:
        raise DistilleryError(f"{path}: cannot load the model: {exc}") from None
    return model.eval()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
