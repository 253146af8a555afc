"""tinybert: the embedding, hidden-state and attention terms by hand (padding masked), the layer mapping, the
checks on models and params, and tiny text students trained in-process with a live BERT teacher."""
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

from distillery.data.prepare import prepare
from distillery.errors import DistilleryError
from distillery.methods import METHODS, StepInputs
from distillery.methods.kd import kd_terms
from distillery.methods.tinybert import attention_mse, hidden_mse, tinybert_terms, uniform_layer_map
from distillery.training.teacher import build_teacher

from ..conftest import deep_merge, make_params
from ..text_utils import sentences, text_params, tiny_checkpoint, train_tokenizer
from .training import logged, same_weights, train, weights

METHOD = METHODS["tinybert"]
HP = {"T": 4.0, "alpha": 0.5, "weight": 1.0, "layer_map": None, "intermediate_steps": 0}
MASK = np.array([[1, 1, 1, 1], [1, 1, 0, 0]])


def _linear(w, b):
    layer = nn.Linear(w.shape[1], w.shape[0]).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(w))
        layer.bias.copy_(torch.tensor(b))
    return layer


def _maps(rng, shape):
    x = np.exp(rng.normal(size=shape))
    return x / x.sum(axis=-1, keepdims=True)


def test_hidden_mse_matches_numpy_over_the_unpadded_tokens():
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 4, 5))
    w, b = rng.normal(size=(5, 3)), rng.normal(size=5)
    squares = ((s @ w.T + b - t) ** 2).sum(axis=-1)  # per token, summed over the teacher's width
    expected = squares[MASK == 1].sum() / (MASK.sum() * 5)
    got = hidden_mse(torch.tensor(s), torch.tensor(t), _linear(w, b), torch.tensor(MASK))
    assert got.item() == pytest.approx(expected, rel=1e-12)
    assert hidden_mse(torch.tensor(s), torch.tensor(t), _linear(w, b)).item() == pytest.approx(
        squares.sum() / (8 * 5), rel=1e-12)  # no mask: every position
    t_padded = t.copy()
    t_padded[1, 2:] = 100.0  # what padding positions hold does not matter
    assert hidden_mse(torch.tensor(s), torch.tensor(t_padded), _linear(w, b), torch.tensor(MASK)).item() == \
        pytest.approx(expected, rel=1e-12)


def test_attention_mse_matches_numpy_per_head_over_pairs_of_tokens():
    rng = np.random.default_rng(1)
    s, t = _maps(rng, (2, 3, 4, 4)), _maps(rng, (2, 3, 4, 4))
    pairs = MASK[:, :, None] * MASK[:, None, :]  # (batch, query, key): both tokens real
    per_head = [((s[:, h] - t[:, h]) ** 2)[pairs == 1].mean() for h in range(3)]
    got = attention_mse(torch.tensor(s), torch.tensor(t), torch.tensor(MASK))
    assert got.item() == pytest.approx(np.mean(per_head), rel=1e-12)
    assert attention_mse(torch.tensor(s), torch.tensor(t)).item() == pytest.approx(((s - t) ** 2).mean(), rel=1e-12)
    # another head count: the head-averaged maps are compared
    t4 = _maps(rng, (2, 4, 4, 4))
    expected = ((s.mean(axis=1) - t4.mean(axis=1)) ** 2)[pairs == 1].mean()
    assert attention_mse(torch.tensor(s), torch.tensor(t4), torch.tensor(MASK)).item() == \
        pytest.approx(expected, rel=1e-12)


def test_uniform_layer_map_is_m_times_n_over_m():
    assert uniform_layer_map(2, 4) == [2, 4]
    assert uniform_layer_map(4, 12) == [3, 6, 9, 12]
    assert uniform_layer_map(3, 3) == [1, 2, 3]
    assert uniform_layer_map(3, 4) == [1, 2, 4]  # rounded down


def test_terms_weighting_and_the_intermediate_stage(batch):
    s, t, y = (torch.tensor(a) for a in batch)
    emb, hidden, attn = (torch.tensor(v, dtype=torch.float64) for v in (0.5, 2.0, 0.25))
    kd = kd_terms(s, t, y, 4.0, 0.3)
    both = tinybert_terms(s, t, y, emb, hidden, attn, 4.0, 0.3, weight=2.0, intermediate_only=False)
    assert both.loss.item() == pytest.approx(kd.loss.item() + 2.0 * 2.75, rel=1e-12)
    assert set(both.terms) == {"ce", "kd", "emb", "hidden", "attn"}
    assert tinybert_terms(s, t, y, emb, hidden, attn, 4.0, 0.3, 2.0, intermediate_only=True).loss.item() == 2.75


def _bert(layers, hidden, heads, seed=0):
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=2 * hidden, max_position_embeddings=16, attn_implementation="eager")
    return BertForSequenceClassification(config).eval()


def _run(model, ids, mask):
    return model(input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)


IDS = torch.tensor([[2, 5, 6, 7, 9, 3], [2, 8, 4, 3, 0, 0]])
ATTENTION_MASK = (IDS != 0).long()


def test_identical_teacher_and_student_give_zero_terms():
    model = _bert(2, 8, 2)
    out = _run(model, IDS, ATTENTION_MASK)
    helpers = METHOD.make_helpers(model, model, HP)
    for projection in helpers.values():
        with torch.no_grad():
            projection.weight.copy_(torch.eye(8))
            projection.bias.zero_()
    inputs = StepInputs(student=out, labels=torch.tensor([0, 1]), teacher_logits=out.logits, teacher=out,
                        helpers=helpers, inputs={"input_ids": IDS, "attention_mask": ATTENTION_MASK})
    result = METHOD.loss(inputs, HP)
    for name in ("emb", "hidden", "attn", "kd"):
        assert result.terms[name].item() == pytest.approx(0.0, abs=1e-12), name
    assert result.loss.item() == pytest.approx(0.5 * result.terms["ce"].item(), rel=1e-6)


def test_loss_maps_student_layers_onto_teacher_layers_under_the_padding_mask():
    student, teacher = _bert(2, 8, 2, seed=1), _bert(4, 16, 4, seed=2)  # other width, depth and head count
    s, t = _run(student, IDS, ATTENTION_MASK), _run(teacher, IDS, ATTENTION_MASK)
    helpers = METHOD.make_helpers(student, teacher, HP)
    assert helpers["embedding"].weight.shape == helpers["hidden"].weight.shape == (16, 8)
    inputs = StepInputs(student=s, labels=torch.tensor([0, 1]), teacher_logits=t.logits, teacher=t, helpers=helpers,
                        inputs={"input_ids": IDS, "attention_mask": ATTENTION_MASK})
    for layer_map in (None, [1, 3]):
        got = METHOD.loss(inputs, {**HP, "layer_map": layer_map}).terms
        g = layer_map or [2, 4]  # the uniform default for 2 student and 4 teacher layers
        emb = hidden_mse(s.hidden_states[0], t.hidden_states[0], helpers["embedding"], ATTENTION_MASK)
        hidden = sum(hidden_mse(s.hidden_states[m], t.hidden_states[g[m - 1]], helpers["hidden"], ATTENTION_MASK)
                     for m in (1, 2))
        attn = sum(attention_mse(s.attentions[m - 1], t.attentions[g[m - 1] - 1], ATTENTION_MASK) for m in (1, 2))
        assert torch.equal(got["emb"], emb) and torch.equal(got["hidden"], hidden) and torch.equal(got["attn"], attn)
    # a map shorter than the student distils only the layers it lists
    one = METHOD.loss(inputs, {**HP, "layer_map": [4]}).terms
    assert torch.equal(one["hidden"], hidden_mse(s.hidden_states[1], t.hidden_states[4], helpers["hidden"],
                                                 ATTENTION_MASK))


@pytest.mark.parametrize("layer_map, message", [
    ([1, 2, 3], r"kd.tinybert.layer_map = \[1, 2, 3\] maps 3 student layers; the student has 2"),
    ([2, 5], r"kd.tinybert.layer_map = \[2, 5\]: the teacher has layers 1..4, not \[5\]"),
])
def test_check_refuses_layer_maps_that_do_not_fit(layer_map, message):
    import re

    problem = METHOD.check(_bert(2, 8, 2), _bert(4, 8, 2), {**HP, "layer_map": layer_map})
    assert re.fullmatch(message, problem)
    assert METHOD.check(_bert(2, 8, 2), _bert(4, 8, 2), HP) is None
    assert "the student has 4 layers and the teacher only 2" in METHOD.check(_bert(4, 8, 2), _bert(2, 8, 2), HP)
    assert METHOD.check(_bert(4, 8, 2), _bert(2, 8, 2), {**HP, "layer_map": [1, 1, 2, 2]}) is None


def test_params_refuse_array_models_and_bad_layer_maps():
    with pytest.raises(DistilleryError, match=r"kd.method = 'tinybert': needs transformer \(arch: hf\) teacher and "
                                              r"student; teacher.model.arch = 'mlp', student.model.arch = 'mlp'"):
        make_params(kd={"method": "tinybert"})
    with pytest.raises(DistilleryError, match=r"kd.tinybert.layer_map = \[0, 2\]: must be a list of positive"):
        make_params(kd={"method": "tinybert", "tinybert": {"layer_map": [0, 2]}})
    with pytest.raises(DistilleryError, match=r"kd.tinybert.weight = -1.0: must be >= 0"):
        make_params(kd={"method": "tinybert", "tinybert": {"weight": -1.0}})


# --- tiny text students, trained in-process with the live teacher --------------------------------------------


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    """48 sentences prepared, a 4-layer BERT teacher (used as is) and two tokenizers."""
    root = tmp_path_factory.mktemp("tinybert")
    df = sentences(48)
    tok = train_tokenizer(df["sentence"].tolist(), root / "tok", vocab_size=80)
    other = train_tokenizer(df["sentence"].tolist(), root / "other", vocab_size=60, lowercase=False)
    checkpoint = tiny_checkpoint(root / "checkpoint", tok, "bert", layers=4, hidden=32)
    df.to_csv(root / "all.csv", index=False)
    groups = _groups(checkpoint, tok)
    params = make_params(**groups)
    prepared = prepare(params["data"], root / "prepared", root)
    build_teacher(params, prepared, root / "models/teacher")
    return {"root": root, "prepared": prepared, "checkpoint": checkpoint, "tok": tok, "other": other}


def _groups(checkpoint: Path, tokenizer: Path, **overrides) -> dict:
    base = deep_merge(text_params(checkpoint, tokenizer, source="file:all.csv"), {
        "teacher": {"model": {"max_length": 16}, "finetune": False},
        "student": {"model": {"max_length": 16, "config": {"n_layers": 2}}},  # DistilBERT, 16 wide, 2 heads
        "train": {"seeds": [0], "batch_size": 8, "max_steps": 10, "eval_steps": 10, "logging_steps": 5,
                  "save_steps": 10},
    })
    return deep_merge(base, overrides)


def _train(text, name, tokenizer=None, **overrides):
    groups = _groups(text["checkpoint"], tokenizer or text["tok"], **overrides)
    method = groups.get("kd", {}).get("method")
    return train(method, text["prepared"], text["root"], name, **groups)


def test_trains_end_to_end_and_logs_its_terms(text, monkeypatch):
    monkeypatch.chdir(text["root"])
    out = _train(text, "tinybert", kd={"method": "tinybert", "alpha": 0.5, "tinybert": {"intermediate_steps": 5}})
    loss, ce, kd, emb, hidden, attn = (logged(text["root"], "tinybert", k)
                                       for k in ("loss", "ce", "kd", "emb", "hidden", "attn"))
    assert len(emb) == 2 and all(np.isfinite(x).all() and (x >= 0).all() for x in (emb, hidden, attn))
    assert (emb > 0).all() and (hidden > 0).all()  # attn may log as 0: near-uniform maps, 6 decimals
    np.testing.assert_allclose(loss[0], emb[0] + hidden[0] + attn[0], rtol=1e-3)  # steps 1-5: the first stage
    np.testing.assert_allclose(loss[1], 0.5 * ce[1] + 0.5 * kd[1] + emb[1] + hidden[1] + attn[1], rtol=1e-3)
    assert not any(k.startswith(("embedding", "hidden", "helpers")) for k in weights(out)), "W_e, W_h are not saved"


def test_alpha_and_weight_zero_is_the_hard_student(text, monkeypatch):
    """tinybert runs the student's attention eagerly (to return the maps); the hard student must too, since
    PyTorch's fused attention rounds differently and draws its dropout otherwise."""
    monkeypatch.chdir(text["root"])
    eager = {"student": {"model": {"config": {"attn_implementation": "eager"}}}}
    tiny = _train(text, "tb0", kd={"method": "tinybert", "alpha": 0.0, "tinybert": {"weight": 0.0}}, **eager)
    hard = _train(text, "hard", **eager)
    assert same_weights(weights(tiny), weights(hard))


def test_models_that_do_not_fit_are_refused_before_training(text, monkeypatch):
    monkeypatch.chdir(text["root"])
    with pytest.raises(DistilleryError, match=r"kd.method = 'tinybert': kd.tinybert.layer_map = \[1, 2, 3\] maps 3 "
                                              r"student layers; the student has 2"):
        _train(text, "long", kd={"method": "tinybert", "tinybert": {"layer_map": [1, 2, 3]}})
    with pytest.raises(DistilleryError, match=r"kd.method = 'tinybert' runs the teacher on the student's batches, so "
                                              r"the student must use the teacher's tokenizer"):
        _train(text, "retokenized", tokenizer=text["other"], kd={"method": "tinybert"})
    assert not (text["root"] / "long").exists() and not (text["root"] / "retokenized").exists()
