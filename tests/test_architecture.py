"""The package's architecture (pyproject.toml's import-linter contracts): kept by the code, and able to fail."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

LINT_IMPORTS = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                "sys.exit(lint_imports_command())", "--no-cache", "--no-logo"]


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the package under ``root`` (its pyproject.toml, its copy of distillery first on the path)."""
    return subprocess.run(LINT_IMPORTS, cwd=root, capture_output=True, text=True, env={"PYTHONPATH": str(root),
                                                                                     "PATH": "/usr/bin:/bin"})


@pytest.fixture
def package_copy(tmp_path) -> Path:
    shutil.copytree(REPO / "distillery", tmp_path / "distillery", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_package_keeps_every_contract():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_fails_and_names_it(package_copy):
    prepared = package_copy / "distillery" / "data" / "prepared.py"
    prepared.write_text(prepared.read_text() + "\nfrom ..evaluation import metrics  # noqa: E402\n")
    result = lint_imports(package_copy)
    assert result.returncode == 1
    assert "BROKEN" in result.stdout
    assert "distillery.data.prepared -> distillery.evaluation.metrics" in result.stdout


def test_a_circle_fails_and_names_it(package_copy):
    files = package_copy / "distillery" / "data" / "files.py"
    files.write_text(files.read_text() + "\n\ndef _circle():\n    from .text import prepare_text\n")
    result = lint_imports(package_copy)
    assert result.returncode == 1
    assert "No circles between the modules of any package BROKEN" in result.stdout
    assert "Text sources and numeric tables share data.files, never each other BROKEN" in result.stdout
    assert "distillery.data.files -> distillery.data.text" in result.stdout


def test_a_new_top_level_module_must_be_given_a_layer(package_copy):
    (package_copy / "distillery" / "helpers.py").write_text('"""No layer yet."""\n')
    result = lint_imports(package_copy)
    assert result.returncode == 1
    assert "distillery.helpers" in result.stdout


def test_a_method_importing_another_fails(package_copy):
    dkd = package_copy / "distillery" / "methods" / "dkd.py"
    dkd.write_text(dkd.read_text() + "\n\ndef _borrowed():\n    from .dist import dist_terms\n")
    result = lint_imports(package_copy)
    assert result.returncode == 1
    assert "never each other BROKEN" in result.stdout  # the contract's name, wrapped at 80 columns
    assert "distillery.methods.dkd -> distillery.methods.dist" in result.stdout
