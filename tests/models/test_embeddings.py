"""A student's embeddings started from a checkpoint's (student.model.init_embeddings): the projection checked by hand,
through the student build on a tiny checkpoint the test saves, and the refusals."""
from __future__ import annotations

import numpy as np
import pytest

from distillery.errors import DistilleryError
from distillery.models.embeddings import copy_embeddings, principal_directions, projected_embeddings

from ..text_utils import prepare_text_source, tiny_checkpoint


def test_principal_directions_are_the_axes_of_largest_spread_signed_alike():
    # columns with sums of squares 18, 8 and 2 (by hand: 3² + 3², 2² + 2², 1 + 1): the axes are the directions
    words = np.array([[3, 0, 0], [-3, 0, 0], [0, -2, 0], [0, 2, 0], [0, 0, 1], [0, 0, -1]], float)
    assert np.array_equal(principal_directions(words, 2), [[1, 0], [0, 1], [0, 0]])
    assert np.array_equal(principal_directions(-words, 2), principal_directions(words, 2))  # sign rule
    # a rotated copy: the directions rotate with it
    rotation = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    top = principal_directions(words @ rotation.T, 1)[:, 0]
    assert np.allclose(abs(top), abs(rotation[:, 0])) and top[np.abs(top).argmax()] > 0
    # against NumPy's SVD on a random table
    table = np.random.default_rng(1).normal(size=(50, 6))
    ours = principal_directions(table, 4)
    theirs = np.linalg.svd(table, full_matrices=False)[2][:4].T
    assert np.allclose(ours.T @ ours, np.eye(4)) and np.allclose(abs(ours), abs(theirs))
    with pytest.raises(ValueError, match="width 7"):
        principal_directions(table, 7)


def test_a_table_of_rank_k_projects_to_k_dims_and_back_exactly():
    rng = np.random.default_rng(2)
    basis = np.linalg.qr(rng.normal(size=(5, 2)))[0]  # two orthonormal directions in 5 dims
    words = rng.normal(size=(40, 2)) @ basis.T * 3  # rank 2
    positions = rng.normal(size=(8, 5))
    state = {"bert.embeddings.word_embeddings.weight": words, "bert.embeddings.position_embeddings.weight": positions,
             "bert.encoder.layer.0.attention.self.query.weight": rng.normal(size=(5, 5))}
    tables = projected_embeddings(state, 2)
    assert set(tables) == {"word_embeddings", "position_embeddings"}
    assert tables["word_embeddings"].shape == (40, 2) and tables["word_embeddings"].dtype == np.float32
    directions = principal_directions(words, 2)
    assert np.allclose(tables["word_embeddings"] @ directions.T, words, atol=1e-5)  # nothing of the words lost
    assert np.allclose(tables["position_embeddings"], positions @ directions, atol=1e-6)  # the same map for all
    with pytest.raises(DistilleryError, match="hidden_size 6 is wider than the checkpoint's embeddings \\(5\\)"):
        projected_embeddings(state, 6)
    with pytest.raises(DistilleryError, match="no word embeddings"):
        projected_embeddings({"bert.embeddings.position_embeddings.weight": positions}, 2)


def test_students_start_from_the_projected_embeddings_and_other_vocabularies_are_refused(text_assets, tmp_path):
    import torch
    from transformers import AutoModel

    from distillery.params import validate
    from distillery.training.students import text_student

    prepared = prepare_text_source(tmp_path, text_assets["root"], source="files",
                                   files={"train": "train.tsv.gz", "validation": "validation.tsv"})
    source = text_assets["teacher"]  # a tiny BERT (hidden 32) with tok_a's vocabulary
    student = {"arch": "hf", "config": {"model_type": "bert", "hidden_size": 8, "num_hidden_layers": 1,
                                        "num_attention_heads": 2, "intermediate_size": 16,
                                        "max_position_embeddings": 32},
               "tokenizer": str(text_assets["tok_a"]), "init_embeddings": str(source)}
    spec = validate({"data": {"source": "file:x.csv"}, "teacher": {"model": {"arch": "hf", "pretrained": "x"}},
                     "student": {"model": student}})["student"]["model"]
    make_model, extra = text_student(spec, prepared, text_assets["teacher"])
    torch.manual_seed(0)
    first = make_model()
    torch.manual_seed(1)
    second = make_model()
    state = {k: v.numpy() for k, v in AutoModel.from_pretrained(source).state_dict().items()}
    tables = projected_embeddings(state, 8)
    for model in (first, second):  # every seed starts from the same embeddings; the rest is the seed's own
        embeddings = model.bert.embeddings
        assert np.array_equal(embeddings.word_embeddings.weight.detach().numpy(), tables["word_embeddings"])
        assert np.array_equal(embeddings.position_embeddings.weight.detach().numpy(),
                              tables["position_embeddings"][:32])  # the student's 32 of the checkpoint's 64
        assert np.array_equal(embeddings.token_type_embeddings.weight.detach().numpy(),
                              tables["token_type_embeddings"])
    assert not torch.equal(first.bert.encoder.layer[0].attention.self.query.weight,
                           second.bert.encoder.layer[0].attention.self.query.weight)
    assert extra["key"][0] is not None  # the embeddings are part of the run's fingerprint

    other_vocabulary = validate({"data": {"source": "file:x.csv"},
                                 "teacher": {"model": {"arch": "hf", "pretrained": "x"}},
                                 "student": {"model": {**student, "tokenizer": str(text_assets["tok_b"])}}})
    with pytest.raises(DistilleryError, match="student.model.init_embeddings = .*: its vocabulary \\(120 tokens\\) "
                                              "is not the student tokenizer's \\(70\\)"):
        text_student(other_vocabulary["student"]["model"], prepared, text_assets["teacher"])
    too_wide = validate({"data": {"source": "file:x.csv"}, "teacher": {"model": {"arch": "hf", "pretrained": "x"}},
                         "student": {"model": {**student, "config": {**student["config"], "hidden_size": 64}}}})
    with pytest.raises(DistilleryError, match="hidden_size 64 is wider than the checkpoint's embeddings \\(32\\)"):
        text_student(too_wide["student"]["model"], prepared, text_assets["teacher"])


def test_a_table_with_fewer_rows_than_the_student_has_tokens_is_refused(text_assets, tmp_path):
    from transformers import AutoModelForSequenceClassification

    student = AutoModelForSequenceClassification.from_pretrained(
        tiny_checkpoint(tmp_path / "narrow", text_assets["tok_a"], "bert", hidden=16))
    tables = {"word_embeddings": np.zeros((100, 16), np.float32)}
    with pytest.raises(DistilleryError, match="the student's bert.embeddings.word_embeddings.weight is 120 x 16, "
                                              "the checkpoint's word_embeddings projected 100 x 16"):
        copy_embeddings(student, tables, "student.model.init_embeddings")


@pytest.mark.parametrize("student, message", [
    ({"arch": "mlp"}, "student.model.init_embeddings starts the embeddings of a text student"),
    ({"arch": "hf", "pretrained": "x"}, "student.model.init_embeddings starts the embeddings of a text student built "
                                        "from a config"),
    ({"arch": "hf", "init_from_teacher_layers": [0]}, "not with pretrained or init_from_teacher_layers"),
])
def test_init_embeddings_is_refused_where_the_student_brings_its_own(student, message):
    from distillery.params import validate

    with pytest.raises(DistilleryError, match=message):
        text = student["arch"] == "hf"
        validate({"data": {"source": "file:x.csv" if text else "sklearn:digits"},
                  "teacher": {"model": {"arch": "hf", "pretrained": "x"} if text else {}},
                  "student": {"model": {**student, "init_embeddings": "y"}}})
