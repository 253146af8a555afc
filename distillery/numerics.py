"""The CPU numerics every stage runs under, pinned by the ``reproducible_cpu`` param so that the same commit gives
the same bits on any x86-64 CPU that can run the pinned code paths.

torch, the BLAS it links (MKL), oneDNN, numpy's own SIMD loops and its OpenBLAS each pick their kernels by the CPU
they find (AVX-512 here, AVX2 there) and each kernel adds floats in its own order: the same training gives other
weights on another CPU. A level names the path all of them take instead:

- ``avx2`` (the default): torch's AVX2 kernels (``ATEN_CPU_CAPABILITY``), MKL's conditional numerical
  reproducibility on its COMPATIBLE branch (``MKL_CBWR``), oneDNN capped at AVX2 (``ONEDNN_MAX_CPU_ISA``),
  numpy's loops up to x86-64-v3 (``NPY_ENABLE_CPU_FEATURES``: its AVX-512 ``exp`` and ``log`` round otherwise),
  OpenBLAS's Haswell kernels (``OPENBLAS_CORETYPE``) and torch's deterministic algorithms. Runs on any x86-64 CPU
  with AVX2 and FMA (x86-64-v3: Intel since 2013, AMD since 2015). MKL's own AVX2 branch would be faster, but MKL offers
  it on Intel CPUs only: elsewhere it silently takes its AUTO branch, so an AMD and an Intel CPU gave other
  bits under ``MKL_CBWR=AVX2``; COMPATIBLE (SSE2 code) is the branch MKL runs alike on every x86-64 CPU.
- ``baseline``: the paths every x86-64 CPU has (SSE2 to SSE4.1); slower.
- ``native``: nothing pinned: each library's fastest path for this CPU, whose bits depend on the CPU.

The libraries read these settings when they first run, so they are set before a stage does any work:
``python -m distillery.launch`` (how dvc.yaml runs every stage) puts them in the environment the stage's process
starts with, and ``distillery.cli.run_stage`` sets them again (a stage run directly) and checks that torch
dispatches the pinned kernels. Each stage records what was in force (``record``) beside its outputs.
Non-x86 machines (e.g. arm64) have none of these paths: there every level runs natively, and the record says so.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

from .errors import DistilleryError

LEVELS: dict[str, dict[str, str]] = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "NPY_ENABLE_CPU_FEATURES": "X86_V3", "OPENBLAS_CORETYPE": "Haswell"},
    "baseline": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "SSE41",
                 "NPY_ENABLE_CPU_FEATURES": "X86_V2", "OPENBLAS_CORETYPE": "Prescott"},
    "native": {},
}
DEFAULT_LEVEL = "avx2"
# a pinned variable and the one it replaces: numpy refuses to import with both of these set
REPLACES = {"NPY_ENABLE_CPU_FEATURES": "NPY_DISABLE_CPU_FEATURES"}
# /proc/cpuinfo flags a level needs beyond x86-64's (avx2: x86-64-v3, which numpy's X86_V3 loops need too)
CPU_FLAGS = {"avx2": ("avx2", "fma", "bmi1", "bmi2", "f16c", "abm", "movbe")}
RECORD_FILE = "numerics.json"


def is_x86(machine: str | None = None) -> bool:
    return (machine or platform.machine()).lower() in ("x86_64", "amd64", "i686", "i386", "x86")


def check_level(level) -> str:
    """``level`` if it names a level, else an error naming the param."""
    if level not in LEVELS:
        raise DistilleryError(f"reproducible_cpu = {level!r}: must be one of {', '.join(LEVELS)}")
    return level


def level_in(params_file: Path = Path("params.yaml")) -> str:
    """The ``reproducible_cpu`` of a params file (its default when absent), read without importing torch."""
    import yaml

    raw = yaml.safe_load(params_file.read_text()) if params_file.is_file() else None
    return check_level((raw or {}).get("reproducible_cpu", DEFAULT_LEVEL))


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str] | None:
    """The CPU's feature flags (Linux), or None where the machine does not list them."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def environment(level: str, machine: str | None = None, flags: set[str] | None = None) -> dict[str, str]:
    """The environment variables that pin ``level`` on this machine (none for ``native`` or off x86).

    A CPU that lacks what the level needs is refused before any work: its results could not match."""
    check_level(level)
    if not is_x86(machine):
        return {}
    have = flags if flags is not None else cpu_flags()  # None: not listed here; torch's check in ``pin`` remains
    missing = sorted(set(CPU_FLAGS.get(level, ())) - have) if have is not None else []
    if missing:
        raise DistilleryError(f"reproducible_cpu = {level}: this CPU lacks {', '.join(missing)}, so it cannot run "
                              f"the pinned kernels; set reproducible_cpu: baseline (any x86-64 CPU) or native "
                              "(this CPU's own kernels, other bits than other CPUs')")
    return dict(LEVELS[level])


def replaced(pinned: dict[str, str]) -> set[str]:
    """The variables ``pinned`` (a level's ``environment``) replaces (``REPLACES``): to be unset where it is set."""
    return {REPLACES[name] for name in pinned if name in REPLACES}


def with_pinned(environ, pinned: dict[str, str]) -> dict[str, str]:
    """``environ`` (a mapping of environment variables) with ``pinned`` in force: its variables set, and those they
    replace removed."""
    return {**{name: value for name, value in environ.items() if name not in replaced(pinned)}, **pinned}


def set_environment(pinned: dict[str, str]) -> None:
    """Put ``pinned`` in force in this process's environment (``with_pinned``, in place)."""
    for name in replaced(pinned):
        os.environ.pop(name, None)
    os.environ.update(pinned)


def pin(level: str) -> None:
    """Set ``level``'s environment in this process (read by each library when it first runs) and check that torch,
    if it has already picked its kernels, picked the pinned ones; then torch's deterministic algorithms on CPU."""
    pinned = environment(level)
    set_environment(pinned)
    import torch

    expected = pinned.get("ATEN_CPU_CAPABILITY", "").upper()  # torch.backends.cpu.get_cpu_capability()'s spelling
    actual = torch.backends.cpu.get_cpu_capability()
    if expected and actual != expected:
        raise DistilleryError(f"reproducible_cpu = {level}: torch dispatches {actual} kernels, not {expected}: "
                              "something ran torch before the stage pinned its numerics (run stages through "
                              "`python -m distillery.launch`, as dvc.yaml does)")
    if level != "native" and not torch.cuda.is_available():  # GPUs: train.full_determinism
        torch.use_deterministic_algorithms(True)


def numpy_simd() -> list[str]:
    """The SIMD loops numpy runs beyond its baseline (its dispatch targets this process enabled: read at import,
    so a pinned process lists what the level allows)."""
    from numpy._core import _multiarray_umath as umath  # where numpy keeps its CPU dispatch table

    return [name for name in umath.__cpu_dispatch__ if umath.__cpu_features__.get(name)]


def record(level: str) -> dict:
    """What was in force in this process: the level, the pinned variables as set, torch's kernels, numpy's loops,
    deterministic algorithms, threads and versions. Machine facts (the CPU's name) stay out: the same settings give
    the same record, so pinned runs on two machines write the same bytes."""
    import torch

    return {
        "reproducible_cpu": level,
        "applies": is_x86(),
        "environment": {name: os.environ.get(name) for name in LEVELS["avx2"]},
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "numpy_simd": numpy_simd(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "torch_threads": torch.get_num_threads(),
        "accelerator": "cuda" if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
    }
