"""Stage start-up: torch's CPU threads follow the ``cpu_threads`` param."""
import pytest
import torch
import yaml

from distillery.cli import set_cpu_threads
from distillery.errors import DistilleryError


@pytest.mark.parametrize("params, expected", [({}, [1]), ({"cpu_threads": 3}, [3]), ({"cpu_threads": 0}, [])])
def test_cpu_threads_param_sets_torch_threads(params, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    set_cpu_threads()
    assert calls == expected  # default 1; 0 leaves torch's own default (one per core)


def test_negative_cpu_threads_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("cpu_threads: -2\n")
    with pytest.raises(DistilleryError, match=r"cpu_threads = -2: must be >= 0"):
        set_cpu_threads()
