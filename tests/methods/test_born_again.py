"""born_again: the loss by hand, generations trained on each other's logits, their initial weights, resume,
the check on the architecture, and the generations block of evaluate and the report."""
import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score

from distillery.training import students as S
from distillery.errors import DistilleryError
from distillery.evaluation.evaluate import evaluate, score_generations
from distillery.models.inference import predict_logits
from distillery.io import read_logits
from distillery.methods import METHODS, StepInputs
from distillery.methods.born_again import born_again_terms
from distillery.methods.kd import kd_terms
from distillery.models.zoo import build_model, load_model
from distillery.evaluation.report import render_report
from distillery.training.runs import CHECKPOINT_ROOT, FINISHED_MODEL, seeded, train_once
from distillery.training.students import generations_root, seed_dir

from ..conftest import make_params
from ..training.test_students import fake_teacher_logits
from .reference import np_log_softmax, np_softmax
from .training import logged, same_weights, train, weights

SAME = {"teacher": {"model": {"hidden_sizes": [16], "dropout": 0.0}}, "student": {"model": {"hidden_sizes": [16]}}}
SPEC = {"arch": "mlp", "hidden_sizes": [16], "dropout": 0.0}


def ban(**kd):
    return {**SAME, "kd": {"method": "born_again", **kd}}


def test_loss_is_hintons_kd_on_the_previous_generations_logits(batch):
    s, t, y = batch
    T, alpha = 3.0, 0.3
    p_t = np_softmax(t / T)
    kl = (p_t * (np.log(p_t) - np_log_softmax(s / T))).sum(axis=1).mean()
    ce = -np_log_softmax(s)[np.arange(len(y)), y].mean()
    got = born_again_terms(torch.tensor(s), torch.tensor(t), torch.tensor(y), T, alpha)
    assert got.loss.item() == pytest.approx((1 - alpha) * ce + alpha * T * T * kl, rel=1e-12)
    assert got.terms["kd"].item() == pytest.approx(T * T * kl, rel=1e-12)
    want = kd_terms(torch.tensor(s), torch.tensor(t), torch.tensor(y), T, alpha)
    assert torch.equal(got.loss, want.loss) and got.terms.keys() == want.terms.keys()
    same = born_again_terms(torch.tensor(s), torch.tensor(s), torch.tensor(y), T, alpha)
    assert same.terms["kd"].item() == pytest.approx(0.0, abs=1e-12)


def test_the_method_adapter_reads_the_targets_the_trainer_gives():
    from transformers.modeling_outputs import SequenceClassifierOutput

    s, t, y = torch.randn(5, 3), torch.randn(5, 3), torch.tensor([0, 1, 2, 1, 0])
    got = METHODS["born_again"].loss(StepInputs(student=SequenceClassifierOutput(logits=s), labels=y,
                                                teacher_logits=t), {"T": 2.0, "alpha": 0.7, "generations": 3})
    assert torch.equal(got.loss, kd_terms(s, t, y, 2.0, 0.7).loss)


def test_students_must_have_the_teachers_architecture_and_generations_at_least_one():
    with pytest.raises(DistilleryError, match=(
            r"kd.method = 'born_again': the students are generations of the teacher's architecture: set "
            r"student.model to teacher.model \(student.model.hidden_sizes \[8\] vs teacher.model.hidden_sizes "
            r"\[32\]; student.model.dropout 0.0 vs teacher.model.dropout 0.2\)")):
        make_params(kd={"method": "born_again"})
    with pytest.raises(DistilleryError, match=r"kd.method = 'born_again': .*teacher.checkpoint"):
        make_params(**{**ban(), "teacher": {"checkpoint": "some/model", "model": SAME["teacher"]["model"]}})
    with pytest.raises(DistilleryError, match=r"kd.born_again.generations = 0: must be >= 1"):
        make_params(**ban(born_again={"generations": 0}))
    assert make_params(**ban())["kd"]["born_again"]["generations"] == 2


class Spy:
    """Wraps ``students.train_once``: records each call's initial weights, target logits and whether its run was
    already finished; raises at call number ``fail_at``."""

    def __init__(self, monkeypatch, fail_at=None):
        self.calls, self.fail_at = [], fail_at
        monkeypatch.setattr(S, "train_once", self)

    def __call__(self, run_dir, make_model, seed, **kwargs):
        if len(self.calls) + 1 == self.fail_at:
            raise KeyboardInterrupt("killed")
        seeded(seed)  # as train_once does before make_model
        self.calls.append({
            "run_dir": run_dir, "finished": (run_dir / FINISHED_MODEL).is_dir(),
            "init": {k: v.clone() for k, v in make_model().state_dict().items()},
            "train_targets": targets(kwargs["train_data"]), "eval_targets": targets(kwargs["eval_data"]),
        })
        return train_once(run_dir, make_model, seed, **kwargs)


def targets(data) -> np.ndarray:
    """The target logits a training dataset holds (arrays: ``TensorDictDataset``; text: ``datasets.Dataset``)."""
    columns = getattr(data, "columns", None)
    if isinstance(columns, dict):
        return columns["teacher_logits"].numpy().copy()
    return np.array(data["teacher_logits"], dtype=np.float32)


@pytest.fixture(scope="module")
def root(digits, tmp_path_factory):
    root = tmp_path_factory.mktemp("born_again")
    (root / "logits").mkdir()
    fake_teacher_logits(digits, root / "logits")
    return root


@pytest.fixture(scope="module")
def two_generations(digits, root):
    """born_again with the default 2 generations, 2 seeds × 40 steps each, and what each generation was given."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        spy = Spy(mp)
        out = train("born_again", digits, root, "ban", **ban())
    return out, spy.calls


def initial(seed):
    seeded(seed)
    return build_model(SPEC, [8, 8], [str(i) for i in range(10)]).state_dict()


def test_generation_two_learns_from_generation_one(digits, root, two_generations):
    out, calls = two_generations
    assert len(calls) == 4  # seed 0: generations 1, 2; seed 1: generations 1, 2
    train_split, val_split = digits.splits["train"], digits.splits["validation"]
    stored = read_logits(root / "logits/train.parquet", train_split.ids, digits.num_labels)
    for i, seed in ((0, 0), (2, 1)):
        first, second = calls[i], calls[i + 1]
        assert np.array_equal(first["train_targets"], stored)
        previous = load_model(seed_dir(generations_root(out, 1), seed))
        np.testing.assert_allclose(second["train_targets"], predict_logits(previous, train_split.inputs), atol=1e-6)
        np.testing.assert_allclose(second["eval_targets"], predict_logits(previous, val_split.inputs), atol=1e-6)
        assert same_weights(first["init"], initial(seed))  # the hard student's initial weights
        assert same_weights(second["init"], initial(seed + 1000))
        assert first["run_dir"] != second["run_dir"]
        assert not same_weights(weights(out, seed), weights(generations_root(out, 1), seed))
    assert sorted(p.name for p in out.iterdir()) == ["generations", "seed_0", "seed_1"]
    assert not any((root / CHECKPOINT_ROOT / "born_again").iterdir())  # every generation's run directory removed


def test_curves_of_every_generation_relate_as_the_formula_says(root, two_generations):
    loss, ce, kd = (logged(root, "ban", k) for k in ("loss", "ce", "kd"))
    assert len(loss) == 4 and np.isfinite(kd).all()
    np.testing.assert_allclose(loss, 0.5 * ce + 0.5 * kd, rtol=1e-3)
    first = root / "ban-live" / "generations" / "1" / "seed_0" / "plots/metrics/kd.tsv"
    assert first.is_file()


def test_one_generation_is_kd_with_the_teachers_architecture(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    one = train("born_again", digits, root, "ban1", **ban(born_again={"generations": 1}))
    kd = train("kd", digits, root, "kd", **SAME)
    for seed in (0, 1):
        assert same_weights(weights(one, seed), weights(kd, seed))
    assert not (one / "generations").exists()


def test_alpha_zero_generation_one_is_the_hard_student(digits, root, monkeypatch):
    monkeypatch.chdir(root)
    zero = train("born_again", digits, root, "ban0", **ban(alpha=0.0))
    hard = train(None, digits, root, "hard", **SAME)
    for seed in (0, 1):
        assert same_weights(weights(generations_root(zero, 1), seed), weights(hard, seed))
        assert not same_weights(weights(zero, seed), weights(hard, seed))


def test_a_killed_run_reuses_the_finished_generation(digits, root, two_generations, monkeypatch):
    monkeypatch.chdir(root)
    Spy(monkeypatch, fail_at=2)  # killed when seed 0's generation 2 starts
    with pytest.raises(KeyboardInterrupt):
        train("born_again", digits, root, "killed", **ban())
    assert not (root / "killed").exists()
    spy = Spy(monkeypatch)
    out = train("born_again", digits, root, "killed", **ban())
    assert [c["finished"] for c in spy.calls] == [True, False, False, False]
    for seed in (0, 1):
        assert same_weights(weights(out, seed), weights(two_generations[0], seed))
        assert same_weights(weights(generations_root(out, 1), seed), weights(generations_root(two_generations[0], 1),
                                                                              seed))


def test_score_generations_by_hand():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 4, size=30)
    logits = {s: [rng.normal(size=(30, 4)) * 2 for _ in range(3)] for s in (0, 1)}

    def by_hand(z):
        p = np_softmax(z)
        pred, conf = p.argmax(1), p.max(1)
        hit = pred == labels
        which = np.clip(np.ceil(conf * 15).astype(int) - 1, 0, 14)
        ece = sum(abs(hit[which == b].mean() - conf[which == b].mean()) * (which == b).mean()
                  for b in range(15) if (which == b).any())
        f1 = f1_score(labels, pred, labels=np.arange(4), average="macro", zero_division=0)
        return np.array([hit.mean(), f1, -np.log(p[np.arange(30), labels]).mean(), ece])

    got = score_generations(logits, labels, 4, 15)
    assert list(got) == ["generation_1", "generation_2", "generation_3", "ensemble"]
    ensembles = {s: np.log(np.mean([np_softmax(z) for z in logits[s]], axis=0)) for s in (0, 1)}
    for name, per_seed in [(f"generation_{k}", {s: logits[s][k - 1] for s in (0, 1)}) for k in (1, 2, 3)] \
            + [("ensemble", ensembles)]:
        rows = np.stack([by_hand(per_seed[s]) for s in (0, 1)])
        for j, key in enumerate(("accuracy", "macro_f1", "nll", "ece")):
            assert got[name][key] == pytest.approx(rows[:, j].mean(), rel=1e-9, abs=1e-12), (name, key)
            assert got[name][f"{key}_std"] == pytest.approx(rows[:, j].std(ddof=1), rel=1e-9, abs=1e-12)


def test_evaluate_scores_every_generation_and_the_report_shows_them(digits, tmp_path):
    def save(path, init_seed):
        seeded(init_seed)
        build_model(SPEC, [8, 8], [str(i) for i in range(10)]).save_pretrained(path)

    save(tmp_path / "teacher", 99)
    for seed in (0, 1):
        save(seed_dir(tmp_path / "hard", seed), seed)
        save(seed_dir(tmp_path / "plain", seed), seed + 10)
        save(seed_dir(generations_root(tmp_path / "kd", 1), seed), seed + 20)
        save(seed_dir(tmp_path / "kd", seed), seed + 30)
    params = make_params(**ban())
    got = evaluate(params, digits, tmp_path / "teacher", {"kd": tmp_path / "kd", "hard": tmp_path / "hard"}).metrics
    plain = evaluate(params, digits, tmp_path / "teacher", {"kd": tmp_path / "plain", "hard": tmp_path / "hard"})
    assert "generations" not in plain.metrics

    test = digits.splits["test"]
    per_seed = {s: [predict_logits(load_model(seed_dir(r, s)), test.inputs)
                    for r in (generations_root(tmp_path / "kd", 1), tmp_path / "kd")] for s in (0, 1)}
    accuracy = lambda z: (z.argmax(1) == test.labels).mean()  # noqa: E731
    first = [accuracy(per_seed[s][0]) for s in (0, 1)]
    ensemble = [accuracy(np.mean([np_softmax(z.astype(np.float64)) for z in per_seed[s]], axis=0)) for s in (0, 1)]
    block = got["generations"]
    assert block["generation_1"]["accuracy"] == pytest.approx(np.mean(first))
    assert block["generation_1"]["accuracy_std"] == pytest.approx(np.std(first, ddof=1))
    assert block["ensemble"]["accuracy"] == pytest.approx(np.mean(ensemble))
    for key in ("accuracy", "macro_f1", "nll", "ece", "accuracy_std", "nll_std"):
        assert block["generation_2"][key] == pytest.approx(got["kd"][key], rel=1e-12)  # the last is the student
    assert got["kd"]["size_bytes"] == got["hard"]["size_bytes"]  # the generations are not the student's size

    text = render_report(params, digits.meta, got, None, [])
    section = text[text.index("### Generations"):]
    assert "used 2× the hard-label students' training budget** (80 steps against 40)" in section
    g1 = block["generation_1"]
    assert f"| generation 1 | {g1['accuracy']:.4f} ± {g1['accuracy_std']:.4f} |" in section
    assert "| generation 2 (the distilled students) |" in section
    assert "| ensemble of generations 1-2 (mean of probabilities) |" in section
    assert "each of the 2 generations of distilled students (2× the hard students' budget)" in text


def test_text_generations_learn_from_the_previous_generations_logits(tmp_path, monkeypatch):
    """Text students: generation 2's targets are generation 1's logits through its own saved tokenizer."""
    from distillery.data.prepare import prepare
    from distillery.models.inference import split_logits
    from distillery.io import write_logits
    from distillery.data.prepared import load_prepared
    from distillery.models.text import saved_tokenizer

    from ..conftest import deep_merge
    from distillery.models.tokenization import tokenize

    from ..text_utils import sentences, text_params, train_tokenizer

    monkeypatch.chdir(tmp_path)
    df = sentences(48)
    df.to_csv(tmp_path / "all.csv", index=False)
    tok = train_tokenizer(df["sentence"].tolist(), tmp_path / "tok", vocab_size=80)
    model = {"arch": "hf", "pretrained": None, "tokenizer": str(tok), "max_length": 16,
             "config": {"model_type": "distilbert", "dim": 16, "n_layers": 1, "n_heads": 2, "hidden_dim": 32,
                        "max_position_embeddings": 64}}
    groups = deep_merge(text_params(tok, tok, source="file:all.csv"), {
        "teacher": {"model": model}, "student": {"model": model}, "kd": {"method": "born_again"},
        "train": {"seeds": [0], "batch_size": 8, "max_steps": 10, "eval_steps": 10, "logging_steps": 5,
                  "save_steps": 10}})
    prepared_dir = tmp_path / "prepared"
    prepare(make_params(**groups)["data"], prepared_dir, tmp_path)
    prepared = load_prepared(prepared_dir)
    rng = np.random.default_rng(0)
    for name, split in prepared.splits.items():
        write_logits(tmp_path / "logits" / f"{name}.parquet", split.ids,
                     rng.normal(size=(len(split.ids), prepared.num_labels)).astype(np.float32))
    spy = Spy(monkeypatch)
    out = train("born_again", prepared, tmp_path, "ban", **groups)
    first = seed_dir(generations_root(out, 1), 0)
    for name, got in (("train", spy.calls[1]["train_targets"]), ("validation", spy.calls[1]["eval_targets"])):
        want = split_logits(load_model(first), saved_tokenizer(first), prepared.splits[name], 16, name, f"x-{name}")
        if name == "validation":  # evaluation rows are sorted by token count (training_columns(by_length=True))
            tokens = tokenize(prepared.splits[name].dataset, saved_tokenizer(first), f"x-{name}")["input_ids"]
            want = want[np.argsort([len(ids) for ids in tokens], kind="stable")]
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert saved_tokenizer(seed_dir(out, 0)) is not None
