"""The building blocks of the params schema: ``Field`` (one param) and the validation of a nested block.

``distillery.params`` assembles ``SCHEMA`` from these; each distillation method declares its own
params with ``Field``s too (``distillery/methods/``).
"""
from __future__ import annotations

import copy
import difflib
import math
from dataclasses import dataclass
from typing import Any, Callable

from .errors import DistilleryError

_MISSING = object()


@dataclass(frozen=True)
class Field:
    """One param: accepted types, an optional check returning an error text, and a default."""

    types: tuple[type, ...]
    check: Callable[[Any], str | None] | None = None
    default: Any = _MISSING
    nullable: bool = False
    help: str = ""


def positive(v):
    return None if v > 0 else "must be > 0"


def non_negative(v):
    return None if v >= 0 else "must be >= 0"


def unit_interval(v):
    return None if 0 <= v <= 1 else "must be in [0, 1]"


def open_fraction(v):
    return None if 0 < v < 1 else "must be in (0, 1)"


def one_of(*choices):
    def check(v):
        return None if v in choices else f"must be one of {', '.join(map(repr, choices))}"

    return check


def positive_int_list(v):
    if not v:
        return "must be a non-empty list"
    if not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v):
        return "must be a list of positive integers"
    return None


INT, FLOAT, STR, LIST, BOOL = (int,), (int, float), (str,), (list,), (bool,)


def validate_block(raw: Any, schema: dict, path: str, source: str) -> dict:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise DistilleryError(f"{source}: {path or 'top level'} must be a mapping, got {raw!r}")
    unknown = sorted(set(raw) - set(schema))
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, schema, n=1)
        hint = f"; did you mean '{_join(path, close[0])}'?" if close else f"; known: {', '.join(schema)}"
        raise DistilleryError(f"{source}: unknown param '{_join(path, key)}'{hint}")
    out = {}
    for key, spec in schema.items():
        where = _join(path, key)
        if isinstance(spec, dict):
            out[key] = validate_block(raw.get(key), spec, where, source)
            continue
        value = raw.get(key, spec.default)
        if value is _MISSING:
            raise DistilleryError(f"{source}: missing param '{where}'")
        if value is None:
            if spec.nullable:
                out[key] = None
                continue
            raise DistilleryError(f"{source}: {where} = null: a value is required")
        if isinstance(value, bool) and bool not in spec.types:
            ok = False
        else:
            ok = isinstance(value, spec.types)
        if not ok:
            names = " or ".join(t.__name__ for t in spec.types)
            raise DistilleryError(f"{source}: {where} = {value!r}: must be of type {names}")
        if isinstance(value, float) and not math.isfinite(value):
            raise DistilleryError(f"{source}: {where} = {value!r}: must be a finite number")
        problem = spec.check(value) if spec.check else None
        if problem:
            raise DistilleryError(f"{source}: {where} = {value!r}: {problem}")
        out[key] = float(value) if spec.types == FLOAT else value  # `-S kd.T=2` reads as 2.0, as params.yaml's 4.0
    return out


def unflatten(flat: dict) -> dict:
    """Dotted keys as nested params, ``flatten``'s inverse: ``{"kd.T": 4.0}`` -> ``{"kd": {"T": 4.0}}``."""
    out: dict = {}
    for key, value in flat.items():
        *parents, leaf = str(key).split(".")
        node = out
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
    return out


def deep_merge(base: dict, override: dict) -> dict:
    """``override`` merged into a copy of ``base``; nested dicts merge, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def flatten(tree: dict, prefix: str = "") -> dict:
    """Nested params as one level of dotted keys: ``{"kd": {"T": 4.0}}`` -> ``{"kd.T": 4.0}`` (empty blocks
    vanish)."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        out.update(flatten(value, f"{name}.") if isinstance(value, dict) else {name: value})
    return out


def leaves(tree: dict, schema: dict, prefix: str = "") -> dict:
    """Validated params as dotted keys down to ``schema``'s fields: a field whose value is a mapping
    (``data.files``, ``teachers``) stays one key, unlike ``flatten``."""
    out = {}
    for key, spec in schema.items():
        value = tree.get(key)
        if isinstance(spec, dict):
            out.update(leaves(value or {}, spec, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
