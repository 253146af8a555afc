"""The pull-request report (``make diff``): float noise within ``diff.tolerance`` (the compared revision's) is "same",
one line says whether anything really changed, the rows keep one order, only the plots whose images or data differ
are shown and the ones DVC could not read are named, and stale or uncommitted results are said first."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from distillery.experiments import pr_report, revisions
from distillery.params import validate

from ..conftest import REPO
from ..repo_utils import ENV, git_commit

NOISE = {"reports/metrics.json": {"kd.accuracy": {"old": 0.9, "new": 0.9 + 1e-9, "diff": 1e-9},
                                  "hard.nll": {"old": 0.25, "new": 0.25 - 1e-9, "diff": -1e-9}}}
CHANGED = {"reports/speed.json": {"student.latency_ms": {"old": 0.2, "new": 0.201, "diff": 1e-3}},
           **NOISE}


def _rows(markdown: str) -> dict[str, list[str]]:
    """The table's rows by metric: [path, metric, old, new, change, verdict]."""
    lines = [line for line in markdown.splitlines() if line.startswith("| ") and "---" not in line][1:]
    cells = [[c.strip() for c in line.strip().strip("|").split(" | ")] for line in lines]
    return {row[1]: row for row in cells}


def test_a_change_within_the_tolerance_is_same_and_a_larger_one_changed():
    rows = pr_report.classify_metrics(CHANGED, 1e-6)
    assert [(r["path"], r["metric"], r["status"]) for r in rows] == [
        ("reports/metrics.json", "hard.nll", "same"), ("reports/metrics.json", "kd.accuracy", "same"),
        ("reports/speed.json", "student.latency_ms", "changed")]  # sorted by path and metric
    assert rows[1]["delta"] == pytest.approx(1e-9)
    assert [r["status"] for r in pr_report.classify_metrics(CHANGED, 0)] == ["changed"] * 3


def test_added_removed_and_non_numbers_are_changed():
    diff = {"m.json": {"new": {"old": None, "new": 4}, "gone": {"old": 3, "new": None},
                       "name": {"old": "x", "new": "y"}, "flag": {"old": None, "new": True},
                       "same_bool": {"old": False, "new": True}}}
    rows = pr_report.classify_metrics(diff, 1e9)
    assert {r["metric"]: r["status"] for r in rows} == dict.fromkeys(["flag", "gone", "name", "new", "same_bool"],
                                                                     "changed")
    table = _rows(pr_report.metrics_markdown(diff, "main", 1e9))
    assert table["new"][2:5] == ["-", "4", "added"]
    assert table["gone"][2:5] == ["3", "-", "removed"]
    assert table["name"][2:5] == ["x", "y", "-"]


def test_a_change_no_larger_than_the_seeds_std_is_said_to_be_within_it():
    """A helper's +0.0017 accuracy (0.6 of an image) read **changed** with nothing to say the seeds vary by 0.0032."""
    diff = {"reports/metrics.json": {  # `dvc metrics diff --all`: the unchanged std too
        "kd.accuracy": {"old": 0.97, "new": 0.97167}, "kd.accuracy_std": {"old": 0.0032, "new": 0.0032},
        "kd.nll": {"old": 0.10, "new": 0.15}, "kd.nll_std": {"old": 0.012, "new": 0.012},
        "hard.accuracy": {"old": 0.95, "new": 0.95}}}
    text = pr_report.metrics_markdown(diff, "main", 1e-6)
    assert text.splitlines()[0] == ("2 of 2 metric differences exceed `diff.tolerance` (1e-06); 0 are float noise. "
                                    "1 of the changes is no larger than the metric's std over seeds: within the "
                                    "seeds' spread.")
    rows = _rows(text)
    assert sorted(rows) == ["kd.accuracy", "kd.nll"]  # unchanged metrics stay out of the table
    assert rows["kd.accuracy"][5] == "**changed**, within the seeds' std (0.0032)"
    assert rows["kd.nll"][5] == "**changed**"  # 0.05 against a std of 0.012


def test_all_noise_says_so_in_one_line_at_the_top():
    text = pr_report.metrics_markdown(NOISE, "main", 1e-6)
    assert text.splitlines()[0] == ("All 2 metric differences are float noise (|Δ| ≤ 1e-06, `diff.tolerance`): "
                                    "the results are the same.")
    assert text.splitlines()[2] == "| Path | Metric | main | this change | Change | Verdict |"
    rows = _rows(text)
    assert rows["kd.accuracy"] == ["reports/metrics.json", "kd.accuracy", "0.9", "0.9", "+1e-09",
                                   "same (\\|Δ\\| ≤ 1e-06)"]
    assert rows["hard.nll"][4:] == ["-1e-09", "same (\\|Δ\\| ≤ 1e-06)"]


def test_a_real_change_is_counted_in_the_top_line_and_marked():
    text = pr_report.metrics_markdown(CHANGED, "main", 1e-6)
    assert text.splitlines()[0] == "1 of 3 metric differences exceeds `diff.tolerance` (1e-06); 2 are float noise."
    assert _rows(text)["student.latency_ms"][2:] == ["0.2", "0.201", "+0.001", "**changed**"]
    zero = pr_report.metrics_markdown(CHANGED, "main", 0, "--tolerance")
    assert zero.splitlines()[0] == "3 of 3 metric differences exceed `--tolerance` (0); 0 are float noise."
    assert all(row[5] == "**changed**" for row in _rows(zero).values())
    assert pr_report.metrics_markdown({}, "main", 1e-6) == "No metric changed."


def test_the_tolerance_param_defaults_to_1e_6_and_is_never_negative():
    from distillery.errors import DistilleryError

    assert validate({})["diff"] == {"tolerance": 1e-6}
    assert validate({"diff": {"tolerance": 0}})["diff"]["tolerance"] == 0
    with pytest.raises(DistilleryError, match=r"diff.tolerance = -1e-06: must be >= 0"):
        validate({"diff": {"tolerance": -1e-6}})


def test_diff_report_does_not_depend_on_the_row_order_dvc_prints(monkeypatch, in_repository):
    header = "| Path | Param | main | workspace |\n|---|---|---|---|"
    params = ["| params.yaml | kd.T | 4 | 2 |", "| params.yaml | kd.alpha | 0.5 | 0.9 |"]
    metrics = [("reports/metrics.json", "kd.nll", 0.9, 1.0), ("reports/speed.json", "student.latency_ms", 0.2, 0.4),
               ("reports/metrics.json", "kd.ece", 0.1, 0.2)]
    reports = []
    for order in (metrics, metrics[::-1]):
        diff: dict = {}
        for path, metric, old, new in order:
            diff.setdefault(path, {})[metric] = {"old": old, "new": new, "diff": new - old}
        answers = {"metrics": json.dumps(diff), "params": "\n".join([header, *(params if order is metrics
                                                                                else params[::-1])])}
        monkeypatch.setattr(pr_report, "_dvc", lambda *args, answers=answers: answers[args[0]])
        monkeypatch.setattr(pr_report, "state_warnings", lambda: [])
        monkeypatch.setattr(pr_report, "paired_section", lambda rev, commit, ev: [])
        reports.append(pr_report.diff_markdown("main", tolerance=1e-6))
    assert reports[0] == reports[1]
    assert "| Path | Param | main | this change |" in reports[0]
    table = reports[0].split("## Params")[0]
    assert table.index("kd.ece") < table.index("kd.nll") < table.index("student.latency_ms")
    assert table.index("3 of 3 metric differences") < table.index("| Path |") < table.index("|---|") < \
        table.index("kd.ece")
    params_section = reports[0].split("## Params")[1]
    assert params_section.index("kd.T") < params_section.index("kd.alpha")


def test_changed_plots_leave_out_identical_images_and_data_and_name_what_dvc_could_not_read(tmp_path, monkeypatch):
    for name, content in [("main_a.png", b"A"), ("workspace_a.png", b"A"), ("main_b.png", b"B1"),
                          ("workspace_b.png", b"B2"), ("workspace_c.png", b"C")]:
        (tmp_path / name).write_bytes(content)
    entry = lambda rev, name: {"type": "image", "revisions": [rev], "url": str(tmp_path / name)}  # noqa: E731

    def vega(*rows):  # an interactive plot: both revisions' rows in one spec, each row tagged with its revision
        values = [{"step": step, "loss": loss, "rev": rev, "other": rev} for rev, step, loss in rows]
        spec = {"encoding": {"x": {"field": "step"}}, "layer": [{"encoding": {"y": {"field": "loss"}}}]}
        return [{"type": "vega", "revisions": ["workspace", "main"],
                 "content": {**spec, "data": {"values": values}}}]  # "other": a column of the file it does not draw

    rendered = {"data": {"a.png": [entry("workspace", "workspace_a.png"), entry("main", "main_a.png")],
                         "b.png": [entry("workspace", "workspace_b.png"), entry("main", "main_b.png")],
                         "c.png": [entry("workspace", "workspace_c.png")],
                         "Loss": vega(("workspace", "1", "0.5"), ("main", "1", "0.5"), ("workspace", "2", "0.4"),
                                      ("main", "2", "0.4")),
                         "Accuracy": vega(("workspace", "1", "0.5"), ("main", "1", "0.6")),
                         "Curve": vega(("workspace", "1", "0.5"))},
                "errors": [{"name": "Curve", "rev": "main", "type": "DataIndexDirError",
                            "msg": "failed to load directory ('reports', 'training', 'kd')"}]}
    monkeypatch.setattr(pr_report, "_dvc", lambda *args: json.dumps(rendered))
    changed, errors = pr_report.changed_plots("main", tmp_path)
    assert sorted(changed) == ["Accuracy", "b.png", "c.png"]  # a.png byte-identical, Loss's rows the same
    assert changed["b.png"] == {"workspace": tmp_path / "workspace_b.png", "main": tmp_path / "main_b.png"}
    assert changed["Accuracy"] == {}  # no image to show
    assert [e["name"] for e in errors] == ["Curve"]  # unread at main: not said to have changed
    lines = pr_report.unreadable_markdown(errors, "main")
    assert lines[0] == ("- Curve at `main`: DataIndexDirError: failed to load directory ('reports', 'training', "
                        "'kd')")
    assert "`make pull` fetches them" in lines[1] and "check out `main` and run `dvc repro`" in lines[1]


def test_the_params_table_calls_the_workspace_this_change_and_an_empty_one_is_said():
    padded = ("| Path        | Param   | main   | workspace   |\n|-------------|---------|--------|-------------|\n"
              "| params.yaml | kd.T    | 4.0    | 2           |")
    assert pr_report.sorted_table(padded).splitlines()[0] == "| Path        | Param   | main   | this change |"
    assert pr_report.sorted_table("| Path | Param | main | workspace |\n|---|---|---|---|") == ""
    assert pr_report.sorted_table("") == ""


def test_a_headline_figure_has_the_spread_of_the_metric_it_copies_and_stds_are_not_counted():
    """headline.json's accuracy.kd read **changed** with no word of the seeds' std that metrics.json's kd.accuracy had
    beside it; and the count at the top counted every changed std as a difference."""
    diff = {"reports/headline.json": {"accuracy.kd": {"old": 0.97, "new": 0.97167},
                                      "kd_minus_hard": {"old": 0.013, "new": 0.0147}},
            "reports/metrics.json": {"kd.accuracy": {"old": 0.97, "new": 0.97167},
                                     "kd.accuracy_std": {"old": 0.0032, "new": 0.0030}}}
    text = pr_report.metrics_markdown(diff, "main", 1e-6)
    rows = {(row[0], row[1]): row for row in
            ([c.strip() for c in line.strip().strip("|").split(" | ")] for line in text.splitlines()
             if line.startswith("| reports/"))}
    assert rows[("reports/headline.json", "accuracy.kd")][5] == "**changed**, within the seeds' std (0.0032)"
    assert rows[("reports/headline.json", "kd_minus_hard")][5] == "**changed**"  # no std beside it
    assert text.splitlines()[0].startswith("3 of 3 metric differences exceed")  # not 4: the std is no difference
    assert "(Not counted: 1 std over seeds that changed, the rows ending in `_std`.)" in text.splitlines()[0]


def test_stale_stages_are_those_out_of_date_with_their_deps_not_the_ones_merely_unpulled():
    assert not revisions._stale("always changed")
    assert not revisions._stale({"changed outs": {"models/students/kd": "deleted", "data/prepared": "not in cache"}})
    assert revisions._stale({"changed outs": {"reports/metrics.json": "modified"}})  # edited by hand
    assert revisions._stale({"changed deps": {"params.yaml": {"kd": "modified"}}})
    assert revisions._stale("changed command")
    stale = {"distill": [{"changed deps": {"params.yaml": {"kd": "modified"}, "distillery/x.py": "modified"}}],
             "plots": [{"changed deps": {"params.yaml": {"kd": "modified"}}}]}
    assert revisions.changed_params(stale) == ["params.yaml: kd", "distillery/x.py"]


def _git_repo(path):
    subprocess.run(["git", "init", "-q"], cwd=path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=path, env=ENV, check=True)


def test_uncommitted_results_are_the_lock_and_tracked_outputs_changed_since_the_commit(tmp_path):
    _git_repo(tmp_path)
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\nstages:\n  evaluate:\n    cmd: x\n    outs:\n"
                                       "    - path: reports/metrics.json\n    - path: reports/plots\n")
    (tmp_path / "reports/plots").mkdir(parents=True)
    for name in ("reports/metrics.json", "reports/plots/a.png", "notes.md"):
        (tmp_path / name).write_text("1")
    git_commit(tmp_path, "results")
    assert revisions.uncommitted_results(tmp_path) == []
    for name in ("reports/metrics.json", "reports/plots/a.png", "notes.md"):
        (tmp_path / name).write_text("2")
    (tmp_path / "dvc.lock").write_text((tmp_path / "dvc.lock").read_text() + "# another run\n")
    (tmp_path / "reports/plots/new.png").write_text("untracked: a new file is not a changed result")
    assert sorted(revisions.uncommitted_results(tmp_path)) == ["dvc.lock", "reports/metrics.json",
                                                               "reports/plots/a.png"]


@pytest.mark.slow
def test_real_dvc_metrics_diff_of_noise_and_a_change(tmp_path):
    """End to end on a tiny DVC repo: the real ``dvc metrics diff --json``, params.yaml's diff.tolerance and
    ``--tolerance``."""
    def report(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "distillery.experiments.pr_report", "--rev", "HEAD", *args],
                              cwd=tmp_path, env={**ENV, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, env=ENV, check=True)
    (tmp_path / "dvc.yaml").write_text("metrics:\n  - metrics.json\n")
    (tmp_path / "params.yaml").write_text("diff:\n  tolerance: 1.0e-6\n")
    (tmp_path / "metrics.json").write_text(json.dumps({"kd": {"accuracy": 0.9, "nll": 0.25}}))
    git_commit(tmp_path, "baseline")
    assert "No metric changed." in report().stdout

    (tmp_path / "metrics.json").write_text(json.dumps({"kd": {"accuracy": 0.9 + 1e-9, "nll": 0.25}}))
    printed = report()
    assert printed.returncode == 0, printed.stderr
    assert ("The one metric difference is float noise (|Δ| ≤ 1e-06, `diff.tolerance of HEAD`): the results are the "
            "same." in printed.stdout), printed.stdout
    assert "| metrics.json | kd.accuracy | 0.9 | 0.9 | +1e-09 | same (\\|Δ\\| ≤ 1e-06) |" in printed.stdout

    (tmp_path / "metrics.json").write_text(json.dumps({"kd": {"accuracy": 0.9 + 1e-9, "nll": 0.26}}))
    assert "1 of 2 metric differences exceeds `diff.tolerance of HEAD` (1e-06); 1 is float noise." in report().stdout
    (tmp_path / "params.yaml").write_text("diff:\n  tolerance: 1.0\n")  # the change would wave itself through
    judged = report().stdout
    assert "1 of 2 metric differences exceeds `diff.tolerance of HEAD` (1e-06); 1 is float noise." in judged
    assert ("This change sets `diff.tolerance` to 1; the comparison uses `HEAD`'s 1e-06, so that a change does not "
            "set the bar it is judged by") in judged
    assert "2 of 2 metric differences exceed `--tolerance` (0); 0 are float noise." in \
        report("--tolerance", "0").stdout
    refused = report("--tolerance", "-1")
    assert refused.returncode == 2 and "--tolerance -1.0: must be a finite number >= 0" in refused.stderr
    assert "--tolerance -0.001: must be" in report("--tolerance=-1e-3").stderr  # as make diff passes it
    refused = report("--rev=")
    assert refused.returncode == 2 and "--rev is empty: name the git revision to compare with" in refused.stderr
    assert "`make diff PLOTS_DIR=<folder>` renders them" in report().stdout  # no plots asked for: said how
