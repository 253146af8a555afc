"""distillery.export: which seed is handed over, its scores by hand, where it may be written, the card's parts.
End to end (make export after dvc repro): tests/stages/test_pipeline.py and test_lm_prompts_pipeline.py."""
import json

import pandas as pd
import pytest

from distillery.errors import DistilleryError
from distillery.export import (RECORD_FILE, card_warnings, check_out, inputs_text, lm_seed_scores, params_changes,
                               pick_seed, seed_scores, set_args, without_local_links)


def test_the_best_validation_accuracy_wins_and_a_tie_goes_to_the_lower_seed():
    selections = [{"seed": 0, "validation_accuracy": 0.90}, {"seed": 3, "validation_accuracy": 0.95},
                  {"seed": 1, "validation_accuracy": 0.95}, {"seed": 2, "validation_accuracy": None}]
    assert pick_seed(selections, language_model=False) == 1


def test_a_language_model_is_chosen_by_the_lowest_validation_nll():
    selections = [{"seed": 0, "validation_nll": 2.5}, {"seed": 1, "validation_nll": 2.4},
                  {"seed": 2, "validation_nll": 2.6}]
    assert pick_seed(selections, language_model=True) == 1


def test_no_validation_score_asks_for_a_seed():
    with pytest.raises(DistilleryError, match="no seed has a validation accuracy at its checkpoint.*give --seed"):
        pick_seed([{"seed": 0, "validation_accuracy": None}], language_model=False)


def test_a_seeds_scores_by_hand():
    predictions = pd.DataFrame({"id": [5, 6, 7, 8], "label": [0, 1, 1, 2], "teacher": [0, 1, 2, 2],
                                "kd_seed0": [0, 0, 2, 2], "kd_seed1": [0, 1, 1, 2]})
    got = seed_scores(predictions, "kd", 0)
    # right on rows 5 and 8; F1 per class: 0 -> 2/3 (p 1/2, r 1), 1 -> 0, 2 -> 2/3 (p 1/2, r 1)
    assert got == {"rows": 4, "accuracy": 0.5, "errors": 2, "macro_f1": pytest.approx(4 / 9), "agreement": 0.75}
    assert seed_scores(predictions, "kd", 1)["accuracy"] == 1.0


def test_the_card_warns_of_its_own_model_when_no_better_than_the_most_common_class():
    """A card said nothing of a student that predicted one class for every row; the report did."""
    predictions = pd.DataFrame({"id": [5, 6, 7, 8], "label": [0, 0, 1, 2], "teacher": [0, 0, 1, 2],
                                "kd_seed0": [0, 0, 0, 0], "kd_seed1": [0, 0, 1, 1], "hard_seed0": [0, 0, 0, 0]})
    meta = {"label_names": ["neg", "pos", "mixed"]}
    metrics = {"teacher": {"validation_accuracy": 0.9}, "hard": {"validation_accuracy": 0.7}}
    warned = card_warnings(meta, metrics, predictions, "kd", 0)
    assert len(warned) == 1 and warned[0].startswith("`kd_seed0` predicts `neg` for every row: no better than")
    assert card_warnings(meta, metrics, predictions, "kd", 1) == []  # 0.75 > 0.5; hard_seed0 is another model's
    weak_teacher = {"teacher": {"validation_accuracy": 0.6}, "hard": {"validation_accuracy": 0.7}}
    assert card_warnings(meta, weak_teacher, None, "kd", 1)[0].startswith("The teacher is not better than")


def test_a_language_models_perplexities_are_its_seeds_entries():
    metrics = {"kd": {"perplexity_seeds": [10.0, 11.0, 12.0], "validation_perplexity_seeds": [9.0, 9.5, 9.8]}}
    assert lm_seed_scores(metrics, "kd", [4, 0, 2], 2) == {"perplexity": 11.0, "validation_perplexity": 9.5}


def test_out_may_be_new_empty_or_an_earlier_export_of_its_own_files_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_out(tmp_path / "new") is None
    (tmp_path / "empty").mkdir()
    assert check_out(tmp_path / "empty") is None
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    record = {"kind": "kd", "seed": 1, "files": ["README.md", RECORD_FILE, "model.safetensors"]}
    (earlier / RECORD_FILE).write_text(json.dumps(record))
    (earlier / "model.safetensors").write_text("w")
    assert check_out(earlier) == record
    (earlier / ".git").mkdir()  # a clone of the model's Hub repository, say: replacing the folder would lose it
    (earlier / "notes.txt").write_text("keep")
    with pytest.raises(DistilleryError, match=r"earlier: an earlier export, with files it did not write \(.git, "
                                              r"notes.txt\); an export replaces the whole folder"):
        check_out(earlier)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(DistilleryError, match="mine: exists and is not an earlier export"):
        check_out(tmp_path / "mine")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DistilleryError, match="file: exists and is not an earlier export"):
        check_out(tmp_path / "file")
    for managed in ("models/students/kd/mine", "data", "reports/x", ".dvc/x"):
        with pytest.raises(DistilleryError, match="which DVC manages: export elsewhere"):
            check_out(tmp_path / managed)
    with pytest.raises(DistilleryError, match=r"\.git/x: inside \.git/, which git manages"):
        check_out(tmp_path / ".git/x")


def test_params_changed_since_the_commit_and_the_options_that_make_them():
    committed = {"kd": {"T": 4.0, "alpha": 0.5, "method": "kd"}, "train": {"seeds": [0, 1]},
                 "teacher": {"logits_top_k": 5}}
    current = {"kd": {"T": 2, "alpha": 0.5, "method": "dkd", "dkd": {"beta": 4.0}}, "train": {"seeds": [0, 1, 2]},
               "teacher": {"logits_top_k": None}}
    changes = params_changes(committed, current)
    assert changes == {"kd.T": {"commit": 4.0, "now": 2.0, "written": True},
                       "kd.dkd.beta": {"commit": 8.0, "now": 4.0, "written": False},  # 8: the default
                       "kd.method": {"commit": "kd", "now": "dkd", "written": True},
                       "teacher.logits_top_k": {"commit": 5, "now": None, "written": True},
                       "train.seeds": {"commit": [0, 1], "now": [0, 1, 2], "written": True}}
    # an explicit null is a value -S can set; a key the commit's file does not write takes ++
    assert set_args(changes) == ("-S kd.T=2.0 -S ++kd.dkd.beta=4.0 -S kd.method=dkd -S teacher.logits_top_k=null "
                                 "-S 'train.seeds=[0, 1, 2]'")
    assert params_changes(current, current) == {}
    back = params_changes(current, committed)  # kd.dkd.beta removed: back to its default, which -S sets
    assert back["kd.dkd.beta"] == {"commit": 4.0, "now": 8.0, "written": True}
    assert "-S kd.dkd.beta=8.0" in set_args(back)


def test_params_written_out_at_their_defaults_are_no_change():
    from distillery.params import SCHEMA, validate
    from distillery.schema import leaves, unflatten

    everything = unflatten(leaves(validate({}), SCHEMA))  # what `make preset` writes: every default
    assert params_changes({}, everything) == {}
    assert params_changes({}, everything | {"kd": everything["kd"] | {"T": 2.0}}) == {
        "kd.T": {"commit": 4.0, "now": 2.0, "written": False}}
    files = {"data": {"source": "files", "files": {"train": "a.csv"}, "feature_columns": "all"}}
    assert params_changes({}, files)["data.files"] == {"commit": None, "now": {"train": "a.csv"},
                                                       "written": False}  # a mapping param stays one key
    # a file that no longer validates is compared as written
    assert params_changes({"kd": {"old_knob": 1}}, {}) == {"kd.old_knob": {"commit": 1, "written": True}}


def test_links_into_the_repository_become_their_text():
    text = "see [docs/x.md](../docs/x.md) and [the paper](https://arxiv.org/abs/1503.02531)"
    assert without_local_links(text) == "see docs/x.md and [the paper](https://arxiv.org/abs/1503.02531)"


def test_what_a_classifier_takes_in_words():
    table = {"kind": "table", "feature_columns": [f"c{i}" for i in range(14)]}
    assert inputs_text(table) == ("table rows with the columns " + ", ".join(f"`c{i}`" for i in range(12))
                                  + " and 2 more")
    assert inputs_text({"kind": "text", "columns": {"text": "premise", "text_pair": "hypothesis"}}) == \
        "texts in the columns `premise`, `hypothesis`"
    assert inputs_text({"kind": "text", "columns": {"text": "sentence", "text_pair": None}}) == \
        "texts in the column `sentence`"
    assert inputs_text({"kind": "array", "shape": [28, 28], "pixel_max": 255.0}) == \
        "images of shape [28, 28] with pixels from 0 to 255, as the source gives them"
    # a channels-last source: the model's shape is channels first, new images come as the source's
    assert inputs_text({"kind": "array", "shape": [3, 16, 16], "pixel_max": 255.0, "channels": "last"}) == \
        "images of shape [16, 16, 3] (channels last) with pixels from 0 to 255, as the source gives them"
    assert inputs_text({"kind": "array", "shape": [64], "pixel_max": None}) == \
        "arrays of shape [64], as the source gives them"  # float features: no pixel range


@pytest.mark.parametrize("meta, arch, tag", [({"kind": "causal_lm"}, "hf", "text-generation"),
                                             ({}, "hf", "text-classification"), ({}, "mlp", None)])
def test_the_cards_library_and_pipeline_tag_only_where_transformers_has_the_class(meta, arch, tag):
    from distillery.export import _front_matter

    lines = _front_matter(meta, {"student": {"model": {"arch": arch}}})
    assert lines[0] == "---" and lines[-2:] == ["---", ""] and "- knowledge-distillation" in lines
    expected = ["library_name: transformers", f"pipeline_tag: {tag}"] if tag else []
    assert [line for line in lines if line.startswith(("library_name", "pipeline_tag"))] == expected


def test_a_text_classifiers_card_says_what_it_takes_and_how_to_call_it():
    from distillery.export import usage

    record = {"kind": "text", "columns": {"text": "sentence", "text_pair": None}, "label_names": ["neg", "pos"]}
    text = "\n".join(usage(record, {"student": {"model": {"arch": "hf"}}}, "0123456789abcdef"))
    assert text.startswith("It takes texts in the column `sentence`, and predicts one of 2 labels.")
    assert 'pipeline("text-classification", model=THIS_FOLDER)' in text
    assert "the distillery project at commit `0123456789ab`" in text and "THIS_FOLDER rows.csv" in text


def test_one_seed_has_no_spread_and_its_answers_are_this_models():
    """A helper's one-seed card read `4.849 ± 0.000` and `—` for this model's ROUGE-L, its only seed's figure."""
    from distillery.export import lm_results

    def block(perplexity: float, rouge: float, seeds: int) -> dict:
        return {"perplexity": perplexity, "perplexity_std": 0.0, "validation_perplexity": perplexity + 1,
                "validation_perplexity_std": 0.0, "rouge_l": rouge, "rouge_l_std": 0.0, "exact_match": rouge / 2,
                "exact_match_std": 0.0, "params": 100, "seeds": seeds}

    comparison = {"kd_minus_hard_nll": -0.1, "kd_minus_hard_nll_ci_low": -0.2, "kd_minus_hard_nll_ci_high": -0.05}
    metrics = {"teacher": {**block(3.0, 0.5, 1), "params": 1000}, "kd": block(4.849, 0.25, 1),
               "hard": block(5.0, 0.125, 1), "comparison": comparison}
    text = "\n".join(lm_results(metrics, "kd", 0, {"perplexity": 4.849, "validation_perplexity": 5.849}))
    assert "| test perplexity | 4.849 | 3.000 | 4.849 | 5.000 |" in text
    assert "| ROUGE-L F1 of the greedy test answers | 0.2500 | 0.5000 | 0.2500 | 0.1250 |" in text
    metrics["kd"] = {**block(4.849, 0.25, 2), "perplexity_std": 0.1}
    metrics["hard"]["seeds"] = 2
    text = "\n".join(lm_results(metrics, "kd", 1, {"perplexity": 4.9, "validation_perplexity": 5.9}))
    assert "| test perplexity | 4.900 | 3.000 | 4.849 ± 0.100 | 5.000 ± 0.000 |" in text
    assert "| ROUGE-L F1 of the greedy test answers | — |" in text  # a mean over seeds only
