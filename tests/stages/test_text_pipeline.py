"""End to end for text: `dvc repro` of a tiny text setting (a local Hub-style dataset with hidden test labels,
a tiny BERT teacher fine-tuned, a DistilBERT student with another vocabulary), then a KD change."""
from __future__ import annotations

import json

import pytest

from ..repo_utils import copy_repo, git_commit, reproduced, run, stages_run
from ..data.test_text import _hf_dir
from ..text_utils import sentences, text_params, tiny_checkpoint, train_tokenizer

pytestmark = pytest.mark.slow  # end to end: dvc repro / subprocesses (make test-fast skips it)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    assets = tmp_path_factory.mktemp("assets")
    df = sentences(160)
    tok_a = train_tokenizer(df["sentence"].tolist(), assets / "tok_a", vocab_size=120)
    tok_b = train_tokenizer(df["sentence"].tolist(), assets / "tok_b", vocab_size=70, lowercase=False)
    teacher = tiny_checkpoint(assets / "teacher", tok_a, "bert")
    _hf_dir(assets / "glue_like", df, hidden_test=True)
    params = text_params(teacher, tok_b, source=f"hf:{assets / 'glue_like'}")
    return reproduced(copy_repo(tmp_path_factory.mktemp("text_repo"), params))


def test_text_repro_writes_metrics_report_and_throughput(repo):
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert set(metrics) == {"teacher", "kd", "hard", "comparison"}
    assert metrics["kd"]["params"] < metrics["teacher"]["params"]
    assert metrics["kd"]["seeds"] == 2
    predictions = (repo / "reports/eval/predictions.csv").read_text().splitlines()
    assert len(predictions) == 1 + 30  # the source validation split, scored because test labels are hidden
    report = (repo / "reports/report.md").read_text()
    assert "Scored on the source's validation split (its test labels are hidden)" in report
    assert "](plots/reliability.png)" in report and "examples.png" not in report
    throughput = json.loads((repo / "reports/timings/teacher_logits.json").read_text())
    assert throughput["train"]["examples"] == 80 and throughput["train"]["examples_per_s"] > 0
    assert (repo / "models/teacher/tokenizer.json").exists()
    assert (repo / "models/students/kd/seed_1/tokenizer.json").exists()
    speed = json.loads((repo / "reports/timings/speed.json").read_text())
    assert speed["teacher"]["latency_ms"] > 0 and speed["student"]["throughput_per_s"] > 0


def test_kd_change_reruns_only_distill_evaluate_plots_and_reuses_tokenization(repo):
    cache = repo / ".cache/tokenized"
    before = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.arrow")}
    assert {"teacher-train", "student-train"} <= {name.rsplit("-", 1)[0] for name in before}
    git_commit(repo, "first run")
    result = run(["dvc", "exp", "run", "-S", "kd.alpha=0.9", "-S", "kd.T=2"], repo)
    ran = stages_run(result.stdout)
    assert ran == {"distill", "evaluate", "plots"}, result.stdout
    after = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.arrow")}
    assert after == before  # cache hits: nothing tokenized again
    assert not list((repo / "data/prepared").rglob("cache-*"))  # datasets wrote nothing into the DVC output


def test_predict_on_the_source_sentences_gives_evaluates_logits(repo, tmp_path):
    """A text student from its folder alone (weights, tokenizer, inputs.json) on the scored sentences as a CSV of
    the source's column, keyed by their ids, in evaluate's batch size: evaluate's test logits."""
    import numpy as np
    import pandas as pd

    from distillery.data.prepared import load_prepared
    from distillery.io import read_logits

    test = load_prepared(repo / "data/prepared").splits["test"].dataset
    pd.DataFrame({"id": test["id"], "sentence": test["text"]}).to_csv(tmp_path / "rows.csv", index=False)
    run(["python", "-m", "distillery.predict", "models/students/kd/seed_1", str(tmp_path / "rows.csv"),
         str(tmp_path / "p.csv"), "--scores", "logits", "--batch-size", "16"], repo)
    out = pd.read_csv(tmp_path / "p.csv")
    assert out["id"].tolist() == test["id"]
    expected = read_logits(repo / "data/eval_logits/kd_seed1.parquet", np.array(test["id"]))
    assert out["label"].tolist() == [["negative", "positive"][k] for k in expected.argmax(axis=1)]
    np.testing.assert_array_equal(out[["logit_negative", "logit_positive"]].to_numpy(np.float32), expected)
    from transformers import pipeline  # the folder is all transformers' own pipeline needs, too

    classify = pipeline("text-classification", model=str(repo / "models/students/kd/seed_1"), device="cpu")
    assert [row["label"] for row in classify(test["text"][:8])] == out["label"].tolist()[:8]
