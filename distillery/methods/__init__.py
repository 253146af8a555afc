"""The registry of distillation methods: every module here that defines ``METHOD`` (a ``Method``).

Adding a method is adding one module named after it (see ``kd.py`` for a logit method, ``fitnet.py`` for
one with a live teacher, features and a trainable helper); ``kd.method`` in params.yaml picks one by name,
and ``kd.<name>.*`` holds its own params. ``base`` (the declaration) and ``losses`` (the loss primitives several
methods share) are the seam itself; modules whose name starts with ``_`` hold shared helpers.

Every stage reads the declarations (params.yaml's schema), most of them without training anything: a method
module imports torch inside the functions that run it (annotations under ``TYPE_CHECKING``), never at its top.
"""
from __future__ import annotations

import importlib
import pkgutil

from ..errors import DistilleryError
from ..schema import FLOAT, STR, Field, positive, unit_interval
from .base import HARD, NEEDS, Method, StepInputs

__all__ = ["HARD", "METHODS", "NEEDS", "Method", "StepInputs", "check_method_params", "describe", "get_method",
           "kd_schema"]


SEAM_MODULES = ("base", "losses")  # the declaration and the shared losses; every other public module is a method


def _discover() -> dict[str, Method]:
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name in SEAM_MODULES:
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


def unknown(name: str) -> str:
    """What is said of a method name that is none: the closest name (a slip, another case), then every valid one."""
    import difflib

    lower = {method.lower(): method for method in METHODS}
    close = [lower[m] for m in difflib.get_close_matches(str(name).lower(), lower, n=1)]
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown method; {hint}valid: {', '.join(METHODS)}"


def get_method(name: str) -> Method:
    """The method called ``name`` (``kd.method``), or an error listing the valid names."""
    if name not in METHODS:
        raise DistilleryError(f"kd.method = {name!r}: {unknown(name)}")
    return METHODS[name]


def describe(kd_params: dict) -> str:
    """The method of a validated ``kd`` block and the params it reads, in words: "`kd`, T = 4.0, alpha = 0.5"."""
    method = get_method(kd_params["method"])
    values = ", ".join(f"{k} = {v}" for k, v in method.hyperparams(kd_params).items())
    return f"`{method.name}`" + (f", {values}" if values else "")


def kd_schema() -> dict:
    """The ``kd`` block of params.yaml: the method, the params most methods share, and each method's own block
    ``kd.<name>`` as its module declares it."""

    def known_method(name):
        return None if name in METHODS else unknown(name)

    return {
        "method": Field(STR, known_method, "kd", help="a distillation method (distillery/methods/)"),
        "T": Field(FLOAT, positive, 4.0, help="softmax temperature of the methods that read it"),
        "alpha": Field(FLOAT, unit_interval, 0.5, help="weight of the distillation term: (1-α)·CE + α·term"),
        **{name: dict(method.params) for name, method in METHODS.items() if method.params},
    }


def check_method_params(params: dict, source: str) -> None:
    """The chosen method's own rules on the rest of the params (e.g. attention transfer needs CNNs)."""
    method = METHODS[params["kd"]["method"]]
    problem = method.check_params(params) if method.check_params else None
    if problem:
        raise DistilleryError(f"{source}: kd.method = {method.name!r}: {problem}")
