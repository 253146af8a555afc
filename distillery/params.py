"""``params.yaml``: one schema, checked at the start of every stage before any heavy work.

Each leaf of ``SCHEMA`` is a ``Field``; nested dicts are param groups. Unknown keys are
rejected with a "did you mean" suggestion, and every error names the param path and value.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

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


def _positive(v):
    return None if v > 0 else "must be > 0"


def _non_negative(v):
    return None if v >= 0 else "must be >= 0"


def _unit_interval(v):
    return None if 0 <= v <= 1 else "must be in [0, 1]"


def _open_fraction(v):
    return None if 0 < v < 1 else "must be in (0, 1)"


def _one_of(*choices):
    def check(v):
        return None if v in choices else f"must be one of {', '.join(map(repr, choices))}"

    return check


def _positive_int_list(v):
    if not v:
        return "must be a non-empty list"
    if not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v):
        return "must be a list of positive integers"
    return None


def _seed_list(v):
    if not v:
        return "must be a non-empty list of integer seeds"
    if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v):
        return "must be a list of non-negative integers"
    if len(set(v)) != len(v):
        return "must not repeat a seed"
    return None


def _source(v):
    from .data import check_source  # data imports params; keep the cycle lazy

    return check_source(v)


INT, FLOAT, STR, LIST = (int,), (int, float), (str,), (list,)


def _model_block(arch: str, hidden: list[int], dropout: float) -> dict:
    return {
        "arch": Field(STR, _one_of("mlp", "cnn"), arch, help="mlp | cnn"),
        "hidden_sizes": Field(LIST, _positive_int_list, hidden, help="mlp: widths of the hidden layers"),
        "channels": Field(LIST, _positive_int_list, [16, 32], help="cnn: channels of each conv block"),
        "hidden_size": Field(INT, _positive, 64, help="cnn: width of the dense layer"),
        "dropout": Field(FLOAT, _unit_interval, dropout),
    }


def _train_block(lr, batch, steps, eval_steps) -> dict:
    return {
        "learning_rate": Field(FLOAT, _positive, lr),
        "batch_size": Field(INT, _positive, batch),
        "max_steps": Field(INT, _positive, steps),
        "weight_decay": Field(FLOAT, _non_negative, 0.0),
        "max_grad_norm": Field(FLOAT, _non_negative, 0.0, help="0 disables clipping"),
        "eval_steps": Field(INT, _positive, eval_steps),
        "logging_steps": Field(INT, _positive, 50),
        "save_steps": Field(INT, _positive, 500, help="checkpoint interval, for resuming"),
        "precision": Field(STR, _one_of("auto", "fp32", "fp16", "bf16"), "auto"),
        "full_determinism": Field((bool,), None, False,
                                  help="GPU: deterministic kernels only (slower); CPU runs are deterministic anyway"),
    }


SCHEMA: dict = {
    "data": {
        "source": Field(STR, _source, "sklearn:digits"),
        "validation_fraction": Field(FLOAT, _open_fraction, 0.15),
        "test_fraction": Field(FLOAT, _open_fraction, 0.2),
        "split_seed": Field(INT, _non_negative, 0),
    },
    "teacher": {
        "checkpoint": Field(STR, None, None, nullable=True, help="a ready model (local dir or Hub id)"),
        "trust_remote_code": Field((bool,), None, False),
        "seed": Field(INT, _non_negative, 0),
        "model": _model_block("mlp", [256, 256], 0.2),
        "train": {
            **_train_block(1e-3, 64, 4000, 100),
            "early_stopping_patience": Field(INT, _positive, 15),
        },
        "inference_batch_size": Field(INT, _positive, 512),
    },
    "student": {"model": _model_block("mlp", [16], 0.0)},
    "train": {"seeds": Field(LIST, _seed_list, [0, 1, 2, 3, 4]), **_train_block(1e-2, 64, 1500, 100)},
    "kd": {
        "method": Field(STR, None, "kd"),
        "T": Field(FLOAT, _positive, 4.0),
        "alpha": Field(FLOAT, _unit_interval, 0.5),
    },
    "evaluate": {
        "ece_bins": Field(INT, _positive, 15),
        "batch_size": Field(INT, _positive, 512, help="inference batch, also the throughput batch"),
        "bootstrap_samples": Field(INT, _positive, 10000, help="resamples for the KD - hard accuracy interval"),
        "bootstrap_seed": Field(INT, _non_negative, 0),
        "timing_repeats": Field(INT, _positive, 30, help="timed passes per model; the median is reported"),
        "timing_warmup": Field(INT, _non_negative, 5, help="untimed passes before timing"),
    },
}


def _validate(raw: Any, schema: dict, path: str, source: str) -> dict:
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
            out[key] = _validate(raw.get(key), spec, where, source)
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
        out[key] = value
    return out


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def validate(raw: dict, source: str = "params.yaml") -> dict:
    """Return the params with defaults filled in, or raise ``DistilleryError`` naming the bad one."""
    params = _validate(raw, SCHEMA, "", source)
    teacher_train = params["teacher"]["train"]
    if params["teacher"]["checkpoint"] is None and teacher_train["eval_steps"] > teacher_train["max_steps"]:
        raise DistilleryError(
            f"{source}: teacher.train.eval_steps = {teacher_train['eval_steps']}: must be <= teacher.train.max_steps "
            f"({teacher_train['max_steps']}), else early stopping never evaluates"
        )
    from .losses import METHODS

    if params["kd"]["method"] not in METHODS:
        raise DistilleryError(
            f"{source}: kd.method = {params['kd']['method']!r}: must be one of {', '.join(map(repr, METHODS))}"
        )
    return params


def load_params(path: str | Path = "params.yaml") -> dict:
    """Read and validate ``params.yaml``."""
    path = Path(path)
    if not path.exists():
        raise DistilleryError(f"{path}: file not found (run from the repository root)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise DistilleryError(f"{path}: not valid YAML: {exc}") from None
    return validate(raw, str(path))
