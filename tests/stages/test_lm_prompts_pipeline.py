"""End to end for a corpus of prompts and responses (``data.prompt_column``): `dvc repro` learns and scores the
responses alone, stores the teacher's logits at the response positions only, and scores every model's greedy answers
against the references; sequence-level KD and on-policy GKD answer each row's own prompt."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ..repo_utils import copy_repo, git_commit, reproduced, run, stages_run
from ..text_utils import sentences
from .test_lm_pipeline import lm_params

pytestmark = pytest.mark.slow  # end to end: dvc repro / subprocesses (make test-fast skips it)


def sentiment_prompts(n: int) -> pd.DataFrame:
    """Sentiment as text: a review as the prompt, its label's word as the response."""
    rows = sentences(n)
    return pd.DataFrame({"prompt": "review: " + rows["sentence"] + " sentiment:",
                         "answer": np.where(rows["label"] == 1, " good", " bad")})


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    assets = tmp_path_factory.mktemp("assets")
    corpus = assets / "prompts.jsonl"
    sentiment_prompts(200).to_json(corpus, orient="records", lines=True)
    params = lm_params(corpus)
    params["data"].update({"prompt_column": "prompt", "text_column": "answer", "max_length": 48})
    params["evaluate"]["responses"] = 30
    return reproduced(copy_repo(tmp_path_factory.mktemp("lm_prompts_repo"), params))


def prepared_rows(repo, split: str) -> pd.DataFrame:
    import datasets

    return datasets.load_from_disk(str(repo / "data/prepared"))[split].to_pandas()


def test_prepare_keeps_each_prompt_length_and_the_response_after_it(repo):
    from transformers import PreTrainedTokenizerFast

    meta = json.loads((repo / "data/prepared/meta.json").read_text())
    assert meta["prompt_column"] == "prompt" and meta["long_prompts"] == {"train": 0, "validation": 0, "test": 0}
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(repo / "data/prepared/tokenizer"))
    rows = prepared_rows(repo, "test")
    source = sentiment_prompts(200)
    for _, row in rows.head(10).iterrows():
        tokens = list(row["input_ids"])
        prompt, response = tokens[:row["prompt_length"]], tokens[row["prompt_length"]:]
        assert tokenizer.decode(prompt) == source.loc[row["id"], "prompt"]
        assert tokenizer.decode(response) == source.loc[row["id"], "answer"] + "<|endoftext|>"
    targets = sum(len(t) - p for t, p in zip(rows["input_ids"], rows["prompt_length"]))
    assert meta["target_tokens"]["test"] == targets


def test_teacher_logits_are_stored_at_the_response_positions_only(repo):
    import pyarrow.parquet as pq

    keys = pq.read_table(repo / "data/teacher_logits/validation.parquet", columns=["id", "position"]).to_pandas()
    rows = prepared_rows(repo, "validation").set_index("id")
    expected = {(i, p) for i, row in rows.iterrows()
                for p in range(row["prompt_length"] - 1, len(row["input_ids"]) - 1)}
    assert set(zip(keys["id"], keys["position"])) == expected


def test_every_model_is_scored_on_the_responses_and_on_its_answers(repo):
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    meta = json.loads((repo / "data/prepared/meta.json").read_text())
    assert metrics["teacher"]["tokens"] == meta["target_tokens"]["test"]  # the responses' tokens alone
    for name in ("teacher", "kd", "hard"):
        assert 0 <= metrics[name]["rouge_l"] <= 1 and 0 <= metrics[name]["exact_match"] <= 1
        assert 1 <= metrics[name]["sampled_tokens_per_sequence"] <= 48
    comparison = metrics["comparison"]
    assert comparison["responses"] == 30
    assert comparison["kd_minus_hard_rouge_l_ci_low"] <= comparison["kd_minus_hard_rouge_l"] \
        <= comparison["kd_minus_hard_rouge_l_ci_high"]
    assert comparison["kd_minus_hard_rouge_l"] == pytest.approx(metrics["kd"]["rouge_l"] - metrics["hard"]["rouge_l"])
    headline = json.loads((repo / "reports/headline.json").read_text())  # what `dvc exp show` opens with
    assert headline["exact_match"] == {name: metrics[name]["exact_match"] for name in ("kd", "hard", "teacher")}
    assert headline["kd_minus_hard_exact_match"] == comparison["kd_minus_hard_exact_match"]
    table = pd.read_parquet(repo / "data/eval_logits/sequence_nll_test.parquet")
    rows = prepared_rows(repo, "test")
    assert table["tokens"].tolist() == [len(t) - p for t, p in zip(rows["input_ids"], rows["prompt_length"])]
    report = (repo / "reports/report.md").read_text()
    assert "| ROUGE-L F1 |" in report and "| prompts | column `prompt`" in report
    continuations = json.loads((repo / "reports/eval/continuations.json").read_text())
    assert continuations[0]["prompt"].startswith("review: ") and continuations[0]["prompt"].endswith("sentiment:")
    assert continuations[0]["reference"] in (" good", " bad")


def test_sequence_level_kd_and_on_policy_gkd_answer_each_row_s_own_prompt(repo):
    import pyarrow.parquet as pq

    git_commit(repo, "first run")
    result = run(["dvc", "exp", "run", "-S", "kd.method=seqkd", "-S", "teacher.generate.sequences=40"], repo)
    ran = stages_run(result.stdout)
    assert ran == {"transfer_logits", "distill", "evaluate", "plots"}, result.stdout
    generated = pq.read_table(repo / "data/transfer_logits/generated_sequences.parquet").to_pandas()
    rows = prepared_rows(repo, "train").set_index("id")
    for _, row in generated.iterrows():  # the row's whole prompt, then the teacher's answer
        prompt = rows.loc[row["id"], "prompt_length"]
        assert row["prompt_length"] == prompt and len(row["input_ids"]) > prompt
        assert list(row["input_ids"][:prompt]) == list(rows.loc[row["id"], "input_ids"][:prompt])
    keys = pq.read_table(repo / "data/transfer_logits/generated.parquet", columns=["id", "position"])
    first = keys.to_pandas().groupby("id")["position"].min()
    assert (first == generated.set_index("id")["prompt_length"] - 1).all()  # the answers' targets alone
    git_commit(repo, "after sequence-level KD")
    result = run(["dvc", "exp", "run", "-S", "kd.method=on_policy_gkd", "-S", "kd.alpha=1",
                  "-S", "++kd.on_policy_gkd.student_data_fraction=1.0"], repo)
    ran = stages_run(result.stdout)
    assert ran == {"distill", "evaluate", "plots"}, result.stdout
    curves = pd.read_csv(repo / "reports/training/kd/seed_0/plots/metrics/jsd.tsv", sep="\t")
    assert len(curves) == 2 and np.isfinite(curves["jsd"]).all()
    assert "(each row's own prompt is answered: prompt_tokens is not read)" in (repo / "reports/report.md").read_text()


def test_predict_answers_the_source_prompts_as_evaluate_did(repo, tmp_path):
    """A student from its folder alone (weights, tokenizer, inputs.json) answers the source rows of the first
    validation prompts, in evaluate's batch, with the report's continuations; the file's answers are the references."""
    validation = prepared_rows(repo, "validation")
    shown = json.loads((repo / "reports/eval/continuations.json").read_text())
    rows = sentiment_prompts(200).loc[validation["id"][:len(shown)]].rename_axis("id").reset_index()
    rows.to_json(tmp_path / "rows.jsonl", orient="records", lines=True)
    run(["python", "-m", "distillery.predict", "models/students/kd/seed_0", str(tmp_path / "rows.jsonl"),
         str(tmp_path / "answers.jsonl"), "--batch-size", str(len(shown))], repo)
    out = pd.read_json(tmp_path / "answers.jsonl", lines=True, dtype=False)
    assert out["id"].tolist() == rows["id"].tolist() and out["reference"].tolist() == rows["answer"].tolist()
    assert out["answer"].tolist() == [entry["kd_seed0"] for entry in shown]
    assert all(answer.startswith(entry["reference"]) for answer, entry in zip(rows["answer"], shown))  # cut there


def test_export_hands_over_the_seed_of_the_lowest_validation_nll(repo):
    """The applied experiment (on-policy GKD, above) exported: the seed of the lowest validation NLL (by hand from
    each selection.json), its files byte for byte, its perplexities from metrics.json's per-seed lists, a card for
    text generation with the answers' scores, and the uncommitted params said."""
    nll = {int(p.parent.name.split("_")[1]): json.loads(p.read_text())["validation_nll"]
           for p in (repo / "reports/training/kd").glob("seed_*/selection.json")}
    best = min(sorted(nll), key=nll.get)
    run(["python", "-m", "distillery.export", "export/kd"], repo)
    out, student = repo / "export/kd", repo / f"models/students/kd/seed_{best}"
    assert all((out / f.name).read_bytes() == f.read_bytes() for f in student.iterdir())
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    record = json.loads((out / "distillation.json").read_text())
    assert record["seed"] == best and record["test"] == {
        "perplexity": metrics["kd"]["perplexity_seeds"][best],
        "validation_perplexity": metrics["kd"]["validation_perplexity_seeds"][best]}
    assert record["params"]["kd"]["method"] == "on_policy_gkd" and record["files_changed"] == []
    assert record["params_changed"] == {
        "kd.alpha": {"commit": 0.5, "now": 1.0, "written": True},
        "kd.method": {"commit": "seqkd", "now": "on_policy_gkd", "written": True},
        "kd.on_policy_gkd.student_data_fraction": {"commit": 0.5, "now": 1.0, "written": False}}  # 0.5: the default
    card = (out / "README.md").read_text()
    assert "pipeline_tag: text-generation" in card and "the best validation NLL per token" in card
    assert f"| test perplexity | {metrics['kd']['perplexity_seeds'][best]:.3f} |" in card
    assert "| ROUGE-L F1 of the greedy test answers | — |" in card
    assert (f"`git checkout {record['commit'][:12]}`, then `dvc exp run -S kd.alpha=1.0 -S kd.method=on_policy_gkd "
            "-S ++kd.on_policy_gkd.student_data_fraction=1.0`, trains") in card
