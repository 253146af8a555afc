"""``python -m distillery.predict``: the predictions table checked by hand, the command on a saved model in a
subprocess (its own CPU numerics), and its refusals: exit 2, a one-line error, no output file."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from distillery.data.inputs import read_rows, save_record
from distillery.errors import DistilleryError
from distillery.models.zoo import build_model
from distillery.predict import output_kind, predictions_table, project_numerics, write_table

from .conftest import REPO
from .repo_utils import MAKE, run

RECORD = {"kind": "array", "pixel_max": 16.0, "label_names": ["cat", "dog", "owl"], "shape": [2, 3],
          "scaling": {"param": "standard", "scaler": "standard", "mean": [1.0] * 6, "scale": [2.0] * 6}}


def test_predictions_table_is_softmax_argmax_and_a_column_per_label():
    logits = np.array([[0.0, math.log(3.0)], [2.0, 2.0]], np.float32)
    table = predictions_table(np.array([7, 9]), logits, ["no", "yes"])
    assert table.columns.tolist() == ["id", "label", "probability", "p_no", "p_yes"]
    assert table["id"].tolist() == [7, 9] and table["label"].tolist() == ["yes", "no"]  # a tie: the first label
    np.testing.assert_allclose(table[["p_no", "p_yes"]].to_numpy(), [[0.25, 0.75], [0.5, 0.5]], rtol=1e-7)
    np.testing.assert_allclose(table["probability"], [0.75, 0.5], rtol=1e-7)
    raw = predictions_table(np.array([7, 9]), logits, ["no", "yes"], scores="logits")
    assert raw.columns.tolist()[3:] == ["logit_no", "logit_yes"]
    np.testing.assert_array_equal(raw[["logit_no", "logit_yes"]].to_numpy(), logits)


def test_a_missing_value_is_null_in_jsonl_which_has_no_nan(tmp_path):
    """A helper's answers without a reference were written as `"reference": NaN`, which strict JSON parsers refuse."""
    import json

    answers = pd.DataFrame({"id": [1, 2], "answer": ["It is 42", "7"], "reference": ["It is 42", None]})
    answers.loc[1, "reference"] = np.nan  # what pandas holds for a missing cell
    write_table(answers, tmp_path / "a.jsonl")
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    assert lines[1] == '{"id": 2, "answer": "7", "reference": null}'
    assert [json.loads(line, parse_constant=lambda c: pytest.fail(c)) for line in lines][0]["reference"] == "It is 42"


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl", ".parquet"])
def test_every_output_format_reads_back_every_bit(tmp_path, suffix):
    logits = np.array([[14.067723274230957, -27.1], [1.0, 0.0]], np.float32)
    table = predictions_table(np.array([3, 4]), logits, ["a", "b"])
    write_table(table, tmp_path / f"p{suffix}")
    readers = {".csv": pd.read_csv, ".tsv": lambda p: pd.read_csv(p, sep="\t"),
               ".jsonl": lambda p: pd.read_json(p, lines=True, precise_float=True), ".parquet": pd.read_parquet}
    read = readers[suffix](tmp_path / f"p{suffix}")
    assert read["label"].tolist() == ["a", "a"] and read["p_a"].iloc[1] == pytest.approx(math.e / (1 + math.e))
    np.testing.assert_array_equal(read[["p_a", "p_b"]].to_numpy(), table[["p_a", "p_b"]].to_numpy())  # 6.9e-19 too
    raw = predictions_table(np.array([3, 4]), logits, ["a", "b"], scores="logits")
    write_table(raw, tmp_path / f"r{suffix}")
    read = readers[suffix](tmp_path / f"r{suffix}")
    np.testing.assert_array_equal(read[["logit_a", "logit_b"]].to_numpy(np.float32), logits)
    with pytest.raises(DistilleryError, match=r"p.xlsx: the output must end in .csv, .tsv, .jsonl, .parquet"):
        output_kind(tmp_path / "p.xlsx")


def test_numerics_are_the_projects_or_the_defaults(tmp_path):
    assert project_numerics(tmp_path / "params.yaml") == ("avx2", 1)
    (tmp_path / "params.yaml").write_text("reproducible_cpu: baseline\ncpu_threads: 2\n")
    assert project_numerics(tmp_path / "params.yaml") == ("baseline", 2)


@pytest.fixture
def saved(tmp_path):
    """An (untrained) MLP saved as the pipeline saves one, with its inputs record, and 5 rows of images."""
    torch.manual_seed(0)
    model = build_model({"arch": "mlp", "hidden_sizes": [8], "dropout": 0.0}, [2, 3], RECORD["label_names"])
    model.save_pretrained(tmp_path / "model")
    save_record(RECORD, tmp_path / "model")
    np.savez(tmp_path / "rows.npz", x=np.arange(30, dtype=np.uint8).reshape(5, 2, 3) % 17, id=[5, 4, 3, 2, 1])
    return tmp_path, model


def test_the_command_predicts_each_row_by_id_as_the_model_does(saved):
    tmp_path, model = saved
    result = run(["python", "-m", "distillery.predict", "model", "rows.npz", "out.parquet", "--scores", "logits"],
                 tmp_path)
    assert "out.parquet: 5 rows predicted by model" in result.stdout
    out = pd.read_parquet(tmp_path / "out.parquet")
    rows = read_rows(RECORD, tmp_path / "rows.npz")
    np.testing.assert_array_equal(rows.inputs[0], (np.arange(6).reshape(2, 3) / 16.0 - 1.0) / 2.0)
    with torch.inference_mode():
        expected = model.eval()(features=torch.from_numpy(rows.inputs)).logits.numpy()
    assert out["id"].tolist() == [5, 4, 3, 2, 1]
    np.testing.assert_allclose(out[["logit_cat", "logit_dog", "logit_owl"]].to_numpy(), expected, rtol=1e-5, atol=1e-6)
    assert out["label"].tolist() == [RECORD["label_names"][i] for i in expected.argmax(axis=1)]


@pytest.mark.parametrize("args, message", [
    (["model", "rows.csv", "out.csv"], "rows.csv: this model takes arrays of shape [2, 3]: give a .npy or .npz file, or image "
                                        "files (.png"),
    (["model", "rows.npz", "out.xlsx"], "out.xlsx: the output must end in .csv, .tsv, .jsonl, .parquet"),
    (["rows", "rows.npz", "out.csv"], "rows: no inputs.json: not a model saved by the pipeline"),
    (["model", "rows.npz", "out.csv", "--batch-size", "0"], "--batch-size 0: must be >= 1"),
    (["model", "rows.npz", "out.csv", "--threads", "-1"], "--threads -1: must be >= 0 (0: one per core)"),
    (["model", "rows.npz", "out.csv", "--device", "xla"], "--device xla: no xla device here"),
    (["model", "rows.npz", "out.csv", "--device", "gpu7"], "--device gpu7: "),
    (["missing", "rows.npz", "out.csv"], "missing: no such model folder"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(saved, args, message):
    tmp_path, _ = saved
    (tmp_path / "rows").mkdir()
    result = run(["python", "-m", "distillery.predict", *args], tmp_path, check=False)
    assert result.returncode == 2 and f"error: {message}" in result.stderr, result.stderr
    assert not list(tmp_path.glob("out.*"))


def test_the_make_target_names_what_it_needs():
    result = run([*MAKE, "predict"], REPO, check=False)
    assert result.returncode == 2 and "error: give INPUT=<rows file> OUTPUT=<predictions file>" in result.stderr


def test_a_language_model_refuses_the_classifier_options(tmp_path):
    save_record({"kind": "causal_lm"}, (tmp_path / "lm").mkdir() or tmp_path / "lm")
    result = run(["python", "-m", "distillery.predict", "lm", "p.jsonl", "out.csv", "--scores", "logits"], tmp_path,
                 check=False)
    assert result.returncode == 2 and "error: lm: a language model answers prompts: --array, --scores, --int8 " \
        "and --pixels-as-given are for classifiers" in result.stderr, result.stderr


def test_int8_predicts_as_evaluate_scores_int8_students(saved):
    """--int8: the model quantized by evaluate's own quantize_int8, on CPU only."""
    from distillery.evaluation.quantization import quantize_int8
    from distillery.models.inference import predict_logits
    from distillery.predict import predict

    tmp_path, model = saved
    ids, logits, _, _ = predict(tmp_path / "model", tmp_path / "rows.npz", device="cpu", int8=True)
    rows = read_rows(RECORD, tmp_path / "rows.npz")
    expected = predict_logits(quantize_int8(model), rows.inputs, device=torch.device("cpu"))
    np.testing.assert_array_equal(logits, expected)
    assert not np.array_equal(logits, predict_logits(model, rows.inputs, device=torch.device("cpu")))  # int8 moved
    with pytest.raises(DistilleryError, match=r"--int8: int8 models run on CPU \(as evaluate scores them\), not "
                                              r"--device cuda"):
        predict(tmp_path / "model", tmp_path / "rows.npz", device="cuda", int8=True)


def test_channels_last_images_predict_as_the_same_images_channels_first(tmp_path):
    """A CNN of a channels-last source (inputs.json: channels last, shape channels first): new images as the source
    holds them, (N, H, W, C), are moved as prepare moved it; given channels first they predict the same."""
    record = {"kind": "array", "pixel_max": 255.0, "channels": "last", "label_names": ["a", "b"], "shape": [3, 4, 5],
              "scaling": {"param": "auto", "scaler": "none"}}
    torch.manual_seed(0)
    model = build_model({"arch": "cnn", "channels": [4], "hidden_size": 8}, [3, 4, 5], record["label_names"])
    model.save_pretrained(tmp_path / "model")
    save_record(record, tmp_path / "model")
    hwc = np.random.default_rng(0).integers(0, 256, (6, 4, 5, 3), dtype=np.uint8)
    np.save(tmp_path / "hwc.npy", hwc)
    np.save(tmp_path / "chw.npy", np.moveaxis(hwc, -1, 1))
    for name in ("hwc", "chw"):
        run(["python", "-m", "distillery.predict", "model", f"{name}.npy", f"{name}.csv", "--scores", "logits"],
            tmp_path)
    last, first = pd.read_csv(tmp_path / "hwc.csv"), pd.read_csv(tmp_path / "chw.csv")
    pd.testing.assert_frame_equal(last, first)
    with torch.inference_mode():
        chw = torch.from_numpy(np.moveaxis(hwc, -1, 1) / np.float32(255))
        expected = model.eval()(features=chw).logits.numpy()
    np.testing.assert_allclose(last[["logit_a", "logit_b"]].to_numpy(), expected, rtol=1e-5, atol=1e-6)


def test_a_folder_of_png_files_predicts_as_the_same_images_in_an_npy_with_each_file_named(tmp_path):
    from PIL import Image

    record = {"kind": "array", "pixel_max": 255.0, "channels": "last", "label_names": ["a", "b"], "shape": [3, 4, 5],
              "scaling": {"param": "auto", "scaler": "none"}}
    torch.manual_seed(0)
    build_model({"arch": "cnn", "channels": [4], "hidden_size": 8}, [3, 4, 5], record["label_names"]).save_pretrained(
        tmp_path / "model")
    save_record(record, tmp_path / "model")
    hwc = np.random.default_rng(0).integers(0, 256, (3, 4, 5, 3), dtype=np.uint8)
    np.save(tmp_path / "hwc.npy", hwc)
    (tmp_path / "photos").mkdir()
    for name, image in zip(["b.png", "c.png", "a.png"], hwc[[1, 2, 0]]):
        Image.fromarray(image).save(tmp_path / "photos" / name)
    (tmp_path / "photos/notes.txt").write_text("not an image")
    for given in ("hwc.npy", "photos"):
        run(["python", "-m", "distillery.predict", "model", given, f"{given}.csv", "--scores", "logits"], tmp_path)
    from_npy, from_files = pd.read_csv(tmp_path / "hwc.npy.csv"), pd.read_csv(tmp_path / "photos.csv")
    assert from_files.columns.tolist()[:3] == ["id", "file", "label"]
    assert from_files["file"].tolist() == ["a.png", "b.png", "c.png"] and from_files["id"].tolist() == [0, 1, 2]
    pd.testing.assert_frame_equal(from_files.drop(columns="file"), from_npy)


def test_pixels_divided_already_are_refused_unless_taken_as_given(saved):
    """A model of 0..255 pixels (here 0..16) given pixels all within 0..1: exit 2, nothing written, the advice; with
    --pixels-as-given they are predicted as they are."""
    tmp_path, _ = saved
    np.save(tmp_path / "divided.npy", np.full((5, 2, 3), 0.25))
    result = run(["python", "-m", "distillery.predict", "model", "divided.npy", "out.csv"], tmp_path, check=False)
    assert result.returncode == 2 and "error: divided.npy: every pixel lies within 0..1, but the model learnt from " \
        "pixels of 0..16 as its source holds them (prepare divides them by 16): if these are divided already, " \
        "multiply them by 16 first; to predict on them as they are, pass --pixels-as-given" in result.stderr, \
        result.stderr
    assert not list(tmp_path.glob("out.*"))
    run(["python", "-m", "distillery.predict", "model", "divided.npy", "out.csv", "--pixels-as-given"], tmp_path)
    assert len(pd.read_csv(tmp_path / "out.csv")) == 5
    save_record({**RECORD, "pixel_max": None}, tmp_path / "model")
    result = run(["python", "-m", "distillery.predict", "model", "divided.npy", "other.csv", "--pixels-as-given"],
                 tmp_path, check=False)
    assert result.returncode == 2 and "error: --pixels-as-given: for models of image pixels (0..255, 0..16); model " \
        "takes images of other values" in result.stderr, result.stderr
