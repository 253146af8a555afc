"""Transfer sets (data.transfer): building (rest, source, augmentation), ids, determinism, refusals, and every
method training on labelled ∪ transfer rows."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from distillery.errors import DistilleryError
from distillery.io import write_logits
from distillery.methods.losses import UNLABELLED
from distillery.methods import METHODS, get_method
from distillery.data.prepared import load_prepared
from distillery.training.students import seed_dir, train_students
from distillery.data.text import prepare_text
from distillery.data.augment import shift_image
from distillery.data.transfer import (ORIGINS, augment_texts, build_transfer, jitter_images, load_scored, load_transfer,
                                 save_transfer, with_transfer)

from ..conftest import make_params
from ..methods.training import setup_teacher
from ..text_utils import sentences

AUG = {"augment": 3, "seed": 0, "mask_prob": 0.1, "replace_prob": 0.1, "ngram_prob": 0.25, "ngram_max": 5,
       "mask_token": "[MASK]", "jitter": 2, "noise": 0.0}


# ------------------------------------------------------------------------------------------ augmentation


def test_text_augmentation_is_seeded_deterministic_and_differs_across_seeds():
    texts = {"text": sentences(30)["sentence"].tolist()}
    a, origin_a = augment_texts(texts, AUG)
    b, origin_b = augment_texts(texts, AUG)
    c, _ = augment_texts(texts, {**AUG, "seed": 1})
    assert a == b and np.array_equal(origin_a, origin_b)
    assert a != c
    assert 0 < len(origin_a) <= 3 * 30
    vocabulary = {w for t in texts["text"] for w in t.split()} | {"[MASK]"}
    for variant, row in zip(a["text"], origin_a):
        assert variant != texts["text"][row]
        assert set(variant.split()) <= vocabulary  # masked, replaced by train words, or cut to an n-gram
    assert any("[MASK]" in v for v in a["text"])


def test_text_augmentation_zero_probabilities_give_no_variants():
    texts = {"text": ["a b c", "d e f"]}
    out, origin = augment_texts(texts, {**AUG, "mask_prob": 0.0, "replace_prob": 0.0, "ngram_prob": 0.0})
    assert out == {"text": []} and len(origin) == 0  # every variant equals its sentence: dropped


def test_jitter_shifts_by_at_most_two_pixels_with_zero_fill_and_is_seeded():
    rng = np.random.default_rng(0)
    images = rng.random((5, 8, 8)).astype(np.float32) + 0.5  # no zeros: the fill shows
    out, origin, shifts = jitter_images(images, AUG)
    assert out.shape == (15, 8, 8) and np.array_equal(origin, np.repeat(np.arange(5), 3))
    assert (np.abs(shifts) <= 2).all() and not (shifts == 0).all(axis=1).any()
    for img, row, (dy, dx) in zip(out, origin, shifts):
        assert np.array_equal(img, shift_image(images[row], int(dy), int(dx)))
        assert np.array_equal(np.roll(images[row], (dy, dx), axis=(0, 1))[max(dy, 0): 8 + min(dy, 0),
                                                                           max(dx, 0): 8 + min(dx, 0)],
                              img[max(dy, 0): 8 + min(dy, 0), max(dx, 0): 8 + min(dx, 0)])
        assert (img == 0).sum() == 8 * 8 - (8 - abs(dy)) * (8 - abs(dx))
    again, _, _ = jitter_images(images, AUG)
    other, _, _ = jitter_images(images, {**AUG, "seed": 1})
    assert np.array_equal(out, again) and not np.array_equal(out, other)
    noisy, _, _ = jitter_images(images, {**AUG, "noise": 0.1})
    assert not np.array_equal(noisy, out) and np.abs(noisy - out).max() < 1.0


# ------------------------------------------------------------------------------------------ building (arrays)


def test_digits_jitter_transfer_set_ids_never_collide_and_round_trip(digits, tmp_path):
    params = make_params(data={"transfer": {"augment": 2}})
    transfer = build_transfer(params["data"], digits)
    labelled = np.concatenate([s.ids for s in digits.splits.values()])
    assert len(transfer) == 2 * len(digits.splits["train"].ids)
    assert not np.intersect1d(transfer.ids, labelled).size and len(np.unique(transfer.ids)) == len(transfer)
    assert transfer.ids.min() == transfer.meta["id_offset"] == labelled.max() + 1
    save_transfer(transfer, tmp_path / "transfer")
    loaded = load_transfer(tmp_path / "transfer")
    assert np.array_equal(loaded.ids, transfer.ids) and np.array_equal(loaded.inputs, transfer.inputs)
    assert loaded.meta["counts"] == {"rest": 0, "source": 0, "augment": len(transfer)}
    assert (loaded.as_split().labels == UNLABELLED).all()


def test_off_by_default_gives_an_empty_transfer_set(digits, tmp_path):
    transfer = build_transfer(make_params()["data"], digits)
    assert len(transfer) == 0 and not transfer.meta["enabled"]
    save_transfer(transfer, tmp_path / "t")
    assert load_scored(digits, tmp_path / "t", tmp_path / "none") is None


def test_npz_transfer_source_labels_ignored(digits, tmp_path):
    x = np.random.default_rng(0).integers(0, 255, size=(20, 8, 8)).astype(np.uint8)
    np.savez(tmp_path / "extra.npz", x_train=x[:15], y_train=np.zeros(15, int), x_test=x[15:], y_test=np.zeros(5, int))
    params = make_params(data={"transfer": {"source": "npz:extra.npz"}})
    transfer = build_transfer(params["data"], digits, tmp_path)
    assert len(transfer) == 20 and (transfer.origins == ORIGINS.index("source")).all()
    assert (transfer.source_labels == -1).all()


@pytest.mark.parametrize("name, array", [("extra.npz", "x_train"), ("extra.npz", "x"), ("extra.npy", None)])
def test_a_transfer_source_of_images_alone_needs_no_labels(digits, tmp_path, name, array):
    x = np.random.default_rng(0).integers(0, 255, size=(6, 8, 8)).astype(np.uint8)
    if array:
        np.savez(tmp_path / name, **{array: x})
    else:
        np.save(tmp_path / name, x)
    transfer = build_transfer(make_params(data={"transfer": {"source": f"npz:{name}"}})["data"], digits, tmp_path)
    assert transfer.meta["id_offset"] == 1797  # after the digits' ids 0..1796
    assert transfer.ids.tolist() == list(range(1797, 1803)) and (transfer.source_labels == -1).all()
    np.testing.assert_allclose(transfer.inputs, x / 255.0, rtol=1e-6)


def test_float_transfer_images_beside_pixel_images_are_refused_not_taken_unscaled(digits, tmp_path):
    """The digits are pixels divided to 0..1; a float array's values would be taken as they are (0..255 here)."""
    np.save(tmp_path / "extra.npy", np.full((4, 8, 8), 200.0, np.float32))
    with pytest.raises(DistilleryError, match=re.escape(
            "params.yaml: data.transfer.source: 'npz:extra.npy': its inputs are features, taken as they are, "
            "data.source's are pixels of 0..16 (divided by 16 when loaded): both need the same kind")):
        build_transfer(make_params(data={"transfer": {"source": "npz:extra.npy"}})["data"], digits, tmp_path)


def test_a_transfer_source_without_images_is_refused_naming_the_param(digits, tmp_path):
    np.savez(tmp_path / "extra.npz", images=np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(DistilleryError, match=re.escape(
            f"params.yaml: data.transfer.source: 'npz:extra.npz': {tmp_path / 'extra.npz'}: no images: unlabelled "
            "rows are an .npz's x_train (and x_test), or its x, or a .npy array; it has the arrays ['images']")):
        build_transfer(make_params(data={"transfer": {"source": "npz:extra.npz"}})["data"], digits, tmp_path)


# ------------------------------------------------------------------------------------------ text


@pytest.fixture(scope="module")
def text_source(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    sentences(120).to_csv(root / "s.csv", index=False)
    sentences(10, seed=7).drop(columns="label").to_csv(root / "unlabelled.csv", index=False)
    return root


def text_data(**transfer) -> dict:
    return {"source": "file:s.csv", "text_column": "sentence", "validation_fraction": 0.2, "test_fraction": 0.2,
            "max_train_examples": 30, "transfer": transfer}


def _text_params(**transfer):
    from distillery.params import SCHEMA
    from distillery.schema import validate_block

    return validate_block(text_data(**transfer), SCHEMA["data"], "data", "test")


@pytest.fixture(scope="module")
def text_prepared(text_source, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "prepared"
    prepare_text(_text_params(), out, text_source)
    return load_prepared(out)


def test_rest_and_augmentation_of_text(text_prepared, text_source):
    data = _text_params(rest=True, augment=2, source="file:unlabelled.csv")
    transfer = build_transfer(data, text_prepared, text_source)
    counts = transfer.meta["counts"]
    train = text_prepared.splits["train"]
    sizes = text_prepared.meta["sizes"]
    assert counts["rest"] == 120 - sizes["validation"] - sizes["test"] - 30
    assert counts["source"] == 10 and 0 < counts["augment"] <= 60
    labelled = np.concatenate([s.ids for s in text_prepared.splits.values()])
    assert not np.intersect1d(transfer.ids, labelled).size and len(np.unique(transfer.ids)) == len(transfer)
    rest = transfer.origins == ORIGINS.index("rest")
    assert transfer.ids[rest].max() < 120 and (transfer.source_labels[rest] >= 0).all()  # kept aside, never trained
    assert transfer.ids[~rest].min() == transfer.meta["id_offset"] >= 120
    assert len(transfer.dataset["text"]) == len(transfer)
    again = build_transfer(data, text_prepared, text_source)
    assert again.dataset == transfer.dataset and np.array_equal(again.ids, transfer.ids)
    assert len(train.ids) == 30


@pytest.mark.parametrize("transfer, message", [
    ({"source": "file:missing.csv"}, "data.transfer.source: 'file:missing.csv': file not found"),
    ({"source": "file:empty.csv"}, "no rows"),
    ({"source": "file:other.csv"}, "data.transfer.source: 'file:other.csv' ("),
    ({"source": "file:dupes.csv"}, "data.transfer.source: all 30 transfer rows are duplicates of labelled train rows"),
])
def test_bad_text_transfer_sources_are_refused_naming_the_param(transfer, message, text_prepared, text_source):
    (text_source / "empty.csv").write_text("sentence\n")
    (text_source / "other.csv").write_text("review\ngood\n")
    (text_source / "dupes.csv").write_text(
        "sentence\n" + "\n".join(text_prepared.splits["train"].dataset["text"]) + "\n")
    with pytest.raises(DistilleryError) as info:
        build_transfer(_text_params(**transfer), text_prepared, text_source)
    assert message in str(info.value)
    if transfer["source"] == "file:other.csv":
        assert "has no column ['sentence'] (data.text_column)" in str(info.value)


def test_rest_with_nothing_left_out_is_refused(text_prepared, text_source):
    data = {**_text_params(rest=True), "max_train_examples": 100}
    with pytest.raises(DistilleryError, match=r"data.transfer.rest: true, but data.max_train_examples = 100 leaves no"):
        build_transfer(data, text_prepared, text_source)


@pytest.mark.parametrize("groups, message", [
    ({"data": {"transfer": {"augment": -1}}}, "data.transfer.augment = -1: must be >= 0"),
    ({"data": {"transfer": {"rest": True}}}, "data.transfer.rest = true with data.source = 'sklearn:digits'"),
    ({"data": {"transfer": {"source": "file:x.csv"}}}, "the transfer source must be of the same kind"),
    ({"data": {"transfer": {"mask_prob": 1.5}}}, "data.transfer.mask_prob = 1.5: must be a probability"),
    ({"data": {"transfer": {"labelled_repeats": 0}}}, "data.transfer.labelled_repeats = 0"),
    ({"data": {"source": "file:t.csv", "feature_columns": "all", "transfer": {"augment": 1}}},
     "data.transfer.augment = 1 with data.feature_columns (a numeric table): variants are made of texts"),
    ({"data": {"source": "file:t.csv", "feature_columns": "all", "transfer": {"source": "npz:more.npz"}}},
     "the transfer rows are one file with the same feature columns, file:<path>"),
])
def test_bad_transfer_params_are_refused_at_validation(groups, message):
    with pytest.raises(DistilleryError) as info:
        make_params(**groups)
    assert message in str(info.value)


def test_a_table_s_transfer_rows_are_encoded_and_scaled_as_its_prepared_rows(tmp_path):
    """Unlabelled rows of a numeric table (its feature columns, a category among them) as a transfer source."""
    import pandas as pd

    from distillery.data.prepare import prepare

    i = np.arange(80)
    rows = pd.DataFrame({"id": 100 + i, "size": (i % 7) * 1.5, "weight": 1000.0 * (i % 5) + i,
                         "colour": np.where(i % 3, "red", "blue"), "kind": np.where(i % 2, "pear", "apple")})
    rows.iloc[:60].to_csv(tmp_path / "t.csv", index=False)
    unlabelled = rows.drop(columns=["kind"]).assign(colour=lambda df: df["colour"].where(df.index != 70, "green"))
    unlabelled.to_csv(tmp_path / "more.csv", index=False)  # its first 60 rows are the labelled file's, unlabelled
    data = make_params(data={"source": "file:t.csv", "feature_columns": "all", "label_column": "kind",
                             "label_names": ["apple", "pear"], "categorical": "onehot",
                             "transfer": {"source": "file:more.csv"}})["data"]
    prepared = prepare(data, tmp_path / "prepared", tmp_path)
    transfer = build_transfer(data, prepared, tmp_path)
    assert transfer.meta["counts"]["source"] == 80 and transfer.inputs.shape == (80, *prepared.input_shape)
    assert transfer.ids.min() == transfer.meta["id_offset"] == 60  # after the prepared ids: the file's positions
    train = prepared.splits["train"]
    np.testing.assert_array_equal(transfer.inputs[train.ids], train.inputs)  # row for row, bit for bit
    assert transfer.meta["duplicates_of_labelled"] == len(train.ids)
    blue, red = (prepared.meta["features"].index(f"colour_{c}") for c in ("blue", "red"))
    scaling = prepared.meta["scaling"]  # an unseen category: all zeros before scaling, as in predict
    np.testing.assert_allclose(transfer.inputs[70, [blue, red]],
                               [-scaling["mean"][k] / scaling["scale"][k] for k in (blue, red)], rtol=1e-6)
    unlabelled.drop(columns=["weight"]).to_csv(tmp_path / "more.csv", index=False)
    with pytest.raises(DistilleryError, match=r"data.transfer.source: 'file:more.csv': .*missing feature column\(s\) "
                                              r"\['weight'\]"):
        build_transfer(data, prepared, tmp_path)


def test_jitter_without_shift_or_noise_is_refused(digits):
    with pytest.raises(DistilleryError, match="data.transfer.jitter: 0 with data.transfer.noise = 0"):
        build_transfer(make_params(data={"transfer": {"augment": 1, "jitter": 0}})["data"], digits)


# ------------------------------------------------------------------------------------------ training on the union


def _fake_transfer_logits(transfer, num_labels: int) -> np.ndarray:
    rng = np.random.default_rng(transfer.ids)
    return rng.normal(size=(len(transfer), num_labels)).astype(np.float32) * 3


def test_union_has_labelled_rows_repeated_then_transfer_rows_unlabelled(digits):
    transfer = build_transfer(make_params(data={"transfer": {"augment": 1}})["data"], digits)
    union = with_transfer(digits, transfer, labelled_repeats=2)
    train = digits.splits["train"]
    n = len(train.ids)
    got = union.splits["train"]
    assert len(got.ids) == 2 * n + len(transfer)
    assert np.array_equal(got.labels[: 2 * n], np.tile(train.labels, 2)) and (got.labels[2 * n:] == UNLABELLED).all()
    assert union.splits["validation"] is digits.splits["validation"]


TINY_TRAIN = {"seeds": [0], "max_steps": 4, "eval_steps": 4, "logging_steps": 2, "save_steps": 4,
              "batch_size": 32}
CNN_T = {"model": {"arch": "cnn", "channels": [4, 8], "hidden_size": 8}, "train": {"max_steps": 10, "eval_steps": 5}}
CNN_S = {"model": {"arch": "cnn", "channels": [2, 4], "hidden_size": 8}}
EXTRA = {
    "born_again": {"student": {"model": {"hidden_sizes": [32], "dropout": 0.2}}, "kd": {"born_again": {"generations": 2}}},
    "at": {"teacher": CNN_T, "student": CNN_S},
}
# tinybert: text only; multi_teacher: refused with a transfer set; those of the teacher's or the student's generated
# sequences (seqkd, on_policy_gkd): language models only
LOGIT_METHODS = [name for name, method in METHODS.items() if name not in ("tinybert", "multi_teacher")
                 and not {"generated", "student_samples"} & method.needs]


@pytest.fixture(scope="module")
def teachers(digits, tmp_path_factory):
    root = tmp_path_factory.mktemp("teachers")
    return {"mlp": setup_teacher(digits, root / "mlp", teacher={"train": {"max_steps": 10, "eval_steps": 5}}),
            "cnn": setup_teacher(digits, root / "cnn", teacher=CNN_T)}


@pytest.mark.parametrize("name", LOGIT_METHODS)
def test_every_method_trains_on_labelled_and_transfer_rows(name, digits, teachers, tmp_path, monkeypatch):
    root = teachers["cnn" if name == "at" else "mlp"]
    monkeypatch.chdir(tmp_path)
    groups = {**EXTRA.get(name, {}), "train": TINY_TRAIN, "data": {"transfer": {"augment": 1}}}
    groups["kd"] = {**groups.get("kd", {}), "method": name}
    params = make_params(**groups)
    transfer = build_transfer(params["data"], digits)
    out = tmp_path / "students"
    train_students(get_method(name), params, digits, out, logits_dir=root / "logits",
                   teacher_dir=root / "models/teacher",
                   transfer=(transfer, _fake_transfer_logits(transfer, digits.num_labels)))
    assert (seed_dir(out, 0) / "config.json").exists()


def test_multi_teacher_with_a_transfer_set_is_refused(digits, teachers, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    groups = dict(train=TINY_TRAIN, teachers={"b": {"seed": 1}}, kd={"method": "multi_teacher"},
                  data={"transfer": {"augment": 1}})
    with pytest.raises(DistilleryError, match="kd.method = 'multi_teacher' with data.transfer"):
        make_params(**groups)
    params = make_params(**{**groups, "data": {}})
    params["data"]["transfer"]["augment"] = 1
    transfer = build_transfer(params["data"], digits)
    with pytest.raises(DistilleryError, match="teachers.<name> are not scored on the transfer set"):
        train_students(get_method("multi_teacher"), params, digits, tmp_path / "s",
                       logits_dir=teachers["mlp"] / "logits", teacher_dir=teachers["mlp"] / "models/teacher",
                       transfer=(transfer, _fake_transfer_logits(transfer, digits.num_labels)))


def test_transfer_rows_change_the_kd_student_and_transfer_only_data_trains(digits, teachers, tmp_path, monkeypatch):
    """The transfer rows reach the loss (other weights than without them); the hard term sees labelled rows only."""
    monkeypatch.chdir(tmp_path)
    root = teachers["mlp"]
    params = make_params(train=TINY_TRAIN, data={"transfer": {"augment": 1}})
    transfer = build_transfer(params["data"], digits)
    kw = dict(logits_dir=root / "logits", teacher_dir=root / "models/teacher")
    train_students(get_method("kd"), params, digits, tmp_path / "with",
                   transfer=(transfer, _fake_transfer_logits(transfer, digits.num_labels)), **kw)
    train_students(get_method("kd"), params, digits, tmp_path / "without", **kw)
    from safetensors.numpy import load_file

    a = load_file(seed_dir(tmp_path / "with", 0) / "model.safetensors")
    b = load_file(seed_dir(tmp_path / "without", 0) / "model.safetensors")
    assert any(not np.array_equal(a[k], b[k]) for k in a)


def test_text_student_trains_on_the_union(text_prepared, text_source, tmp_path, monkeypatch):
    from ..text_utils import text_params, tiny_checkpoint, train_tokenizer

    monkeypatch.chdir(tmp_path)
    tok = train_tokenizer(sentences(200)["sentence"].tolist(), tmp_path / "tok")
    teacher = tiny_checkpoint(tmp_path / "teacher", tok, layers=1, hidden=16)
    groups = text_params(teacher, tok, **text_data(rest=True, augment=1))
    groups["train"] = {**groups["train"], "seeds": [0], "max_steps": 3, "eval_steps": 3, "save_steps": 3}
    params = make_params(**groups)
    transfer = build_transfer(params["data"], text_prepared, text_source)
    save_transfer(transfer, tmp_path / "transfer")
    transfer = load_transfer(tmp_path / "transfer")
    (tmp_path / "logits").mkdir()
    for split in ("train", "validation"):
        ids = text_prepared.splits[split].ids
        write_logits(tmp_path / "logits" / f"{split}.parquet", ids, np.random.default_rng(0).normal(size=(len(ids), 2)))
    write_logits(tmp_path / "transfer.parquet", transfer.ids, _fake_transfer_logits(transfer, 2))
    (tmp_path / "tl").mkdir()
    (tmp_path / "tl" / "transfer.parquet").write_bytes((tmp_path / "transfer.parquet").read_bytes())
    scored = load_scored(text_prepared, tmp_path / "transfer", tmp_path / "tl")
    folders = {Path(f["filename"]).parent for split in text_prepared.splits.values()
               for f in split.dataset.cache_files} | {tmp_path / "transfer"}
    before = {folder: sorted(p.name for p in folder.iterdir()) for folder in folders}
    union = with_transfer(text_prepared, scored[0])
    assert {folder: sorted(p.name for p in folder.iterdir()) for folder in folders} == before  # no cache files
    assert union.splits["train"].dataset.num_rows == 30 + len(transfer)
    assert union.splits["train"].dataset["label"][-1] == UNLABELLED
    train_students(get_method("kd"), params, text_prepared, tmp_path / "students", logits_dir=tmp_path / "logits",
                   transfer=scored)
    assert (seed_dir(tmp_path / "students", 0) / "config.json").exists()


def test_report_setting_says_what_the_students_saw_and_the_teachers_agreement(digits):
    from distillery.evaluation.report import setting_table

    params = make_params(data={"transfer": {"augment": 2, "labelled_repeats": 2}})
    metrics = {"teacher": {"params": 1000}, "kd": {"params": 100}}
    summary = {"rows": 2442, "origins": {"rest": 0, "source": 0, "augment": 2442}, "labelled_rows": 2442,
               "agreement": 0.9512, "by_origin": {"augment": {"rows": 2442, "agreement": 0.9512}}}
    table = setting_table(params, digits.meta, metrics, summary)
    assert ("| transfer set | the distilled students saw 1,221 labelled rows (2× each per pass) and 2,442 transfer "
            "rows without labels (2,442 augmented variants of the labelled rows)") in table
    assert "agrees with the label the row had in its source on 95.1% of the 2,442 transfer rows" in table
    assert "transfer set" not in setting_table(params, digits.meta, metrics)


def test_ceiling_puts_the_rest_rows_labels_back(text_prepared, text_source, tmp_path):
    from distillery.data.transfer import with_source_labels

    transfer = build_transfer(_text_params(rest=True, augment=1), text_prepared, text_source)
    save_transfer(transfer, tmp_path / "t")
    loaded = load_transfer(tmp_path / "t")
    everything = with_source_labels(text_prepared, loaded)
    rest = loaded.origins == ORIGINS.index("rest")
    train = everything.splits["train"]
    assert len(train.ids) == 30 + rest.sum() and (train.labels >= 0).all()
    assert train.dataset["label"][30:] == loaded.source_labels[rest].tolist()
    assert train.dataset["text"][30:] == [t for t, r in zip(loaded.dataset["text"], rest) if r]
