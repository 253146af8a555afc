"""dvc.yaml's code deps: they exist, and every package module a stage script imports is one of its deps, so editing
a module re-runs the stages that run it (the end-to-end check with ``dvc status`` is in tests/stages/test_pipeline.py)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from .conftest import REPO

STAGE_RUNTIME = {  # read by every stage, changing no output: the params schema (params are DVC params already),
    "distillery.cli", "distillery.params", "distillery.errors",  # the stage runner and the error type
}
# evaluate prints its summary and warnings with these (reading back the predictions it wrote), and writes nothing
PRINT_ONLY = {"evaluate": {"distillery.evaluation.report", "distillery.evaluation.plots",
                            "distillery.evaluation.lm_report"}}


def stages() -> dict[str, dict]:
    raw = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in raw.items()}


def script_of(stage: dict) -> Path:
    (script,) = [word for word in stage["cmd"].split() if word.startswith("stages/")]
    return REPO / script


def module_file(module: str) -> str:
    """``distillery.data.text`` -> ``distillery/data/text.py`` (a package: its folder)."""
    path = module.replace(".", "/")
    return f"{path}.py" if (REPO / f"{path}.py").exists() else path


def imported_modules(script: Path) -> set[str]:
    """The distillery modules a stage script imports (``from distillery.x import name``: x, or x.name if a module)."""
    found = set()
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "distillery":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                path = REPO / sub.replace(".", "/")
                is_module = path.with_suffix(".py").exists() or path.is_dir()
                found.add(sub if is_module else node.module)
    return found


@pytest.mark.parametrize("name", sorted(stages()))
def test_code_deps_exist(name):
    missing = [dep for dep in stages()[name]["deps"] if dep.startswith(("distillery/", "stages/"))
               and not (REPO / dep).exists()]
    assert not missing, f"dvc.yaml stage {name}: deps that do not exist {missing}"


@pytest.mark.parametrize("name", sorted(stages()))
def test_every_module_a_stage_imports_is_a_dep(name):
    stage = stages()[name]
    deps = set(stage["deps"])
    modules = imported_modules(script_of(stage))
    if "distillery.launch" in stage["cmd"]:
        modules.add("distillery.launch")
    assert modules, f"{name}: found no distillery import in {script_of(stage).name}"
    missing = sorted(m for m in modules - STAGE_RUNTIME - PRINT_ONLY.get(name, set())
                     if not any(module_file(m) == d or module_file(m).startswith(d.rstrip("/") + "/") for d in deps))
    assert not missing, f"dvc.yaml stage {name}: {script_of(stage).relative_to(REPO)} imports {missing}, not in its deps"


def test_dvc_lock_records_the_committed_code():
    """Every code file dvc.lock lists has the md5 it records: the committed outputs were made by this code, so
    `make repro` on a fresh clone changes nothing (after a code change: `dvc repro`, then commit dvc.lock)."""
    import hashlib

    lock = yaml.safe_load((REPO / "dvc.lock").read_text())["stages"]
    stale = sorted({dep["path"] for stage in lock.values() for dep in stage.get("deps", [])
                    if dep["path"].endswith(".py") and (REPO / dep["path"]).is_file()
                    and hashlib.md5((REPO / dep["path"]).read_bytes()).hexdigest() != dep["md5"]})
    assert not stale, f"dvc.lock records other versions of {stale}: run `dvc repro` and commit dvc.lock"


def test_dvc_reads_yaml_with_the_c_loader():
    """requirements.txt installs ruamel.yaml's C loader (optional since ruamel.yaml 0.19), with which DVC reads
    dvc.yaml, dvc.lock and params.yaml several times per command: pure Python costs each `dvc exp run` about 1.3 s
    (bench/yaml_loader.py)."""
    from ruamel.yaml import YAML

    assert YAML(typ="safe").Parser.__name__ == "CParser"
