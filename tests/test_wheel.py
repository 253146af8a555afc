"""``pip install .`` (not editable) gives a package that works: every module and the methods registry import
from the installed wheel, with no network and no source tree beside it."""
from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib

from distillery.methods import METHODS

from .conftest import REPO

IMPORT_EVERYTHING = """
import importlib, json, pkgutil, distillery
modules = [m.name for m in pkgutil.walk_packages(distillery.__path__, "distillery.") if not m.name.endswith("__main__")]
for name in modules:
    importlib.import_module(name)
from distillery.methods import METHODS
print(json.dumps({"file": distillery.__file__, "modules": modules, "methods": list(METHODS)}))
"""


def test_the_wheel_installs_every_subpackage_and_imports(tmp_path):
    source = tmp_path / "source"  # a clean copy: setuptools would reuse a build/ folder left in the repository
    shutil.copytree(REPO / "distillery", source / "distillery", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", source)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp_path / "dist"),
                    str(source)], check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("distillery-*.whl")
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)], check=True,
                   capture_output=True)
    away = tmp_path / "elsewhere"  # no params.yaml, no source tree: only the installed package
    away.mkdir()
    # -S: no .pth files, so an editable install of the repository cannot serve the imports; the dependencies come
    # from site-packages on the path after the wheel's folder
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), sysconfig.get_path("purelib"),
                                                        sysconfig.get_path("platlib")])}
    result = subprocess.run([sys.executable, "-S", "-c", IMPORT_EVERYTHING], cwd=away, env=env, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["file"].startswith(str(site)), found["file"]
    source_modules = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
                      for p in (REPO / "distillery").rglob("*.py") if p.name != "__main__.py"}
    assert set(found["modules"]) | {"distillery"} == source_modules
    assert found["methods"] == list(METHODS)
    metadata = next((site).glob("distillery-*.dist-info")) / "METADATA"
    required = {line.split(":", 1)[1].strip() for line in metadata.read_text().splitlines()
                if line.startswith("Requires-Dist:")}
    assert required == set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"])


def _name(requirement: str) -> str:
    """The normalised distribution name of ``torch>=2.13.0`` or ``torch==2.13.0``: ``torch``."""
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower().replace("_", "-").replace(".", "-")


def test_the_package_declares_every_library_it_imports_at_least_at_the_tested_version():
    """The wheel declared no dependencies: ``pip install`` of it, then ``python -m distillery.methods``, failed on
    numpy. Every third-party module the package imports is a declared dependency, whose lower bound is the version
    requirements.txt pins."""
    imported = set()
    for path in (REPO / "distillery").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = {name for name in imported if name not in sys.stdlib_module_names and name != "distillery"}
    declared = {_name(r): r for r in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    distributions = importlib.metadata.packages_distributions()
    undeclared = sorted(name for name in third_party
                        if not {_name(d) for d in distributions.get(name, [name])} & set(declared))
    assert undeclared == []
    pinned = {_name(line): line.split("==")[1].strip() for line in (REPO / "requirements.txt").read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    for name, requirement in declared.items():
        bound = requirement.partition(">=")[2]
        assert name in pinned, f"{requirement}: not pinned in requirements.txt"
        assert not bound or bound == pinned[name], f"{requirement}: requirements.txt tests {pinned[name]}"

