"""Every bench script imports: they import each other's helpers (`from pipeline_time import fresh_copy`), and a
helper renamed in one of them broke six while `make test` stayed green."""
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_every_bench_script_imports():
    names = sorted(path.stem for path in BENCH.glob("*.py"))
    code = ("import importlib, sys\nsys.path.insert(0, sys.argv[1])\n"
            "for name in sys.argv[2:]:\n    importlib.import_module(name)\n")
    done = subprocess.run([sys.executable, "-c", code, str(BENCH), *names], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(names) >= 20
