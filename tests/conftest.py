"""Shared fixtures: validated tiny params and the digits data prepared once per session."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from distillery.data.prepare import prepare
from distillery.data.prepared import load_prepared
from distillery.params import validate

REPO = Path(__file__).resolve().parents[1]
torch.set_flush_denormal(True)

TINY = {
    "teacher": {
        "model": {"hidden_sizes": [32]},
        "train": {"learning_rate": 0.01, "max_steps": 100, "eval_steps": 20, "logging_steps": 10},
    },
    "student": {"model": {"hidden_sizes": [8]}},
    "train": {"seeds": [0, 1], "max_steps": 40, "eval_steps": 20, "logging_steps": 10, "save_steps": 20},
}


def deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def make_params(**groups) -> dict:
    """Validated params: schema defaults, shrunk by ``TINY``, then ``groups`` merged in."""
    return validate(deep_merge(TINY, groups), "test params")


@pytest.fixture
def params() -> dict:
    return make_params()


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """The default source (sklearn digits) prepared with the default split."""
    out = tmp_path_factory.mktemp("prepared") / "prepared"
    prepare(make_params()["data"], out)
    return load_prepared(out)
