"""distillery/numerics.py: the environment each level pins, its checks, and what a stage records."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from distillery.errors import DistilleryError
from distillery.numerics import LEVELS, environment, is_x86, level_in, with_pinned

from .conftest import REPO

AVX2_CPU = {"avx2", "fma", "bmi1", "bmi2", "f16c", "abm", "movbe", "sse4_1", "sse4_2"}
OLD_CPU = {"sse4_1", "sse4_2"}


def test_avx2_pins_every_library_and_native_pins_nothing():
    assert environment("avx2", "x86_64", AVX2_CPU | {"avx512f"}) == {
        "ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "AVX2",
        "NPY_ENABLE_CPU_FEATURES": "X86_V3", "OPENBLAS_CORETYPE": "Haswell"}
    assert environment("baseline", "x86_64", OLD_CPU)["ATEN_CPU_CAPABILITY"] == "default"
    assert environment("native", "x86_64", AVX2_CPU) == {}


def test_every_level_holds_mkl_to_a_branch_it_runs_alike_on_intel_and_amd():
    """MKL's branches other than AUTO and COMPATIBLE exist on Intel CPUs only: elsewhere MKL silently runs AUTO,
    and an Intel and an AMD CPU give other bits (seen: the default's teacher under MKL_CBWR=AVX2)."""
    assert {LEVELS[level]["MKL_CBWR"] for level in ("avx2", "baseline")} == {"COMPATIBLE"}


def test_a_pinned_numpy_level_replaces_a_numpy_cap_already_in_the_environment():
    """numpy refuses to import with NPY_DISABLE_CPU_FEATURES beside NPY_ENABLE_CPU_FEATURES: the level's wins."""
    outer = {"PATH": "/bin", "NPY_DISABLE_CPU_FEATURES": "X86_V4"}
    assert with_pinned(outer, LEVELS["avx2"]) == {"PATH": "/bin", **LEVELS["avx2"]}
    assert with_pinned(outer, LEVELS["native"]) == outer


def test_a_cpu_without_avx2_is_refused_naming_the_param_and_the_flags():
    lacks = r"reproducible_cpu = avx2: this CPU lacks abm, avx2, bmi1, bmi2, f16c, fma, movbe.*baseline"
    with pytest.raises(DistilleryError, match=lacks):
        environment("avx2", "x86_64", OLD_CPU)


def test_off_x86_nothing_is_pinned():
    assert environment("avx2", "arm64", set()) == {}


def test_the_level_is_read_from_params_yaml_without_torch(tmp_path):
    params = tmp_path / "params.yaml"
    assert level_in(params) == "avx2"  # no file: the default
    params.write_text("cpu_threads: 1\n")
    assert level_in(params) == "avx2"
    params.write_text("reproducible_cpu: native\n")
    assert level_in(params) == "native"
    params.write_text("reproducible_cpu: avx512\n")
    with pytest.raises(DistilleryError, match=r"reproducible_cpu = 'avx512': must be one of avx2, baseline, native"):
        level_in(params)


def python(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    clean = {k: v for k, v in os.environ.items() if k not in LEVELS["avx2"]}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env={**clean, **(env or {})})


x86_only = pytest.mark.skipif(not is_x86(), reason="the pinned code paths are x86-64's")


@x86_only
def test_pin_makes_torch_dispatch_the_pinned_kernels_and_records_them():
    result = python("import json; import torch; from distillery.numerics import pin, record; pin('baseline'); "
                    "torch.ones(4).sum(); print(json.dumps(record('baseline')))")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["torch_cpu_capability"] == "DEFAULT" and record["deterministic_algorithms"] is True
    assert record["environment"]["MKL_CBWR"] == "COMPATIBLE" and record["reproducible_cpu"] == "baseline"


@x86_only
def test_pin_refuses_when_torch_already_picked_other_kernels():
    result = python("import torch; torch.ones(4).sum(); from distillery.numerics import pin; pin('avx2')",
                    {"ATEN_CPU_CAPABILITY": "default"})
    assert result.returncode != 0
    assert "torch dispatches DEFAULT kernels, not AVX2" in result.stderr


def test_the_launcher_starts_the_stage_with_the_pinned_environment(tmp_path):
    import os

    (tmp_path / "show.py").write_text("import os; print(os.environ.get('MKL_CBWR'), os.environ.get('OPENBLAS_CORETYPE'))\n")
    env = {**{k: v for k, v in os.environ.items() if k not in LEVELS["avx2"]}, "PYTHONPATH": str(REPO)}
    for level, shown in (("baseline", "COMPATIBLE Prescott"), ("native", "None None")):
        (tmp_path / "params.yaml").write_text(f"reproducible_cpu: {level}\n")
        result = subprocess.run([sys.executable, "-m", "distillery.launch", "show.py"], cwd=tmp_path, env=env,
                                capture_output=True, text=True)
        assert result.stdout.strip() == shown, result.stderr


@x86_only
def test_mkl_runs_the_pinned_branch_in_a_pinned_process():
    result = python("from distillery.numerics import pin; pin('avx2'); import torch; "
                    "torch.ones(8, 8) @ torch.ones(8, 8)", {"MKL_VERBOSE": "1"})
    assert result.returncode == 0, result.stderr
    assert "SGEMM" in result.stdout and "CNR:COMPATIBLE" in result.stdout, result.stdout


@x86_only
def test_numpy_runs_its_avx2_loops_and_no_further_in_a_pinned_process():
    """numpy's own SIMD loops: its AVX-512 ``exp`` and ``log`` of float64 round otherwise than its AVX2 ones (seen:
    one metric's last digit), so an AVX-512 machine gave other bits than an AVX2 laptop. numpy picks them at import:
    the process starts with the level's environment, as the launcher starts a stage."""
    result = python("import json; from distillery.numerics import record; print(json.dumps(record('avx2')))",
                    LEVELS["avx2"])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["numpy_simd"] == ["X86_V3"]
