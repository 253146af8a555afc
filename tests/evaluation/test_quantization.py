"""Quantized students (student.quantize: int8): int8 weights, predictions close to fp32, size, evaluate blocks,
report section."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from distillery.evaluation import quantization as Q
from distillery.errors import DistilleryError
from distillery.evaluation.evaluate import evaluate
from distillery.models.inference import predict_logits
from distillery.methods import HARD, get_method
from distillery.models.zoo import build_model, load_model
from distillery.evaluation.report import render_report
from distillery.evaluation.speed import int8_speed
from distillery.training.students import seed_dir, train_students

from ..conftest import make_params
from ..training.test_students import fake_teacher_logits


def mlp(hidden, dropout=0.0):
    torch.manual_seed(0)
    return build_model({"arch": "mlp", "hidden_sizes": hidden, "dropout": dropout}, [8, 8], [str(i) for i in range(10)])


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    """A tiny run trained in-process: a teacher (untrained is enough to score against), KD students on fake
    teacher logits and hard students, two seeds each (tests/test_students.py's recipe)."""
    root = tmp_path_factory.mktemp("quant")
    params = make_params()
    (root / "logits").mkdir()
    fake_teacher_logits(digits, root / "logits")
    mlp([32]).save_pretrained(root / "teacher")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # training checkpoints go to ./.cache
        train_students(get_method("kd"), params, digits, root / "kd", None, root / "logits")
        train_students(HARD, params, digits, root / "hard")
    return root


def test_int8_predictions_agree_with_fp32(trained, digits):
    """Per-row symmetric int8 rounds each weight and each activation by at most half a step, 1/254 (0.4 %) of
    its row's largest magnitude; through two layers the logits of this student move by about 1 % of the
    largest logit (measured 0.8-1.0 %; 2 % allowed), and the top-1 class changes only where two classes were
    nearly tied (agreement measured 0.986-1.0 on the four tiny students; 0.97 required)."""
    model = load_model(seed_dir(trained / "hard", 0))
    quantized = Q.quantize_int8(model)
    inputs = digits.splits["test"].inputs
    fp32, int8 = predict_logits(model, inputs), predict_logits(quantized, inputs)
    assert (fp32.argmax(1) == int8.argmax(1)).mean() >= 0.97
    scale = np.abs(fp32).max()
    assert np.abs(int8 - fp32).max() <= 0.02 * scale
    assert np.abs(int8 - fp32).max() > 0  # it did change something: the weights really are rounded
    assert all(not Q.is_int8(p) for p in model.parameters())  # the fp32 model is left as it was


def test_linear_weights_are_int8_and_convolutions_stay_fp32():
    quantized = Q.quantize_int8(mlp([16]))
    linears = [m for m in quantized.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 2
    for layer in linears:
        assert layer.weight.qdata.dtype == torch.int8 and layer.weight.qdata.shape == layer.weight.shape
        assert layer.weight.scale.dtype == torch.float32 and layer.weight.scale.shape == (layer.out_features, 1)
        assert layer.bias.dtype == torch.float32 and not Q.is_int8(layer.bias)
    assert Q.int8_parameters(quantized) == 64 * 16 + 16 * 10

    torch.manual_seed(0)
    cnn = build_model({"arch": "cnn", "channels": [4, 8], "hidden_size": 16, "dropout": 0.0}, [8, 8], list("abc"))
    quantized = Q.quantize_int8(cnn)
    convs = [m for m in quantized.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(type(c.weight) is torch.nn.Parameter and c.weight.dtype == torch.float32 for c in convs)
    assert Q.int8_parameters(quantized) == 32 * 16 + 16 * 3  # the dense layers only


def test_size_on_disk_is_about_four_times_smaller_and_the_file_holds_the_model(tmp_path):
    """Wide layers: int8 weights plus a float32 scale and an int8 zero point per row of 256 weights is
    (256 + 5) / (4 * 256) of fp32, 3.92x smaller; the biases stay fp32."""
    model = mlp([256, 256])
    model.save_pretrained(tmp_path / "fp32")
    quantized = Q.quantize_int8(model)
    size = Q.quantized_size(tmp_path / "fp32", quantized)
    assert size["weights_bytes_fp32"] == (tmp_path / "fp32" / "model.safetensors").stat().st_size
    assert 3.6 < size["weights_bytes_fp32"] / size["weights_bytes"] < 4.0
    weights = 64 * 256 + 256 * 256 + 256 * 10
    rows, biases = 256 + 256 + 10, 256 + 256 + 10
    assert size["tensor_bytes_fp32"] == 4 * (weights + biases)
    assert size["tensor_bytes"] == weights + rows * (4 + 1) + 4 * biases  # int8, fp32 scale + int8 zero point
    config = (tmp_path / "fp32" / "config.json").stat().st_size
    assert size["size_bytes"] == size["weights_bytes"] + config

    path = tmp_path / "int8.safetensors"
    Q.save_quantized(quantized, path)
    with safe_open(str(path), "pt") as f:
        dtypes = {k: f.get_tensor(k).dtype for k in f.keys()}
    linear = [k for k in dtypes if k.endswith("_weight_qdata")]
    assert len(linear) == 3 and all(dtypes[k] == torch.int8 for k in linear)
    assert not any(k.endswith(".weight") for k in dtypes)  # no fp32 copy of a Linear weight
    assert b"pickle" not in path.read_bytes()[:8] and path.read_bytes()[8:9] == b"{"  # a safetensors header
    reloaded = Q.load_quantized(mlp([256, 256]), path)
    x = torch.randn(7, 64)
    assert torch.equal(reloaded(features=x).logits, quantized(features=x).logits)


def test_quantize_param_defaults_to_none_and_refuses_unknown_values():
    assert make_params()["student"]["quantize"] == "none"
    assert make_params(student={"quantize": "int8"})["student"]["quantize"] == "int8"
    with pytest.raises(DistilleryError, match=r"student\.quantize = 'int4': must be one of 'none', 'int8'"):
        make_params(student={"quantize": "int4"})


def test_evaluate_with_int8_adds_blocks_and_none_adds_nothing(trained, digits):
    students = {"kd": trained / "kd", "hard": trained / "hard"}
    plain = evaluate(make_params(), digits, trained / "teacher", students)
    assert set(plain.metrics) == {"teacher", "kd", "hard", "comparison"}
    names = np.asarray(digits.label_names, dtype=object)  # predictions.csv names the classes, as dvc plots shows them
    assert plain.predictions["label"].tolist() == names[digits.splits["test"].labels].tolist()
    for model in ("teacher", "kd_seed0", "hard_seed0"):
        assert plain.predictions[model].tolist() == names[plain.test_logits[model].argmax(-1)].tolist()
    int8 = evaluate(make_params(student={"quantize": "int8"}), digits, trained / "teacher", students)
    assert list(int8.metrics) == ["teacher", "kd", "kd_int8", "hard", "hard_int8", "comparison"]
    # the fp32 results are untouched, byte for byte
    for name in ("teacher", "kd", "hard", "comparison"):
        assert json.dumps(int8.metrics[name]) == json.dumps(plain.metrics[name]), name
    assert set(int8.test_logits) == set(plain.test_logits) and int8.predictions.equals(plain.predictions)
    for kind in ("kd", "hard"):
        block, fp32 = int8.metrics[f"{kind}_int8"], plain.metrics[kind]
        assert {"accuracy", "accuracy_std", "macro_f1", "nll", "ece", "agreement", "agreement_fp32",
                "accuracy_drop", "accuracy_drop_std", "logit_max_abs_diff", "roc_auc_macro"} <= set(block)
        assert block["seeds"] == 2 and block["params"] == fp32["params"]
        assert block["int8_params"] == 64 * 8 + 8 * 10
        assert block["accuracy_drop"] == pytest.approx(fp32["accuracy"] - block["accuracy"])
        assert block["agreement_fp32"] >= 0.95 and abs(block["accuracy_drop"]) <= 0.02
        assert block["weights_bytes"] < block["weights_bytes_fp32"] and block["size_bytes"] < fp32["size_bytes"]
        assert block["tensor_bytes_fp32"] == 4 * fp32["params"] and block["tensor_bytes"] < fp32["params"] * 2
        assert all(v is None or isinstance(v, (int, float)) for v in block.values())

    student = load_model(seed_dir(trained / "kd", 0))
    speed = int8_speed(student, digits.splits["test"].inputs, batch_size=32, repeats=2, warmup=1)
    assert speed["device"].startswith("cpu") and speed["batch_size"] == 32
    assert speed["student_int8"]["latency_ms"] > 0 and speed["speedup_throughput"] > 0
    assert speed["speedup_latency"] == pytest.approx(speed["student"]["latency_ms"]
                                                     / speed["student_int8"]["latency_ms"])

    base_speed = {"device": "cpu", "batch_size": 512, "repeats": 30,
                  "teacher": {"latency_ms": 0.4, "throughput_per_s": 1e5},
                  "student": {"latency_ms": 0.1, "throughput_per_s": 8e5}, "speedup_latency": 4.0,
                  "speedup_throughput": 8.0}
    without = render_report(make_params(), digits.meta, plain.metrics, base_speed, [])
    assert "int8" not in without
    text = render_report(make_params(student={"quantize": "int8"}), digits.meta, int8.metrics,
                         {**base_speed, "int8": speed}, [])
    section = text[text.index("## Quantized students (int8)"):]
    kd, kd_int8 = int8.metrics["kd"], int8.metrics["kd_int8"]
    assert f"| distilled: kd (2 seeds) | {kd['accuracy']:.4f} ± {kd['accuracy_std']:.4f} | " \
           f"{kd_int8['accuracy']:.4f} ± {kd_int8['accuracy_std']:.4f} |" in section
    assert "| hard labels (2 seeds) |" in section and "latency, batch 1 (ms)" in section
    assert "592 of the student's 610 parameters are int8; biases stay fp32" in section
    for block in (b for b in section.split("\n\n") if b.startswith("|")):
        assert len({line.count("|") for line in block.splitlines()}) == 1, block


def test_tiny_bert_student_is_quantized_the_same_way(tmp_path):
    """A Hugging Face text student: every Linear (attention, feed-forward, pooler, classifier) int8, the
    embeddings and LayerNorm fp32, on (batch, tokens, hidden) activations; built offline."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ..text_utils import sentences, tiny_checkpoint, train_tokenizer

    texts = sentences(64)["sentence"].tolist()
    tok = train_tokenizer(texts, tmp_path / "tok")  # the same every run: the bounds below are measured on it
    # init_range 0.1: weights 5x BERT's default, so the logits spread (0.4 apart) and the int8 error shows
    path = tiny_checkpoint(tmp_path / "bert", tok, "bert", layers=2, init_range=0.1)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    quantized = Q.quantize_int8(model)
    linears = [m for m in quantized.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 2 * 6 + 2 and all(m.weight.qdata.dtype == torch.int8 for m in linears)
    assert not Q.is_int8(quantized.bert.embeddings.word_embeddings.weight)
    assert quantized.bert.embeddings.LayerNorm.weight.dtype == torch.float32
    batch = AutoTokenizer.from_pretrained(path)(texts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        fp32, int8 = model(**batch).logits, quantized(**batch).logits
    assert (fp32.argmax(1) == int8.argmax(1)).float().mean() >= 0.9
    # each of the 2 x 6 quantized matmuls adds the rounding error of the MLP test, and attention's softmax and
    # LayerNorm pass it on: 3.7 % of the largest logit measured with 7-bit activations (1.5 % with 8 bits, which
    # overflow on AVX2); 5 % allowed
    assert 0 < (int8 - fp32).abs().max() <= 0.05 * fp32.abs().max()

    # the evaluate stage's text paths: length-grouped inference on CPU and the fp32/int8 timing
    import datasets

    from distillery.models.inference import predict_text_logits

    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenized = datasets.Dataset.from_dict(dict(tokenizer(texts)))
    cpu = torch.device("cpu")
    grouped = predict_text_logits(quantized, tokenizer, tokenized, batch_size=8, device=cpu)
    # not bit-equal to the padded batch above: padding changes fp32 attention in the 7th digit, which can move
    # an activation across an int8 rounding boundary (one step, 1/127 of its token's largest value)
    assert np.abs(grouped - int8.numpy()).max() <= 0.03 * fp32.abs().max().item()
    assert (grouped.argmax(1) == fp32.numpy().argmax(1)).mean() >= 0.9
    split = type("Split", (), {"ids": np.arange(len(texts)), "dataset": datasets.Dataset.from_dict({"text": texts})})
    speed = int8_speed(model, split, batch_size=8, repeats=2, warmup=1, tokenizer=tokenizer)
    assert speed["student_int8"]["throughput_per_s"] > 0 and speed["speedup_latency"] > 0
