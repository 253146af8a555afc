"""Feature scaling: scikit-learn's scalers fitted on train rows only, what ``auto`` picks per source, and a
table on wildly different scales where scaling turns a teacher no better than chance into one that beats
the hard-label students."""
from __future__ import annotations

import numpy as np
import pandas as pd

from distillery.data.prepare import prepare
from distillery.data.prepared import Split
from distillery.data.scaling import resolve, scale_splits

from ..conftest import make_params


def splits(test_row):
    return {"train": Split(np.array([0, 1]), np.array([[1.0, 10.0], [3.0, 30.0]]), np.array([0, 1])),
            "test": Split(np.array([2]), np.array([test_row]), np.array([0]))}


def test_standard_and_minmax_use_train_statistics_only():
    scaled, record = scale_splits(splits([5.0, 0.0]), "standard", pixels=False)
    # train: means (1+3)/2 = 2 and (10+30)/2 = 20, population std 1 and 10
    assert record == {"param": "standard", "scaler": "standard", "fitted_on_train_rows": 2,
                      "mean": [2.0, 20.0], "scale": [1.0, 10.0]}
    assert scaled["train"].inputs.tolist() == [[-1.0, -1.0], [1.0, 1.0]]
    assert scaled["test"].inputs.tolist() == [[3.0, -2.0]]  # (5-2)/1, (0-20)/10
    assert scaled["test"].inputs.dtype == np.float32
    scaled, record = scale_splits(splits([5.0, 0.0]), "minmax", pixels=False)
    assert record["data_min"] == [1.0, 10.0] and record["data_max"] == [3.0, 30.0]
    assert scaled["test"].inputs.tolist() == [[2.0, -0.5]]  # (5-1)/2, (0-10)/20: outside 0..1 is kept
    _, other = scale_splits(splits([-1e6, 1e9]), "minmax", pixels=False)
    assert other == record  # a different test row changes nothing


def test_auto_leaves_pixels_and_standardizes_features():
    assert resolve("auto", pixels=True) == "none" and resolve("auto", pixels=False) == "standard"
    assert resolve("minmax", pixels=True) == "minmax" and resolve("none", pixels=False) == "none"
    kept, record = scale_splits(splits([5.0, 0.0]), "auto", pixels=True)
    assert record == {"param": "auto", "scaler": "none"}
    assert kept["test"].inputs.tolist() == [[5.0, 0.0]] and kept["test"].inputs.dtype == np.float32


def test_npz_features_are_standardized_and_uint8_images_kept(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3)) * [1.0, 1000.0, 0.01] + [0.0, 5e4, 0.0]
    y = np.arange(50) % 2
    np.savez(tmp_path / "f.npz", x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    prepared = prepare(make_params(data={"source": "npz:f.npz"})["data"], tmp_path / "f", tmp_path)
    train = prepared.splits["train"]
    assert prepared.meta["scaling"]["scaler"] == "standard"
    np.testing.assert_allclose(prepared.meta["scaling"]["mean"], x[train.ids].mean(0))
    np.testing.assert_allclose(train.inputs.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(train.inputs.std(0), 1, atol=1e-5)
    test = prepared.splits["test"]
    np.testing.assert_allclose(test.inputs, (x[test.ids] - x[train.ids].mean(0)) / x[train.ids].std(0), rtol=1e-5)

    images = rng.integers(0, 256, size=(50, 4, 4), dtype=np.uint8)
    np.savez(tmp_path / "i.npz", x_train=images[:40], y_train=y[:40], x_test=images[40:], y_test=y[40:])
    prepared = prepare(make_params(data={"source": "npz:i.npz"})["data"], tmp_path / "i", tmp_path)
    assert prepared.meta["scaling"] == {"param": "auto", "scaler": "none"}
    test = prepared.splits["test"]
    np.testing.assert_array_equal(test.inputs, (images[test.ids] / 255.0).astype(np.float32))


def test_digits_default_is_unscaled_and_minmax_is_fitted_on_train(digits, tmp_path):
    assert digits.meta["scaling"] == {"param": "auto", "scaler": "none"}
    prepared = prepare(make_params(data={"scaling": "minmax"})["data"], tmp_path / "p")
    train = prepared.splits["train"]
    assert prepared.meta["scaling"]["fitted_on_train_rows"] == len(train.ids) == 1221
    np.testing.assert_array_equal(train.ids, digits.splits["train"].ids)
    varying = digits.splits["train"].inputs.reshape(1221, -1).std(0) > 0
    flat = train.inputs.reshape(1221, -1)
    np.testing.assert_allclose(flat.min(0)[varying], 0, atol=1e-6)
    np.testing.assert_allclose(flat.max(0)[varying], 1, atol=1e-6)


def test_a_changed_test_row_leaves_the_statistics_and_train_features_alone(tmp_path):
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"a": rng.normal(size=60), "b": 1000 * rng.normal(size=60), "label": np.arange(60) % 2})
    df.iloc[:45].to_csv(tmp_path / "train.csv", index=False)
    prepared = {}
    for name, b in (("before", df["b"]), ("after", df["b"].where(df.index != 50, 1e9))):
        df.assign(b=b).iloc[45:].to_csv(tmp_path / "test.csv", index=False)
        data = make_params(data={"source": "files", "files": {"train": "train.csv", "test": "test.csv"},
                                 "feature_columns": "all"})["data"]
        prepared[name] = prepare(data, tmp_path / name, tmp_path)
    before, after = prepared["before"], prepared["after"]
    assert before.meta["scaling"] == after.meta["scaling"]
    np.testing.assert_allclose(before.meta["scaling"]["mean"], df.loc[before.splits["train"].ids, ["a", "b"]].mean())
    for split in ("train", "validation"):
        np.testing.assert_array_equal(before.splits[split].inputs, after.splits[split].inputs)
    changed = after.splits["test"].ids == 50
    assert not np.array_equal(before.splits["test"].inputs[changed], after.splits["test"].inputs[changed])
    np.testing.assert_array_equal(before.splits["test"].inputs[~changed], after.splits["test"].inputs[~changed])


def wildly_scaled_table(n: int = 600) -> pd.DataFrame:
    """Three classes from non-linear functions of six standard-normal features, stored on scales from 0.01 to
    1000 and one offset by 5000: the classes are learnable, but only once the features are scaled."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8))
    scores = np.stack([x[:, 0] * x[:, 1], x[:, 2] + x[:, 3] ** 2 - 1, np.sin(2 * x[:, 4]) + x[:, 5]], axis=1)
    stored = x * [1000, 1, 0.01, 1, 50, 1, 1, 1] + [0, 0, 0, 5000, 0, 0, 0, 0]
    return pd.DataFrame(stored, columns=[f"f{i}" for i in range(8)]).assign(label=scores.argmax(1))


def validation_accuracies(tmp_path, scaling: str) -> tuple[float, float]:
    """Teacher and mean hard-student accuracy on validation, trained as the pipeline trains them."""
    from distillery.evaluation import metrics as M
    from distillery.models.inference import predict_logits
    from distillery.methods import HARD
    from distillery.models.zoo import load_model
    from distillery.training.students import seed_dir, train_students
    from distillery.training.teacher import build_teacher

    root = tmp_path / scaling
    params = make_params(
        data={"source": "file:t.csv", "feature_columns": "all", "scaling": scaling},
        teacher={"model": {"hidden_sizes": [128, 128]},
                 "train": {"max_steps": 1000, "eval_steps": 50, "early_stopping_patience": 5, "learning_rate": 0.001}},
        student={"model": {"hidden_sizes": [4]}},
        train={"max_steps": 300, "eval_steps": 100, "save_steps": 1000},
    )
    prepared = prepare(params["data"], root / "prepared", tmp_path)
    build_teacher(params, prepared, root / "teacher")
    train_students(HARD, params, prepared, root / "hard")
    val = prepared.splits["validation"]
    teacher = M.accuracy(predict_logits(load_model(root / "teacher"), val.inputs), val.labels)
    hard = [M.accuracy(predict_logits(load_model(seed_dir(root / "hard", s)), val.inputs), val.labels)
            for s in params["train"]["seeds"]]
    return teacher, float(np.mean(hard))


def test_scaling_gives_a_teacher_that_beats_the_hard_students(tmp_path, monkeypatch, one_torch_thread):
    from distillery.evaluation.report import teacher_warning

    monkeypatch.chdir(tmp_path)  # training checkpoints go to ./.cache
    wildly_scaled_table().to_csv(tmp_path / "t.csv", index=False)
    raw_teacher, raw_hard = validation_accuracies(tmp_path, "none")
    teacher, hard = validation_accuracies(tmp_path, "auto")
    assert raw_teacher < 0.5  # three classes: unscaled, the teacher is little better than chance
    assert teacher > raw_teacher + 0.25
    assert teacher > hard + 0.05
    assert teacher_warning({"teacher": {"validation_accuracy": teacher}, "hard": {"validation_accuracy": hard}}) is None
