"""End to end for language models: `dvc repro` of a tiny corpus (a byte-level BPE trained in prepare, a GPT-2 style
teacher and a smaller student built from configs), then a KD change that re-runs no teacher stage."""
from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest

from ..repo_utils import copy_repo, git_commit, reproduced, run, stages_run
from ..text_utils import sentences

pytestmark = pytest.mark.slow  # end to end: dvc repro / subprocesses (make test-fast skips it)


def lm_params(corpus) -> dict:
    gpt2 = {"model_type": "gpt2", "n_layer": 1, "n_head": 2}
    return {
        "task": "causal_lm",
        "data": {"source": f"file:{corpus}", "text_column": "sentence", "validation_fraction": 0.2,
                 "test_fraction": 0.2, "vocab_size": 300, "max_length": 12},
        "teacher": {
            "model": {"arch": "hf", "config": {**gpt2, "n_embd": 32}},
            "train": {"learning_rate": 0.01, "batch_size": 16, "max_steps": 30, "eval_steps": 10,
                      "logging_steps": 10, "early_stopping_patience": 3},
            "inference_batch_size": 16,
            "logits_top_k": 5,
        },
        "student": {"model": {"arch": "hf", "config": {**gpt2, "n_embd": 16}}},
        "train": {"seeds": [0, 1], "learning_rate": 0.01, "batch_size": 16, "max_steps": 20, "eval_steps": 10,
                  "logging_steps": 10, "save_steps": 10},
        "kd": {"alpha": 0.5},
        "evaluate": {"batch_size": 16, "bootstrap_samples": 200, "timing_repeats": 2, "timing_warmup": 1},
    }


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    assets = tmp_path_factory.mktemp("assets")
    corpus = assets / "corpus.tsv"
    sentences(200).to_csv(corpus, sep="\t", index=False)
    return reproduced(copy_repo(tmp_path_factory.mktemp("lm_repo"), lm_params(corpus)))


def test_lm_repro_writes_perplexities_comparison_and_report(repo):
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert set(metrics) == {"teacher", "kd", "hard", "comparison"}
    for name in ("teacher", "kd", "hard"):
        for prefix in ("validation_", ""):
            nll, perplexity = metrics[name][prefix + "nll"], metrics[name][prefix + "perplexity"]
            if name == "teacher":
                assert perplexity == pytest.approx(np.exp(nll))
            else:  # the students' means over seeds: the mean of exp(NLL) is at least exp of the mean NLL
                assert perplexity >= np.exp(nll) and len(metrics[name][prefix + "perplexity_seeds"]) == 2
            assert 1 < perplexity < 300
    assert metrics["kd"]["params"] < metrics["teacher"]["params"] and metrics["kd"]["seeds"] == 2
    assert 0 <= metrics["kd"]["teacher_agreement"] <= 1 and metrics["kd"]["kl_from_teacher"] > 0
    comparison = metrics["comparison"]
    assert comparison["kd_minus_hard_nll_ci_low"] <= comparison["kd_minus_hard_nll"] \
        <= comparison["kd_minus_hard_nll_ci_high"]
    assert comparison["kd_over_hard_perplexity"] == pytest.approx(np.exp(comparison["kd_minus_hard_nll"]))
    # the per-sequence table the bootstrap read: summed NLL / tokens = the token-weighted NLL of metrics.json
    table = pd.read_parquet(repo / "data/eval_logits/sequence_nll_test.parquet")
    assert table["teacher"].sum() / table["tokens"].sum() == pytest.approx(metrics["teacher"]["nll"])
    for name in ("teacher", "kd", "hard"):  # each model's samples of 256 test prompts (all 40 here), teacher-scored
        judged = metrics[name]  # the students: means over seeds, of exp(NLL) at least exp of the mean NLL
        assert judged["teacher_perplexity_of_samples"] >= np.exp(judged["teacher_nll_of_samples"]) * (1 - 1e-9)
        if name == "teacher":  # its own samples, by itself
            assert judged["teacher_perplexity_of_samples"] == pytest.approx(np.exp(judged["teacher_nll_of_samples"]))
            assert judged["model_perplexity_of_samples"] == pytest.approx(judged["teacher_perplexity_of_samples"])
        assert 1 <= judged["sampled_tokens_per_sequence"] <= 6  # 12-token sequences: 6-token prompts, 6 sampled
        assert judged["model_perplexity_of_samples"] > 1 and 0 < judged["distinct_bigrams_of_samples"] <= 1
    assert metrics["kd"]["teacher_nll_of_samples_std"] >= 0
    report = (repo / "reports/report.md").read_text()
    assert "## Greedy continuations" in report and "](plots/perplexity.png)" in report
    assert "Students: mean ± sample std over 2 seeds;" in report and "with the 2 seeds pooled" in report
    assert "| teacher's perplexity of the model's samples |" in report
    assert "| distinct token bigrams among its samples' (Dist-2) |" in report
    assert len(json.loads((repo / "reports/eval/continuations.json").read_text())) >= 1
    selection = json.loads((repo / "reports/training/kd/seed_0/selection.json").read_text())
    assert selection["rule"] == "best" and "validation_nll" in selection
    speed = json.loads((repo / "reports/timings/speed.json").read_text())
    assert speed["teacher"]["tokens_per_s"] > 0 and speed["kd_seed0"]["ms_per_generated_token"] > 0
    assert speed["teacher"]["repeats"] == speed["kd_seed0"]["repeats"] == 2  # evaluate.timing_repeats, in budget
    printed = run([sys.executable, "-m", "distillery.evaluation.report", "reports/metrics.json"], repo).stdout
    assert "| test perplexity |" in printed and "ms per generated token" in printed  # what `make repro` prints


def test_teacher_logits_are_top_k_per_token_keyed_by_id_and_position(repo):
    import pyarrow.parquet as pq

    stored = pq.read_table(repo / "data/teacher_logits/train.parquet")
    assert stored.column_names == ["id", "position", "index", "top", "rest_mean", "rest_lse"]
    keys = stored.select(["id", "position"]).to_pandas()
    assert not keys.duplicated().any() and keys.groupby("id")["position"].min().eq(0).all()
    assert stored.schema.field("index").type.list_size == 5


def test_kd_change_reruns_only_distill_evaluate_plots(repo):
    git_commit(repo, "first run")
    result = run(["dvc", "exp", "run", "-S", "kd.T=2"], repo)
    ran = stages_run(result.stdout)
    assert ran == {"distill", "evaluate", "plots"}, result.stdout


def test_sequence_level_kd_samples_and_scores_once_then_trains_on_the_teacher_s_sequences(repo):
    git_commit(repo, "after the kd change")
    result = run(["dvc", "exp", "run", "-S", "kd.method=seqkd", "-S", "teacher.generate.sequences=40",
                  "-S", "teacher.generate.prompt_tokens=3"], repo)
    ran = stages_run(result.stdout)
    assert ran == {"transfer_logits", "distill", "evaluate", "plots"}, result.stdout
    summary = json.loads((repo / "data/transfer_logits/summary.json").read_text())
    assert summary["rows"] == 40 and 3 < summary["mean_length"] <= 12
    assert "generated: 40 sequences" in result.stdout
    result = run(["dvc", "exp", "run", "-S", "kd.method=seqkd", "-S", "teacher.generate.sequences=40",
                  "-S", "teacher.generate.prompt_tokens=3", "-S", "kd.alpha=0"], repo)
    ran = stages_run(result.stdout)
    assert ran == {"distill", "evaluate", "plots"}, result.stdout  # sampled and scored once


def test_on_policy_gkd_trains_on_the_student_s_samples_with_the_live_teacher_and_no_teacher_stage(repo):
    git_commit(repo, "after sequence-level KD")
    before = json.loads((repo / "reports/metrics.json").read_text())["kd"]
    result = run(["dvc", "exp", "run", "-S", "kd.method=on_policy_gkd", "-S", "++kd.on_policy_gkd.prompt_tokens=3",
                  "-S", "kd.alpha=1"], repo)
    ran = stages_run(result.stdout)
    assert ran == {"distill", "evaluate", "plots"}, result.stdout
    after = json.loads((repo / "reports/metrics.json").read_text())["kd"]
    assert 1 < after["perplexity"] < 300 and after["perplexity"] != before["perplexity"]
    curves = pd.read_csv(repo / "reports/training/kd/seed_0/plots/metrics/jsd.tsv", sep="\t")
    assert len(curves) == 2 and np.isfinite(curves["jsd"]).all()  # logged at steps 10 and 20


def test_minillm_trains_on_teacher_mixed_samples_by_policy_gradient_and_no_teacher_stage(repo):
    git_commit(repo, "after on-policy GKD")
    before = json.loads((repo / "reports/metrics.json").read_text())["kd"]
    result = run(["dvc", "exp", "run", "-S", "kd.method=minillm", "-S", "++kd.minillm.prompt_tokens=3",
                  "-S", "++kd.minillm.student_data_fraction=1.0"], repo)
    ran = stages_run(result.stdout)
    assert ran == {"distill", "evaluate", "plots"}, result.stdout
    after = json.loads((repo / "reports/metrics.json").read_text())["kd"]
    assert 1 < after["perplexity"] < 300 and after["perplexity"] != before["perplexity"]
    assert after["teacher_perplexity_of_samples"] > 1
    for term in ("pg", "reverse_kl"):  # every step on samples: no corpus term logged
        curves = pd.read_csv(repo / f"reports/training/kd/seed_0/plots/metrics/{term}.tsv", sep="\t")
        assert len(curves) == 2 and np.isfinite(curves[term]).all()
    assert not (repo / "reports/training/kd/seed_0/plots/metrics/ce.tsv").exists()
