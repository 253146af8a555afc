"""The registry of distillation methods: every module here that defines ``METHOD`` (a ``Method``).

Adding a method is adding one module named after it (see ``kd.py`` for a logit method, ``fitnet.py`` for
one with a live teacher, features and a trainable helper); ``kd.method`` in params.yaml picks one by name,
and ``kd.<name>.*`` holds its own params. Modules whose name starts with ``_`` hold shared helpers.
"""
from __future__ import annotations

import importlib
import pkgutil

from ..errors import DistilleryError
from .base import HARD, NEEDS, Method, StepInputs

__all__ = ["HARD", "METHODS", "NEEDS", "Method", "StepInputs", "describe", "get_method"]


def _discover() -> dict[str, Method]:
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        method = getattr(module, "METHOD", None)
        if not isinstance(method, Method):
            continue
        if method.name != info.name:
            raise ValueError(f"{module.__name__}: METHOD.name is {method.name!r}; name it after its module")
        found[method.name] = method
    return dict(sorted(found.items(), key=lambda kv: (kv[0] != "kd", kv[0])))  # kd first, then by name


METHODS: dict[str, Method] = _discover()


def get_method(name: str) -> Method:
    """The method called ``name`` (``kd.method``), or an error listing the valid names."""
    if name not in METHODS:
        raise DistilleryError(f"kd.method = {name!r}: unknown method; valid: {', '.join(METHODS)}")
    return METHODS[name]


def describe(kd_params: dict) -> str:
    """The method of a validated ``kd`` block and the params it reads, in words: "`kd`, T = 4.0, alpha = 0.5"."""
    method = get_method(kd_params["method"])
    values = ", ".join(f"{k} = {v}" for k, v in method.hyperparams(kd_params).items())
    return f"`{method.name}`" + (f", {values}" if values else "")
