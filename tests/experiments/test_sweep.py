"""Sweeps: the grid, the untracked-code guard, and a real 2 x 2 queued grid with its report and a PR diff."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from distillery.errors import DistilleryError
from distillery.experiments.sweep import DEFAULT_GRID, check_grid, grid_points, parse_grid

from ..conftest import REPO, TINY, deep_merge
from ..repo_utils import MAKE, copy_repo, git_commit, run, stages_run

GRID = "kd.T=1,2 kd.alpha=0.5"  # two points, one per queue worker (the product: unit tests above)


def test_default_grid_is_the_classic_study_plus_the_alpha_zero_ablation():
    points = grid_points(parse_grid(DEFAULT_GRID))
    assert len(points) == 7
    assert {(p["kd.T"], p["kd.alpha"]) for p in points[:6]} == {(t, a) for t in (1, 2, 4) for a in (0.5, 0.9)}
    assert points[6] == {"kd.alpha": 0}
    assert len(check_grid(parse_grid(DEFAULT_GRID), REPO / "params.yaml")) == 7


@pytest.mark.parametrize(
    "grid, message",
    [
        ("", "GRID is empty"),
        ("kd.T", "GRID item 'kd.T': expected key=value"),
        ("kd.T=1,,2", "GRID item 'kd.T=1,,2'"),
        ("kd.T=1,2 kd.alfa=0.5", "unknown param 'kd.alfa'; did you mean 'kd.alpha'?"),
        ("kd.T=1,0", "kd.T = 0: must be > 0"),
        ("kd.alpha=0.5; kd.alpha=1.5", "kd.alpha = 1.5: must be in [0, 1]"),
        ("kd.T.x=1", "kd.T is not a param group"),
        ("kd.T=1,4 kd.T=2", "GRID group 'kd.T=1,4 kd.T=2': kd.T given twice"),  # DVC queued one of the three
        ("kd.T=[1,4]", "GRID item 'kd.T=[1,4]': '[1' is not a value (commas separate the values"),
        # a param the point's method ignores: as many runs of the same experiment, reported as if it mattered
        ("kd.dkd.beta=4,8", "kd.method = 'kd' does not read kd.dkd.beta (it reads kd.T, kd.alpha)"),
        ("kd.method=dkd kd.alpha=0.3", "kd.method = 'dkd' does not read kd.alpha (it reads kd.T, kd.dkd.alpha, "
                                       "kd.dkd.beta, kd.dkd.warmup_steps)"),
    ],
)
def test_bad_grid_is_refused_before_anything_runs(grid, message):
    with pytest.raises(DistilleryError, match=re.escape(message)):
        check_grid(parse_grid(grid), REPO / "params.yaml")


def test_a_method_s_own_param_is_swept_though_params_yaml_leaves_it_to_its_default(monkeypatch):
    """``kd.dkd.beta`` is in no params.yaml: ``-S kd.dkd.beta=4`` made DVC fail after the workspace's repro, and
    ``++kd.dkd.beta`` was refused by the sweep's own check. Every key is queued with ``++`` now."""
    from distillery.experiments import sweep

    groups = parse_grid("kd.method=dkd ++kd.dkd.beta=4,8")
    assert groups == [["kd.method=dkd", "kd.dkd.beta=4,8"]]
    assert check_grid(groups, REPO / "params.yaml") == [{"kd.method": "dkd", "kd.dkd.beta": 4},
                                                          {"kd.method": "dkd", "kd.dkd.beta": 8}]
    queued = []
    monkeypatch.setattr(sweep, "dvc", lambda *args, **kwargs: queued.append(args) or subprocess.CompletedProcess(
        args, 0, "Queued experiment 'first-one' for future execution.\n"
                 "Queued experiment 'second-one' for future execution.\n", ""))
    assert sweep.queue(groups) == ["first-one", "second-one"]
    assert queued == [("exp", "run", "--queue", "-S", "++kd.method=dkd", "-S", "++kd.dkd.beta=4,8")]


def test_sweep_refuses_untracked_code_and_names_it(tmp_path):
    repo = copy_repo(tmp_path, {})
    for name in ("stages/new_stage.py", "distillery/new_module.py", "notes.txt", "distillery/__pycache__/x.pyc"):
        (repo / name).parent.mkdir(exist_ok=True)
        (repo / name).write_text("x = 1\n")
    result = run([*MAKE, "sweep", f"GRID={GRID}", "JOBS=2"], repo, check=False)
    assert result.returncode != 0
    assert "untracked files under the pipeline's code or params" in result.stderr
    assert "stages/new_stage.py" in result.stderr and "distillery/new_module.py" in result.stderr
    assert "notes.txt" not in result.stderr and "x.pyc" not in result.stderr  # not code / git-ignored
    assert run(["git", "for-each-ref", "refs/exps"], repo).stdout == ""  # nothing was queued


def _make_targets(makefile: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^([\w-]+):", makefile, re.MULTILINE)}


def test_pr_workflow_is_valid_yaml_and_calls_the_make_targets():
    workflow = yaml.safe_load((REPO / ".github/workflows/pr.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as True
    assert "pull_request" in triggers
    steps = workflow["jobs"]["diff"]["steps"]
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["fetch-depth"] == 0
    assert next(s for s in steps if "setup-python" in s.get("uses", ""))["with"]["python-version"] == "3.11"
    assert any(s.get("uses", "").startswith("iterative/setup-cml") for s in steps)
    commands = "\n".join(s.get("run", "") for s in steps)
    called = re.findall(r"\bmake ([\w-]+)", commands)
    assert called == ["setup", "pull", "repro", "diff", "push"]
    assert set(called) <= _make_targets((REPO / "Makefile").read_text())
    assert "OUTPUT=report.md" in commands and "cml comment create report.md" in commands


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A tiny repo (one seed) after `make sweep` of a 2-point grid with 2 queue workers."""
    repo = copy_repo(tmp_path_factory.mktemp("sweep"), deep_merge(TINY, {"train": {"seeds": [0]}}))
    result = run([*MAKE, "sweep", f"GRID={GRID}", "JOBS=2"], repo)
    (repo / "sweep.log").write_text(result.stdout + result.stderr)
    return repo


def _row_cells(report: str) -> list[list[str]]:
    lines = [line for line in report.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[1:]]


@pytest.mark.slow
def test_sweep_report_has_one_row_per_experiment_with_its_params_and_metrics(swept):
    rows = _row_cells((swept / "reports/sweep.md").read_text())
    assert len(rows) == 2
    assert {(r[1], float(r[2]), float(r[3])) for r in rows} == {("kd", 1, 0.5), ("kd", 2, 0.5)}
    for name, method, T, alpha, kd_validation, kd_acc, kd_ece, hard_acc, _, gain in rows:
        # the experiment's own commit, read from git: not the JSON the report was built from
        params = yaml.safe_load(run(["git", "show", f"refs/exps/{_ref(swept, name)}:params.yaml"], swept).stdout)
        metrics = json.loads(run(["git", "show", f"refs/exps/{_ref(swept, name)}:reports/metrics.json"], swept).stdout)
        assert (params["kd"]["T"], params["kd"]["alpha"]) == (float(T), float(alpha))
        assert kd_validation == (f"{metrics['kd']['validation_accuracy']:.4f} ± "
                                 f"{metrics['kd']['validation_accuracy_std']:.4f}")
        assert kd_acc == f"{metrics['kd']['accuracy']:.4f} ± {metrics['kd']['accuracy_std']:.4f}"
        assert kd_ece == f"{metrics['kd']['ece']:.4f} ± {metrics['kd']['ece_std']:.4f}"
        assert hard_acc.startswith(f"{metrics['hard']['accuracy']:.4f} ± ")
        assert gain == f"{metrics['kd']['accuracy'] - metrics['hard']['accuracy']:+.4f}"
    assert len({r[5] for r in rows}) > 1, "every experiment reported the same KD accuracy"
    for png in ("metrics_vs_T.png", "kd_minus_hard.png"):
        assert (swept / "reports/sweep" / png).stat().st_size > 10_000


def _ref(repo: Path, name: str) -> str:
    """The path under refs/exps of experiment ``name``."""
    refs = run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], repo).stdout.split()
    (ref,) = [r for r in refs if r.endswith(f"/{name}")]
    return ref.removeprefix("refs/exps/")


@pytest.mark.slow
def test_teacher_logits_and_hard_baseline_ran_once_for_the_whole_grid(swept):
    log = (swept / "sweep.log").read_text()
    assert log.count("Running stage 'teacher':") == 1  # the workspace repro before queueing
    names = [r[0] for r in _row_cells((swept / "reports/sweep.md").read_text())]
    for name in names:
        queue_log = run(["dvc", "queue", "logs", name], swept).stdout
        ran = stages_run(queue_log)
        assert ran == {"distill", "evaluate", "plots"}, (name, queue_log[-2000:])


@pytest.mark.slow
def test_diff_between_commits_with_other_kd_T_shows_changed_param_and_metric(swept, tmp_path):
    rows = _row_cells((swept / "reports/sweep.md").read_text())
    name = next(r[0] for r in rows if (float(r[2]), float(r[3])) == (2, 0.5))
    git_commit(swept, "baseline: kd.T = 4")
    run(["dvc", "exp", "apply", name], swept)
    git_commit(swept, "kd.T = 2")
    diff = run([*MAKE, "diff", "REV=HEAD~1", "PLOTS_DIR=plots_diff", "OUTPUT=report.md"], swept)
    assert diff.stdout == ""  # written to OUTPUT, nothing else printed
    report = (swept / "report.md").read_text()
    params_section = report.split("## Params")[1].split("## Changed plots")[0]
    assert re.search(r"\| params\.yaml\s*\| kd\.T\s*\| 4\.0\s*\| 2\s*\|", params_section), params_section
    assert "kd.alpha" not in params_section
    assert re.search(r"\*\*Distillation method:\*\* `kd`, T = 4\.0, alpha = 0\.5 \(`HEAD~1`\) → `kd`, T = 2\.0, "
                     r"alpha = 0\.5 \(this change\)", report), report[:300]  # params.yaml's 2 read as the float it is
    metrics_section = report.split("## Params")[0]
    assert re.search(r"\| reports/metrics\.json\s*\| kd\.nll\s*\|", metrics_section), metrics_section
    accuracy_rows = [line for line in metrics_section.splitlines() if "reports/metrics.json" in line]
    assert not [r for r in accuracy_rows if "| hard." in r or "| teacher." in r]  # unchanged: not listed
    images = re.findall(r"!\[[^]]*\]\(\./([^)]+)\)", report)
    assert "### reports/plots/training.png" in report
    training = [i for i in images if i.endswith("reports_plots_training.png")]
    assert [Path(i).name.split("_")[0] for i in training] == ["HEAD~1", "workspace"]
    assert all((swept / image).stat().st_size > 10_000 for image in images)
    printed = run([*MAKE, "diff", "REV=HEAD~1"], swept).stdout
    assert printed.strip() == report.split("## Changed plots")[0].strip() + (
        "\n\n(The changed plots: `make diff PLOTS_DIR=<folder>` renders them there, as the pull-request comment does.)")
    assert "Stale results" not in report and "Not committed" not in report
    paired = report.split("## Test predictions, paired: `HEAD~1` → this change")[1].split("## Params")[0]
    assert re.search(r"\| hard labels \| [0-9.]+ \(1 seed\) \| [0-9.]+ \(1 seed\) \| \+0\.0000 \| \+0\.0000 to \+0\.0000 "
                     r"\| same predictions on every row \|", paired), paired
    assert "| distilled |" in paired
    plots = report.split("## Changed plots")[1]  # the interactive ones: listed when their data changed, only then
    assert "### Training loss (seed 0)\n\nIts data changed" in plots and "### Confusion hard student" not in plots

    params = (swept / "params.yaml").read_text()
    (swept / "params.yaml").write_text(params.replace("T: 2", "T: 3"))  # edited, not reproduced
    stale = run([*MAKE, "diff", "REV=HEAD"], swept).stdout
    assert stale.startswith("**Stale results.** `dvc status` finds the stages `distill`, `plots` out of date "
                            "(changed: `params.yaml: kd`)"), stale[:400]
    (swept / "params.yaml").write_text(params)
    run(["dvc", "exp", "apply", next(r[0] for r in rows if (float(r[2]), float(r[3])) == (1, 0.5))], swept)
    uncommitted = run([*MAKE, "diff", "REV=HEAD"], swept).stdout  # another experiment's results, not committed
    assert uncommitted.startswith("**Not committed.** The workspace's results differ from the commit checked out in "), \
        uncommitted[:400]
    assert "`reports/metrics.json`" in uncommitted.split("\n")[0] and "Stale results" not in uncommitted



def test_wait_polls_until_every_experiment_finished(monkeypatch):
    from distillery.experiments import sweep

    polls = iter([{"a": "Queued", "b": "Running"}, {"a": "Running", "b": "Failed"},
                  {"a": "Success", "b": "Failed", "old": "Success"}])
    monkeypatch.setattr(sweep, "queue_status", lambda: next(polls))
    monkeypatch.setattr(sweep.time, "sleep", lambda s: None)
    assert sweep.wait(["a", "b"], poll_seconds=1) == {"a": "Success", "b": "Failed"}


def _shown(rows: list[tuple[str, float, float, float, float, str | None]], method: dict | None = None) -> list[dict]:
    """``dvc exp show --json`` (dvc 3.67 layout) for experiments (name, T, alpha, kd acc, hard acc, state);
    ``method``: experiment name -> kd.method (default: none in params.yaml, i.e. kd)."""
    def rev(name, T, alpha, kd, hard):
        student = lambda acc: {"accuracy": acc, "accuracy_std": 0.01, "ece": 0.1, "ece_std": 0.02,  # noqa: E731
                               "agreement": 0.9, "agreement_std": 0.03, "validation_accuracy": acc + 0.01,
                               "validation_accuracy_std": 0.005}
        kd_params = {"T": T, "alpha": alpha, **({"method": method[name]} if method else {})}
        comparison = {"kd_minus_hard_ci_low": kd - hard - 0.01, "kd_minus_hard_ci_high": kd - hard + 0.01}
        metrics = {"kd": student(kd), "hard": student(hard), "comparison": comparison}
        return {"rev": f"{name}-sha", "name": name, "error": None, "experiments": None,
                "data": {"rev": f"{name}-sha", "params": {"params.yaml": {"data": {"kd": kd_params}}},
                         "metrics": {"reports/metrics.json": {"data": metrics}}}}
    experiments = [{"name": n, "executor": None if state is None else {"state": state},
                    "revs": [rev(n, T, a, kd, hard) if state in (None, "success") else
                             {"rev": f"{n}-sha", "name": n, "error": None, "data": {"rev": f"{n}-sha"}}]}
                   for n, T, a, kd, hard, state in rows]
    return [{"rev": "workspace", "name": None, "data": {}, "error": None, "experiments": None},
            {"rev": "base-sha", "name": "main", "data": {}, "error": None, "experiments": experiments}]


def test_sweep_report_rows_come_from_exp_show_json(tmp_path, monkeypatch):
    from distillery.experiments import sweep_report

    shown = _shown([("b", 2, 0.5, 0.80, 0.75, "success"), ("a", 1, 0.5, 0.70, 0.75, None),
                    ("c", 4, 0.0, 0.75, 0.75, None), ("queued", 8, 0.5, 0, 0, "queued"),
                    ("broken", 8, 0.9, 0, 0, "failed")])
    baselines = []
    monkeypatch.setattr(sweep_report, "exp_show", lambda rev: baselines.append(rev) or shown)
    frame, _ = sweep_report.write_report(report=tmp_path / "sweep.md", plots=tmp_path / "sweep", rev="base-sha")
    assert baselines == ["base-sha"]  # the experiments of the sweep's baseline, even after new commits
    assert list(frame["name"]) == ["c", "a", "b"]  # by alpha, then T; queued and failed ones skipped
    assert frame["gain"].round(6).tolist() == [0.0, -0.05, 0.05]
    rows = _row_cells((tmp_path / "sweep.md").read_text())
    assert rows[2] == ["b", "kd", "2", "0.5", "0.8100 ± 0.0050", "0.8000 ± 0.0100", "0.1000 ± 0.0200",
                       "0.7500 ± 0.0100", "0.1000 ± 0.0200", "+0.0500"]  # validation first: what to choose by
    assert "**Best on validation:** `b` (`kd.method` = kd, `kd.T` = 2, `kd.alpha` = 0.5): distilled accuracy on " \
        "validation 0.8100 ± 0.0050; on test 0.8000 ± 0.0100, +0.0500 against the hard labels." \
        in (tmp_path / "sweep.md").read_text()
    assert "![accuracy and ECE vs T](sweep/metrics_vs_T.png)" in (tmp_path / "sweep.md").read_text()
    for png in ("metrics_vs_T.png", "kd_minus_hard.png"):
        assert (tmp_path / "sweep" / png).stat().st_size > 10_000
    only, _ = sweep_report.write_report(["a"], report=tmp_path / "one.md", plots=tmp_path / "one")
    assert list(only["name"]) == ["a"]


def test_other_methods_and_other_studies_params_do_not_pass_for_kd_s(tmp_path, monkeypatch):
    """A dkd point sat in the kd heatmap's cell at its T and α (dkd reads no kd.alpha), the table gave it an α, and
    a second tune study (its tune.space a list-valued param that varies) crashed the report (unhashable list)."""
    from distillery.experiments import sweep_report

    shown = _shown([("k1", 1, 0.5, 0.80, 0.75, None), ("k2", 8, 0.5, 0.82, 0.75, None),
                    ("d1", 4, 0.5, 0.70, 0.75, None)], method={"k1": "kd", "k2": "kd", "d1": "dkd"})
    for exp, space in zip(shown[1]["experiments"], ([1, 8], [1, 8], [2, 4])):
        params = exp["revs"][0]["data"]["params"]["params.yaml"]["data"]
        params.update({"tune": {"space": {"kd.T": space}}, "train": {"seeds": [0, 1] if space != [2, 4] else [0]}})
    monkeypatch.setattr(sweep_report, "exp_show", lambda rev: shown)
    monkeypatch.setattr(sweep_report, "distill_seconds", lambda name: 10.0)
    frame, _ = sweep_report.write_report(report=tmp_path / "sweep.md", plots=tmp_path / "sweep")
    rows = {row[0]: row for row in _row_cells((tmp_path / "sweep.md").read_text().split("## Methods")[0])}
    assert rows["d1"][:5] == ["d1", "dkd", "4", "—", "[0]"] and rows["k2"][:5] == ["k2", "kd", "8", "0.5", "[0, 1]"]
    assert "tune.space" not in (tmp_path / "sweep.md").read_text()  # the tuner's own params are no setting
    assert list(sweep_report.plain_kd(frame)["name"]) == ["k1", "k2"]  # the plots over T and α: kd's only
    assert (tmp_path / "sweep" / "kd_minus_hard.png").stat().st_size > 10_000


def test_the_report_says_what_the_workspace_changed_and_when_rows_have_their_own_test_rows(monkeypatch):
    import subprocess

    import pandas as pd

    from distillery.experiments import sweep_report

    committed = "kd:\n  T: 4.0\n  alpha: 0.5\ndata:\n  split_seed: 0\n"
    monkeypatch.setattr(sweep_report.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(
        cmd, 0 if cmd[:2] == ["git", "show"] and cmd[2] == "abc1234def:params.yaml" else 128, stdout=committed))
    frame = pd.DataFrame({"name": ["x", "y"], "baseline": ["abc1234def"] * 2, "param:kd.method": ["kd"] * 2,
                          "param:kd.T": [1.0, 4.0], "param:kd.alpha": [0.9, 0.9], "param:data.split_seed": [0, 0],
                          "param:train.max_steps": [300, 300]})
    assert sweep_report.setting_notes(frame) == [
        "Every experiment also differs from the params.yaml of commit abc1234 (changes in the workspace when they "
        "were queued): `kd.alpha` = 0.9 (0.5 there), `train.max_steps` = 300 (absent there).", ""]
    frame["param:data.split_seed"] = [0, 1]
    frame["param:kd.alpha"] = [0.5, 0.5]
    assert sweep_report.setting_notes(frame)[0].startswith(
        "Every experiment also differs from the params.yaml of commit abc1234 (changes in the workspace when they "
        "were queued): `train.max_steps` = 300")
    assert sweep_report.setting_notes(frame)[-2:] == [
        "The experiments differ in `data.split_seed`, so each is scored on its own test rows: compare the distilled "
        "and hard students within a row (the last column), not the accuracies of different rows.", ""]
    frame["baseline"] = ["gone"] * 2  # no such commit: only what the rows themselves say
    assert len(sweep_report.setting_notes(frame)) == 2


def test_methods_sweep_gets_a_methods_table_with_intervals_and_relative_time(tmp_path, monkeypatch):
    from distillery.experiments import sweep_report

    shown = _shown([("e1", 4, 0.5, 0.80, 0.75, None), ("e2", 4, 0.5, 0.78, 0.75, None),
                    ("e3", 4, 0.5, 0.70, 0.75, None)], method={"e1": "kd", "e2": "dkd", "e3": "fitnet"})
    monkeypatch.setattr(sweep_report, "exp_show", lambda rev: shown)
    monkeypatch.setattr(sweep_report, "distill_seconds", {"e1": 10.0, "e2": 11.0, "e3": 25.0}.get)
    frame, _ = sweep_report.write_report(report=tmp_path / "sweep.md", plots=tmp_path / "sweep")
    assert list(frame["param:kd.method"]) == ["dkd", "fitnet", "kd"]
    text = (tmp_path / "sweep.md").read_text()
    methods = _row_cells(text.split("## Methods")[1])  # best on validation first
    assert [row[0] for row in methods] == ["`kd`", "`dkd`", "`fitnet`"]
    assert methods[1] == ["`dkd`", "0.7900 ± 0.0050", "0.7800 ± 0.0100", "+3.00 (+2.00 to +4.00)",
                          "0.1000 ± 0.0200", "0.9000 ± 0.0300", "11.0", "1.10×"]
    assert methods[0][-2:] == ["10.0", "1.00×"] and methods[2][-2:] == ["25.0", "2.50×"]
    assert "No distill time" not in text
    assert "![methods](sweep/methods.png)" in text and "metrics_vs_T" not in text  # T did not vary
    assert (tmp_path / "sweep" / "methods.png").stat().st_size > 10_000


def test_an_experiment_that_ran_no_distill_has_no_time_and_the_report_says_why(tmp_path, monkeypatch):
    """The sweep's point equal to the workspace's params (often `kd`) runs no stage: its log has no distill time."""
    from distillery.experiments import sweep_report

    shown = _shown([("e1", 4, 0.5, 0.80, 0.75, None), ("e2", 4, 0.5, 0.78, 0.75, None)],
                   method={"e1": "kd", "e2": "dkd"})
    monkeypatch.setattr(sweep_report, "exp_show", lambda rev: shown)
    monkeypatch.setattr(sweep_report, "distill_seconds", {"e2": 11.0}.get)
    sweep_report.write_report(report=tmp_path / "sweep.md", plots=tmp_path / "sweep")
    methods = (tmp_path / "sweep.md").read_text().split("## Methods")[1]
    assert [row[-2:] for row in _row_cells(methods)] == [["—", "—"], ["11.0", "—"]]  # kd, then dkd: by validation
    assert "No distill time for `e1`: its `dvc queue logs` holds no distill run." in methods
    assert "With no `kd` time, no time is relative to `kd`: compare the seconds." in methods


def test_a_language_model_sweep_gets_perplexities_and_the_nll_interval(tmp_path, monkeypatch):
    from distillery.experiments import sweep_report

    def student(test, validation):
        return {"perplexity": test, "perplexity_std": 0.5, "validation_perplexity": validation,
                "validation_perplexity_std": 0.25, "teacher_agreement": 0.6, "teacher_agreement_std": 0.01}

    shown = _shown([("e1", 1, 0.5, 0, 0, None), ("e2", 1, 0.5, 0, 0, None)], method={"e1": "kd", "e2": "seqkd"})
    for exp, kd_ppl in zip(shown[1]["experiments"], (30.0, 32.0)):
        metrics = exp["revs"][0]["data"]["metrics"]["reports/metrics.json"]
        metrics["data"] = {"kd": student(kd_ppl, kd_ppl - 2), "hard": student(34.0, 33.0),
                           "comparison": {"kd_minus_hard_nll": -0.05, "kd_minus_hard_nll_ci_low": -0.07,
                                          "kd_minus_hard_nll_ci_high": -0.03, "gap_closure": 0.4}}
    monkeypatch.setattr(sweep_report, "exp_show", lambda rev: shown)
    monkeypatch.setattr(sweep_report, "distill_seconds", {"e1": 10.0, "e2": 15.0}.get)
    frame, _ = sweep_report.write_report(report=tmp_path / "sweep.md", plots=tmp_path / "sweep")
    assert sweep_report.is_language_model(frame)
    rows = _row_cells((tmp_path / "sweep.md").read_text())
    assert rows[0] == ["e1", "kd", "1", "0.5", "28.000 ± 0.250", "30.000 ± 0.500", "34.000 ± 0.500",
                       "-0.0500 (-0.0700 to -0.0300)", "0.40", "0.6000 ± 0.0100", "10.0", "1.00×"]
    assert rows[1][1] == "seqkd" and rows[1][-2:] == ["15.0", "1.50×"]
    report = (tmp_path / "sweep.md").read_text()
    assert "accuracy" not in report and "ROUGE-L" not in report
    metrics = shown[1]["experiments"][1]["revs"][0]["data"]["metrics"]["reports/metrics.json"]["data"]
    metrics["kd"].update(rouge_l=0.8125, rouge_l_std=0.01)  # e2: prompts and responses, answers scored
    metrics["comparison"].update(kd_minus_hard_rouge_l=0.03, kd_minus_hard_rouge_l_ci_low=0.01,
                                 kd_minus_hard_rouge_l_ci_high=0.05)
    sweep_report.write_report(report=tmp_path / "sweep.md", plots=tmp_path / "sweep")
    rows = _row_cells((tmp_path / "sweep.md").read_text())
    assert rows[0][-4:-2] == ["—", "—"] and rows[1][-4:-2] == ["0.8125 ± 0.0100", "+0.0300 (+0.0100 to +0.0500)"]


def test_distill_seconds_come_from_the_experiment_queue_log(monkeypatch):
    import subprocess
    from types import SimpleNamespace

    from distillery.experiments import sweep_report

    logs = {"a": "Running stage 'distill':\n{'train_runtime': '1.0'}\ndistill: the students trained in 12.50 s\n",
            "b": "Running stage 'distill':\nerror: kd.T = 0: must be > 0\n",
            "c": "distill: the students trained in nan s\n"}
    commands = []

    def fake_run(cmd, **kwargs):
        commands.append(cmd)
        return SimpleNamespace(stdout=logs[cmd[-1]], returncode=0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    assert [sweep_report.distill_seconds(n) for n in "abc"] == [12.5, None, None]
    assert commands[0] == ["dvc", "queue", "logs", "a"]


def test_wait_stops_when_an_experiment_left_the_idle_queue(monkeypatch):
    from distillery.experiments import sweep

    monkeypatch.setattr(sweep, "queue_status", lambda: {"a": "Success"})
    assert sweep.wait(["a", "b"], poll_seconds=1) == {"a": "Success", "b": "Missing"}


def test_an_interrupted_sweep_kills_its_running_experiments_and_unqueues_the_rest(tmp_path, monkeypatch, capsys):
    import subprocess

    from distillery.experiments import sweep

    (tmp_path / "params.yaml").write_text("{}\n")
    monkeypatch.chdir(tmp_path)
    calls = []
    states = {"a": "Success", "b": "Running", "c": "Queued", "other": "Running"}
    monkeypatch.setattr(sweep, "queue_status", lambda: states)
    monkeypatch.setattr(sweep, "dvc", lambda *args, check=True: calls.append(args) or
                        subprocess.CompletedProcess(args, 0, stdout="", stderr=""))
    monkeypatch.setattr(sweep, "refuse_untracked", lambda: None)
    monkeypatch.setattr(sweep, "refuse_a_busy_queue", lambda: None)
    monkeypatch.setattr(sweep, "check_grid", lambda groups, path: [{}, {}, {}])
    monkeypatch.setattr(sweep, "refuse_data_a_copy_lacks", lambda *args: None)
    monkeypatch.setattr(sweep.subprocess, "run", lambda *args, **kwargs: subprocess.CompletedProcess(args, 0, ""))
    monkeypatch.setattr(sweep, "queue", lambda groups: ["a", "b", "c"])
    monkeypatch.setattr(sweep, "start_workers", lambda jobs: None)

    def interrupted(names, poll_seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep, "wait", interrupted)
    with pytest.raises(SystemExit) as exit_:
        sweep.main(["--grid", "kd.T=1,2,4"])
    assert exit_.value.code == 130
    assert calls == [("queue", "kill", "b"), ("queue", "remove", "c")]  # not another sweep's "other"
    assert ("sweep: interrupted: 1 running experiment(s) killed: b; 1 queued one(s) removed: c; those finished "
            "stay in `dvc exp show`") in capsys.readouterr().err


def test_a_sweep_refuses_a_queue_holding_other_experiments(monkeypatch):
    from distillery.experiments import sweep

    monkeypatch.setattr(sweep, "queue_status", lambda: {"old": "Success", "kinky-hobo": "Queued", "x": "Running"})
    with pytest.raises(DistilleryError, match=re.escape("DVC's queue already holds kinky-hobo, x (queued or running")):
        sweep.refuse_a_busy_queue()
    monkeypatch.setattr(sweep, "queue_status", lambda: {"old": "Success", "bad": "Failed"})
    sweep.refuse_a_busy_queue()  # finished ones are no matter


def test_failed_experiments_are_named_with_their_queue_logs(monkeypatch, capsys):
    import subprocess

    from distillery.experiments import sweep

    calls = []

    def fake_dvc(*args, check=True):
        calls.append(args)
        return subprocess.CompletedProcess(args, 0, stdout=f"log of {args[-1]}: error: kd.T = 0\n", stderr="")

    monkeypatch.setattr(sweep, "dvc", fake_dvc)
    failed = sweep.report_failures({"ok-exp": "Success", "bad-exp": "Failed", "gone-exp": "Missing"})
    assert failed == ["bad-exp", "gone-exp"]
    assert calls == [("queue", "logs", "bad-exp"), ("queue", "logs", "gone-exp")]
    err = capsys.readouterr().err
    assert "experiment bad-exp: Failed" in err and "log of bad-exp: error: kd.T = 0" in err
    assert "2 of 3 experiments failed: bad-exp, gone-exp" in err


def test_an_experiment_without_metrics_is_named_missing_and_the_sweep_fails(tmp_path, monkeypatch, capsys):
    """Seen on a loaded machine: the queue said Success for 4 experiments, `dvc exp show` returned 3 with metrics,
    and the sweep exited 0 with a 3-row report. Now the report lists all 4, names the missing one with what DVC
    says, and the sweep exits 1."""
    import subprocess

    from distillery.experiments import sweep, sweep_report

    shown = _shown([("e1", 1, 0.5, 0.70, 0.75, None), ("e2", 2, 0.5, 0.80, 0.75, None),
                    ("e3", 4, 0.5, 0.75, 0.75, None), ("e5", 4, 0.9, 0, 0, "failed")])
    monkeypatch.setattr(sweep_report, "exp_show", lambda rev: shown)
    frame, missing = sweep_report.write_report(["e1", "e2", "e3", "e4", "e5"], report=tmp_path / "sweep.md",
                                               plots=tmp_path / "sweep", rev="base-sha",
                                               queue_states={"e4": "Success", "e5": "Success"})
    assert sorted(frame["name"]) == ["e1", "e2", "e3"]
    assert missing == {"e4": "`dvc exp show --json` does not list it on this baseline; `dvc queue status`: Success",
                       "e5": "`dvc exp show` lists it as failed; `dvc queue status`: Success"}
    text = (tmp_path / "sweep.md").read_text()
    assert "5 experiments queued, 3 with metrics, **2 missing**." in text
    assert "- `e4`: `dvc exp show --json` does not list it on this baseline" in text

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sweep, "run_sweep", lambda grid, jobs, poll: ("base-sha", {n: "Success" for n in
                                                                                  ("e1", "e2", "e3", "e4")}))
    monkeypatch.setattr(sweep, "dvc", lambda *args, check=True: subprocess.CompletedProcess(args, 0, "", ""))
    with pytest.raises(SystemExit) as exit_:
        sweep.main(["--grid", "kd.T=1,2,4,8"])
    assert exit_.value.code == 1
    assert "sweep: experiment e4 finished but has no metrics: `dvc exp show --json` does not list it" in \
        capsys.readouterr().err
    assert "4 experiments queued, 3 with metrics, **1 missing**." in (tmp_path / "reports/sweep.md").read_text()


def test_a_grid_over_data_with_data_a_queued_copy_lacks_is_refused(tmp_path):
    from distillery.experiments.sweep import refuse_data_a_copy_lacks, with_point

    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    data = {"source": "files", "files": {"train": "../shared/train.tsv", "validation": "data/validation.tsv"},
            "transfer": {"augment": 1}}
    with pytest.raises(DistilleryError, match=r"data.transfer.augment re-runs prepare, and data.files.train = "
                                              r"'../shared/train.tsv' lies outside the repo"):
        refuse_data_a_copy_lacks(["data.transfer.augment"], [data], repo)
    refuse_data_a_copy_lacks([], [data], repo)  # kd.T only: prepare does not re-run
    refuse_data_a_copy_lacks(["data.split_seed"], [{"source": f"file:{tmp_path / 'all.csv'}"}], repo)  # absolute

    (repo / "wine.csv").write_text("id,label\n")  # in the repo, but untracked: not in a queued copy
    point = {"data.source": "file:wine.csv", "data.scaling": "minmax"}
    assert with_point({"source": "sklearn:digits", "scaling": "auto"}, point) == {"source": "file:wine.csv",
                                                                                   "scaling": "minmax"}
    with pytest.raises(DistilleryError, match=r"data.scaling, data.source re-runs prepare, and data.source = "
                                              r"'wine.csv' is tracked by neither git nor DVC: .*`dvc add wine.csv`"):
        refuse_data_a_copy_lacks(["data.scaling", "data.source"], [with_point({}, point)], repo)
    subprocess.run(["git", "add", "wine.csv"], cwd=repo, check=True)
    refuse_data_a_copy_lacks(["data.scaling"], [with_point({}, point)], repo)
    (repo / "data" / "big.csv").write_text("id,label\n")
    (repo / "data.dvc").write_text("outs:\n- path: data\n")  # DVC tracks the folder above it
    refuse_data_a_copy_lacks(["data.scaling"], [{"source": "file:data/big.csv"}], repo)
