"""End to end: `dvc repro` in a fresh copy of the repo, incremental `dvc exp run`, determinism, bad params."""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from distillery.numerics import LEVELS

from ..conftest import TINY, deep_merge
from ..repo_utils import ENV, copy_repo, dvc_status, reproduced, run, stages_run

pytestmark = pytest.mark.slow  # end to end: dvc repro / subprocesses (make test-fast skips it)

STUDENT_KEYS = {"accuracy", "accuracy_std", "macro_f1", "nll", "ece", "ece_std", "agreement", "params"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A tiny-budget copy of the repo after one `dvc repro`."""
    return reproduced(copy_repo(tmp_path_factory.mktemp("repo"), TINY))


def test_repro_writes_metrics_schema_and_plots(repo):
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert set(metrics) == {"teacher", "kd", "hard", "comparison"}
    assert {"accuracy", "macro_f1", "nll", "ece", "params", "temperature", "roc_auc_macro"} <= set(metrics["teacher"])
    for kind in ("kd", "hard"):
        assert STUDENT_KEYS <= set(metrics[kind]), kind
        assert metrics[kind]["params"] < metrics["teacher"]["params"]
        assert 0.1 < metrics[kind]["accuracy"] <= 1
    assert metrics["teacher"]["accuracy"] > 0.8
    report = (repo / "reports/report.md").read_text()  # train.select: best, each student's step named
    assert "| student checkpoint | `train.select: best`" in report and "distilled: steps " in report
    assert (repo / "reports/training/hard/seed_0/selection.json").exists()
    assert {"kd_minus_hard_ci_low", "mcnemar_p_seed0", "mcnemar_p_seed1", "compression_params"} <= set(
        metrics["comparison"]
    )
    speed = json.loads((repo / "reports/timings/speed.json").read_text())  # timings: git-ignored, no DVC output
    assert speed["student"]["latency_ms"] > 0 and speed["speedup_throughput"] > 0
    assert json.loads((repo / "reports/timings/training/kd/seed_0.json").read_text())["40"]["train_runtime"] > 0
    for png in ("confusion.png", "reliability.png", "training.png", "roc.png", "scatter.png", "confidence.png",
                "examples.png"):
        assert (repo / "reports/plots" / png).stat().st_size > 10_000
        assert f"](plots/{png})" in (repo / "reports/report.md").read_text()
    predictions = (repo / "reports/eval/predictions.csv").read_text().splitlines()
    assert predictions[0].split(",")[:3] == ["id", "label", "teacher"]
    assert len(predictions) == 1 + 360
    # dvc understands the metrics and plots sections
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    assert json.dumps(shown).count('"accuracy_std"') == 2  # kd and hard
    assert "speedup_latency" not in json.dumps(shown)  # timings are no metrics: they would dirty git on every run
    columns = run(["dvc", "exp", "show", "--csv"], repo).stdout.splitlines()[0].split(",")
    shown_first = [c for c in columns if c not in {"Experiment", "rev", "typ", "Created", "parent", "State", "Executor"}]
    assert shown_first[:8] == ["validation_accuracy.kd", "validation_accuracy.hard", "validation_accuracy.teacher",
                               "accuracy.kd", "accuracy.hard", "accuracy.teacher", "kd_minus_hard", "ece.kd"]
    plots = json.loads(run(["dvc", "plots", "show", "--json"], repo).stdout)["data"]
    assert {"Confusion teacher", "Reliability after temperature scaling", "Validation accuracy (seed 0)"} <= set(plots)
    assert all(p[0]["content"]["data"]["values"] for p in plots.values() if p[0]["type"] == "vega")


def test_logits_are_raw_and_keyed_by_id(repo):
    import numpy as np
    import pyarrow.parquet as pq

    table = pq.read_table(repo / "data/teacher_logits/test.parquet")
    assert table.column_names == ["id", "logits"]
    logits = np.stack(table.column("logits").to_numpy(zero_copy_only=False))
    assert logits.shape == (360, 10)
    assert not np.allclose(logits.sum(axis=1), 1.0)  # not probabilities
    assert (logits < 0).any()  # not probabilities either


def test_predict_on_the_source_rows_gives_evaluates_logits_bit_for_bit(repo, tmp_path):
    """The teacher and a student, each from its folder alone (weights, config, inputs.json), on the raw test images
    (sklearn's 0..16 pixels, keyed by their ids), under the project's numerics: evaluate's test logits exactly."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_digits

    from distillery.io import read_logits

    ids = pd.read_parquet(repo / "data/eval_logits/teacher.parquet")["id"].to_numpy()
    np.savez(tmp_path / "test.npz", images=load_digits().images[ids], id=ids)
    for model, logits in (("models/teacher", "teacher"), ("models/students/kd/seed_1", "kd_seed1")):
        run(["python", "-m", "distillery.predict", model, str(tmp_path / "test.npz"), str(tmp_path / "p.parquet"),
             "--scores", "logits"], repo)
        out = pd.read_parquet(tmp_path / "p.parquet")
        assert out["id"].tolist() == ids.tolist()
        got = out[[f"logit_{k}" for k in range(10)]].to_numpy()
        np.testing.assert_array_equal(got, read_logits(repo / f"data/eval_logits/{logits}.parquet", ids), model)


def test_export_hands_over_the_seed_best_on_validation_with_its_model_card(repo, tmp_path):
    """make export: the seed of the highest validation accuracy (ties: the lower seed, by hand from each
    selection.json), its files byte for byte, and a card and record whose test scores are the ones computed here
    from evaluate's predictions; refused while the workspace is not what its params make, and inside models/."""
    import pandas as pd

    from ..repo_utils import MAKE

    selections = {int(p.parent.name.split("_")[1]): json.loads(p.read_text())["validation_accuracy"]
                  for p in (repo / "reports/training/kd").glob("seed_*/selection.json")}
    best = max(sorted(selections), key=selections.get)
    result = run([*MAKE, "export"], repo)
    assert f"models/students/kd/seed_{best} (validation)" in result.stdout
    out, student = repo / "export/kd", repo / f"models/students/kd/seed_{best}"
    assert {f.name for f in student.iterdir()} | {"README.md", "distillation.json"} == {f.name for f in out.iterdir()}
    assert all((out / f.name).read_bytes() == f.read_bytes() for f in student.iterdir())
    predictions = pd.read_csv(repo / "reports/eval/predictions.csv")
    accuracy = (predictions[f"kd_seed{best}"] == predictions["label"]).mean()
    record = json.loads((out / "distillation.json").read_text())
    assert (record["kind"], record["seed"], record["chosen"]) == ("kd", best, "validation")
    assert record["test"]["accuracy"] == accuracy and record["test"]["rows"] == len(predictions)
    commit = run(["git", "rev-parse", "HEAD"], repo).stdout.strip()
    assert (record["commit"], record["params_changed"], record["files_changed"]) == (commit, {}, [])
    assert record["metrics"] == json.loads((repo / "reports/metrics.json").read_text())
    assert record["params"]["kd"]["T"] == yaml.safe_load((repo / "params.yaml").read_text())["kd"]["T"]
    card = (out / "README.md").read_text()
    assert card.startswith("---\ntags:\n- knowledge-distillation\n")  # no library: the MLP class is the pipeline's
    assert f"It is seed {best} of the 2 trained (0, 1), the one with the best validation accuracy" in card
    assert f"| accuracy | {accuracy:.4f} |" in card and "## How it was made" in card and "](../" not in card
    assert record["students_md5"] in card and "images.npy" in card
    assert f"`git checkout {commit[:12]} && make repro` trains `models/students/kd/seed_{best}`" in card
    assert "export/" not in run(["git", "status", "--porcelain"], repo).stdout  # git ignores it

    hard = run(["python", "-m", "distillery.export", "export/hard", "--kind", "hard", "--seed", "0"], repo)
    assert "models/students/hard/seed_0 (by hand)" in hard.stdout
    assert "The hard-label baseline" in (repo / "export/hard/README.md").read_text()
    for args, message in ((["models/kd"], "models/kd: inside models/, which DVC manages"),
                          (["export/kd", "--seed", "7"], "--seed 7: not among the trained seeds [0, 1]")):
        refused = run(["python", "-m", "distillery.export", *args], repo, check=False)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
    (out / "notes.txt").write_text("mine")
    refused = run(["python", "-m", "distillery.export", "export/kd"], repo, check=False)
    assert "export/kd: an earlier export, with files it did not write (notes.txt)" in refused.stderr
    (out / "notes.txt").unlink()
    params = (repo / "params.yaml").read_text()
    (repo / "params.yaml").write_text(params.replace("  T: ", "  T: 3.5 #", 1))
    try:
        refused = run(["python", "-m", "distillery.export", "export/kd"], repo, check=False)
    finally:
        (repo / "params.yaml").write_text(params)
    assert refused.returncode == 2 and "run `dvc repro` first" in refused.stderr, refused.stderr
    assert "(dvc status: distill" in refused.stderr and "hard_baseline" not in refused.stderr
    assert record == json.loads((out / "distillation.json").read_text())  # the earlier export left as it was


@pytest.mark.parametrize("module, stages", [
    ("distillery/evaluation/metrics.py", {"evaluate", "plots"}),   # an evaluation module: evaluate and plots only
    ("distillery/data/text.py", {"prepare", "transfer"}),          # a data source: prepare (and the transfer set's
])                                                                 # build), then what their outputs feed
def test_editing_a_module_reruns_only_the_stages_that_run_it(repo, module, stages):
    path = repo / module
    source = path.read_text()
    path.write_text(source + "\n# edited\n")
    try:
        changed = dvc_status(repo)
    finally:
        path.write_text(source)
    assert set(changed) == stages, changed
    assert dvc_status(repo) == {}


def test_changing_kd_temperature_reruns_only_distill_evaluate_plots(repo):
    before = json.loads((repo / "reports/metrics.json").read_text())
    result = run(["dvc", "exp", "run", "-S", "kd.T=2", "-S", "kd.alpha=0.9"], repo)
    ran = stages_run(result.stdout)
    assert ran == {"distill", "evaluate", "plots"}, result.stdout
    after = json.loads((repo / "reports/metrics.json").read_text())
    assert after["teacher"] == before["teacher"]
    assert after["hard"] == before["hard"]
    assert after["kd"]["accuracy"] != before["kd"]["accuracy"] or after["kd"]["nll"] != before["kd"]["nll"]
    diff = run(["dvc", "metrics", "diff", "--md"], repo).stdout
    assert "kd.nll" in diff


def test_another_method_with_its_own_param_reruns_only_distill_evaluate_plots(repo):
    """`dvc exp run -S kd.method=fitnet -S ++kd.fitnet.weight=0.5`: a method with a live teacher, features and a
    trainable regressor, and a param that params.yaml did not have; the report and curves name its terms."""
    before = json.loads((repo / "reports/metrics.json").read_text())
    result = run(["dvc", "exp", "run", "-S", "kd.method=fitnet", "-S", "++kd.fitnet.weight=0.5"], repo)
    ran = stages_run(result.stdout)
    assert ran == {"distill", "evaluate", "plots"}, result.stdout
    after = json.loads((repo / "reports/metrics.json").read_text())
    assert after["teacher"] == before["teacher"] and after["hard"] == before["hard"]
    assert after["kd"]["accuracy"] != before["kd"]["accuracy"] or after["kd"]["nll"] != before["kd"]["nll"]
    assert yaml.safe_load((repo / "params.yaml").read_text())["kd"]["fitnet"] == {"weight": 0.5}
    report = (repo / "reports/report.md").read_text()
    assert "student_layer = -1, teacher_layer = -1, weight = 0.5, hint_steps = 0 (Romero" in report
    assert "| distilled: fitnet (2 seeds) |" in report
    assert (repo / "reports/training/kd/seed_0/plots/metrics/hint.tsv").exists()


def test_each_extra_teacher_is_its_own_stage_and_adding_one_trains_only_it(repo):
    """multi_teacher: `teachers.<name>` entries become `extra_teacher@<name>` stages; adding a second one trains
    and scores only that one; the report shows every teacher and the ensembles."""
    def ran(result):
        return stages_run(result.stdout)

    first = run(["dvc", "exp", "run", "-S", "kd.method=multi_teacher", "-S", "++teachers.wide.seed=1",
                 "-S", "++teachers.wide.model.hidden_sizes=[48]"], repo)
    assert ran(first) == {"extra_teacher@wide", "extra_teacher_logits@wide", "distill", "evaluate", "plots"}
    second = run(["dvc", "exp", "run", "-S", "++teachers.deep.seed=2"], repo)
    assert ran(second) == {"extra_teacher@deep", "extra_teacher_logits@deep", "distill", "evaluate", "plots"}
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert set(metrics["teachers"]) == {"wide", "deep", "ensemble_mean", "ensemble_geometric", "ensemble_accuracy"}
    assert all(0.5 < block["accuracy"] <= 1 for block in metrics["teachers"].values())
    report = (repo / "reports/report.md").read_text()
    assert "| teachers.wide |" in report and "| ensemble of all teachers, geometric |" in report
    assert (repo / "data/teachers/deep/train.parquet").exists() and (repo / "models/teachers/wide").is_dir()


def output_hashes(repo: Path) -> dict:
    """The md5 of every stage output in dvc.lock (training curves and the report included: no timings in them)."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}


@pytest.mark.parametrize(
    "stage, override, message",
    [
        ("distill", {"kd": {"T": 0}}, "kd.T = 0: must be > 0"),  # every bad value's message: tests/test_params.py
        ("prepare", {"data": {"source": "imagenet:full"}}, "data.source = 'imagenet:full': unknown data source"),
    ],
)
def test_bad_param_stops_stage_with_clear_error(repo, tmp_path, stage, override, message):
    params_path = repo / "params.yaml"
    original = params_path.read_text()
    outputs = {"distill": repo / "models/students/kd", "prepare": repo / "data/prepared"}[stage]
    stamp = sorted((p.name, p.stat().st_mtime_ns) for p in outputs.rglob("*"))
    try:
        params_path.write_text(yaml.safe_dump(deep_merge(yaml.safe_load(original), override)))
        result = run([sys.executable, f"stages/{stage}.py"], repo, check=False)
    finally:
        params_path.write_text(original)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted((p.name, p.stat().st_mtime_ns) for p in outputs.rglob("*")) == stamp, "outputs were touched"


def test_teacher_checkpoint_with_other_label_count_is_refused(repo, tmp_path):
    from distillery.models.zoo import build_model

    build_model({"arch": "mlp", "hidden_sizes": [4]}, [8, 8], ["a", "b", "c"]).save_pretrained(tmp_path / "t3")
    params_path = repo / "params.yaml"
    original = params_path.read_text()
    try:
        override = {"teacher": {"checkpoint": str(tmp_path / "t3")}}
        params_path.write_text(yaml.safe_dump(deep_merge(yaml.safe_load(original), override)))
        result = run([sys.executable, "stages/teacher.py"], repo, check=False)
    finally:
        params_path.write_text(original)
    assert result.returncode == 2
    assert "the model has 3 labels but the data has 10" in result.stderr
    assert "teacher.checkpoint" in result.stderr


# Another CPU, simulated here by capping each library's instruction set through its own environment variable
# (what it reads to pick its code path). AVX2_ONLY is a CPU like most laptops and CI runners; NO_AVX2 an older one.
AVX2_ONLY = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR", "OPENBLAS_CORETYPE": "Haswell"}
NO_AVX2 = {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41",
           "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR", "OPENBLAS_CORETYPE": "Prescott"}


def on_cpu(cpu: dict) -> dict:
    """The tests' environment as on that CPU."""
    return {**{k: v for k, v in ENV.items() if k not in {*AVX2_ONLY, *LEVELS["avx2"]}}, **cpu}


def student_hashes(repo: Path) -> dict:
    """md5 of every student's weights."""
    import hashlib

    return {str(p.relative_to(repo)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted((repo / "models/students").rglob("*.safetensors"))}


def test_same_params_give_the_same_bits_here_and_on_another_cpu(repo):
    """Every stage run again (`--force`, no run cache, no kept students) as on an AVX2-only CPU gives byte-identical
    metrics, students and every other output: `reproducible_cpu: avx2` (the default) pins the kernels. On a CPU
    without AVX-512 both runs take the same paths, and this is the plain same-params, same-bits check."""
    first, hashes, students = (repo / "reports/metrics.json").read_bytes(), output_hashes(repo), student_hashes(repo)
    shutil.rmtree(repo / ".cache/checkpoints", ignore_errors=True)  # the students are trained again too
    result = run(["dvc", "repro", "--force", "--no-run-cache"], repo, env=on_cpu(AVX2_ONLY))
    stages = run(["dvc", "stage", "list", "--name-only"], repo).stdout.split()  # extra teachers' stages too
    assert len(stages) >= 10 and result.stdout.count("Running stage") == len(stages), result.stdout
    assert (repo / "reports/metrics.json").read_bytes() == first
    assert student_hashes(repo) == students and output_hashes(repo) == hashes  # data, teacher, logits, eval too
    record = json.loads((repo / "reports/eval/numerics.json").read_text())
    assert record["torch_cpu_capability"] == "AVX2" and record["environment"]["MKL_CBWR"] == "COMPATIBLE"


def test_a_third_seed_trains_only_its_own_students(repo):
    """`dvc exp run -S train.seeds=[0,1,2]` after seeds 0 and 1: distill and hard_baseline run again and train seed 2
    alone; seeds 0 and 1 come back from the runs the stages kept, byte for byte."""
    before = student_hashes(repo)
    result = run(["dvc", "exp", "run", "-S", "train.seeds=[0,1,2]"], repo)
    ran = stages_run(result.stdout)
    assert ran == {"distill", "hard_baseline", "evaluate", "plots"}, result.stdout
    log = result.stdout + result.stderr
    assert log.count("trained before with the same params") == 4, log  # kd and hard, seeds 0 and 1
    after = student_hashes(repo)
    assert {path: md5 for path, md5 in after.items() if "seed_2" not in path} == before
    assert len(after) == len(before) + 2


def test_native_numerics_give_other_bits_on_another_cpu(tmp_path):
    """The problem the pinning solves: with `reproducible_cpu: native` the same students trained on this CPU and on
    one without AVX2 (torch's default kernels, MKL's and oneDNN's SSE paths) end with other weights (the hard-label
    students: their stage needs no teacher)."""
    native = copy_repo(tmp_path, deep_merge(TINY, {"reproducible_cpu": "native", "train": {"seeds": [0]}}))
    run(["dvc", "repro", "hard_baseline"], native, env=on_cpu({}))  # this CPU, nothing capped or pinned
    here = student_hashes(native)
    run(["dvc", "repro", "--force", "--no-run-cache", "hard_baseline"], native, env=on_cpu(NO_AVX2))
    assert student_hashes(native).keys() == here.keys() == {"models/students/hard/seed_0/model.safetensors"}
    assert student_hashes(native) != here
    numerics = json.loads((native / "reports/training/hard/numerics.json").read_text())
    assert numerics["torch_cpu_capability"] == "DEFAULT"
