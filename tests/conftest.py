"""Shared fixtures: validated tiny params and the digits data prepared once per session."""
from __future__ import annotations

import contextlib
import copy
from pathlib import Path

from distillery.numerics import DEFAULT_LEVEL, environment, set_environment

# The tests' own torch runs the kernels every stage pins (docs/reproducibility.md), set before torch first runs:
# stages called in this process (run_stage) and results compared with a stage's subprocess need the same ones.
set_environment(environment(DEFAULT_LEVEL))

import pytest  # noqa: E402
import torch  # noqa: E402

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


def fit_arch(raw: dict) -> dict:
    """``raw`` without ``TINY``'s MLP widths for a model that ``raw`` makes another arch (refused otherwise: an arch
    does not read another's params)."""
    out = copy.deepcopy(raw)
    for role in ("teacher", "student"):
        model = (out.get(role) or {}).get("model") or {}
        if model.get("arch", "mlp") != "mlp":
            model.pop("hidden_sizes", None)
    return out


# Seeds one after the other when a test trains them in its own process, so that what the test patches there is what
# trains (auto would fork once a stage run in this process has set torch to one thread); tests of forking ask for it.
# Stages the tests run as subprocesses keep the default.
IN_PROCESS = {"compute": {"seed_processes": 1}}


def make_params(**groups) -> dict:
    """Validated params: schema defaults, shrunk by ``TINY``, seeds in turn (``IN_PROCESS``), then ``groups`` merged
    in."""
    return validate(fit_arch(deep_merge(deep_merge(TINY, IN_PROCESS), groups)), "test params")


@pytest.fixture(scope="module", autouse=True)
def scratch_working_directory(tmp_path_factory):
    """Each test module runs in its own empty working directory, so that what training writes relative to it (the
    runs under ``.cache/checkpoints``, named by their params) never lands in the repository nor meets another
    module's: two modules with the same tiny teacher, on two workers at once, had shared one run directory, and one
    worker's checkpoint rotation removed the folder the other was writing to (a CI failure). Tests that need another
    directory still ``chdir`` into it."""
    with contextlib.chdir(tmp_path_factory.mktemp("cwd")):
        yield


@pytest.fixture(scope="module", autouse=True)
def seeded_module():
    """torch's global generator starts from seed 0 in each test module and each test (below): torch 2.13 seeds it
    at random in every process, so weights a test or a module fixture builds without a seed of its own differed
    from run to run and worker to worker (a test of a NaN loss had failed alone that way)."""
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def seeded_test():
    torch.manual_seed(0)


@pytest.fixture
def in_repository(monkeypatch):
    """The test runs in the repository's root, where every command runs: it reads the shipped ``presets/`` or the
    repository's git history, and writes nothing relative to the working directory."""
    monkeypatch.chdir(REPO)


@pytest.fixture
def one_torch_thread():
    """torch on one thread, as every stage runs it (``cpu_threads: 1``): many times faster on a busy machine, and the
    condition for training seeds side by side in forked processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def params() -> dict:
    return make_params()


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """The default source (sklearn digits) prepared with the default split."""
    out = tmp_path_factory.mktemp("prepared") / "prepared"
    prepare(make_params()["data"], out)
    return load_prepared(out)


@pytest.fixture(scope="module")
def text_assets(tmp_path_factory):
    """Text tests (tests/data/test_text.py, tests/models/test_text.py): sentences, two tokenizers with different vocabularies, a tiny BERT teacher checkpoint."""
    from .text_utils import sentences, tiny_checkpoint, train_tokenizer

    root = tmp_path_factory.mktemp("text")
    df = sentences(160)
    texts = df["sentence"].tolist()
    tok_a = train_tokenizer(texts, root / "tok_a", vocab_size=120)
    tok_b = train_tokenizer(texts, root / "tok_b", vocab_size=70, lowercase=False)
    teacher = tiny_checkpoint(root / "teacher", tok_a, "bert", layers=3)
    df.iloc[:120].to_csv(root / "train.tsv.gz", sep="\t", index=False)
    df.iloc[120:].to_csv(root / "validation.tsv", sep="\t", index=False)
    return {"root": root, "df": df, "tok_a": tok_a, "tok_b": tok_b, "teacher": teacher}


def pytest_collection_modifyitems(items):
    """The modules with end-to-end tests (marked slow) first, in collection order otherwise and each module's tests
    together: ``make test`` hands whole modules to its workers (pytest-xdist's ``--dist loadfile``) as they free up,
    and the longest going first keeps every worker busy to the end."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)
