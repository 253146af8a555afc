"""on_policy_gkd: gkd's loss on the corpus and the JSD alone on the student's samples (checked in NumPy), the steps
that sample (seed and step alone), training that scores the student's own sequences with the live teacher, and at a
student data fraction of 0 the same training as gkd on the teacher's stored logits."""
import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, TrainerCallback
from transformers.modeling_outputs import CausalLMOutput

from distillery.errors import DistilleryError
from distillery.methods import METHODS, StepInputs, kd_schema
from distillery.methods.on_policy_gkd import on_policy_gkd_terms
from distillery.models.causal_lm import token_logits_batches
from distillery.params import validate
from distillery.token_logits import load_token_logits, token_logits_writer
from distillery.training.causal_lm import TokenSequences, token_metrics, token_sums
from distillery.training.trainer import on_student_samples, train_model

from ..conftest import make_params
from ..models.test_causal_lm import word_tokenizer
from ..test_params import lm
from .reference import np_log_softmax
from .test_gkd import reference_jsd, tensors

METHOD = METHODS["on_policy_gkd"]


@pytest.mark.parametrize("T, alpha, beta", [(1.0, 0.5, 0.5), (2.0, 0.3, 0.1), (4.0, 1.0, 0.9)])
def test_gkd_s_loss_on_the_corpus_and_the_jsd_alone_on_the_student_s_samples(batch, T, alpha, beta):
    s, t, y = batch
    ce = -np_log_softmax(s)[np.arange(len(y)), y].mean()
    jsd = T * T * reference_jsd(s, t, T, beta).sum() / len(y)  # batchmean
    corpus = on_policy_gkd_terms(*tensors(batch), T, alpha, beta, sampled=False)
    assert corpus.loss.item() == pytest.approx((1 - alpha) * ce + alpha * jsd, rel=1e-10)
    assert set(corpus.terms) == {"ce", "jsd"} and corpus.terms["jsd"].item() == pytest.approx(jsd, rel=1e-10)
    samples = on_policy_gkd_terms(*tensors(batch), T, alpha, beta, sampled=True)
    assert samples.loss.item() == pytest.approx(alpha * jsd, rel=1e-10)  # a sampled token is no label: no CE
    assert set(samples.terms) == {"jsd"}


def test_the_method_reads_sampled_from_the_step_inputs(batch):
    s, t, y = tensors(batch)
    hp = METHOD.hyperparams(make_params(**lm(kd={"method": "on_policy_gkd", "T": 2.0}))["kd"])
    assert hp == {"T": 2.0, "alpha": 0.5, "beta": 0.5, "student_data_fraction": 0.5, "prompt_tokens": 8,
                  "max_new_tokens": None, "temperature": 1.0, "start_step": 0}
    for sampled in (False, True):
        inputs = StepInputs(student=CausalLMOutput(logits=s), labels=y, teacher_logits=t, sampled=sampled)
        assert torch.equal(METHOD.loss(inputs, hp).loss, on_policy_gkd_terms(s, t, y, 2.0, 0.5, 0.5, sampled).loss)
    assert METHOD.needs == {"live_teacher", "student_samples"} and kd_schema()["on_policy_gkd"]["beta"].default == 0.5


@pytest.mark.parametrize("raw, message", [
    ({"kd": {"method": "on_policy_gkd"}}, r"kd.method = 'on_policy_gkd'.*language models only \(task: causal_lm\)"),
    (lm(kd={"method": "on_policy_gkd", "on_policy_gkd": {"prompt_tokens": 16}}),
     r"kd.on_policy_gkd.prompt_tokens = 16 leaves no room to sample within data.max_length = 16"),
    (lm(kd={"method": "on_policy_gkd", "on_policy_gkd": {"prompt_tokens": 8, "max_new_tokens": 9}}),
     r"prompt_tokens \+ max_new_tokens = 8 \+ 9 is above data.max_length = 16"),
    (lm(kd={"method": "on_policy_gkd", "on_policy_gkd": {"start_step": 1500}}),
     r"kd.on_policy_gkd.start_step = 1500 is not below train.max_steps = 1500: no step would sample"),
    (lm(kd={"method": "on_policy_gkd", "on_policy_gkd": {"student_data_fraction": 1.5}}),
     r"kd.on_policy_gkd.student_data_fraction = 1.5: must be in \[0, 1\]"),
])
def test_bad_settings_are_refused_naming_the_param(raw, message):
    with pytest.raises(DistilleryError, match=message):
        validate(raw)


def test_a_language_model_setting_validates():
    params = validate(lm(kd={"method": "on_policy_gkd", "on_policy_gkd": {"prompt_tokens": 4, "max_new_tokens": 12}}))
    assert params["kd"]["on_policy_gkd"]["max_new_tokens"] == 12


def test_the_steps_on_samples_are_drawn_from_the_seed_and_the_step_alone():
    def steps(seed, fraction):
        return [step for step in range(2000) if on_student_samples(seed, step, fraction)]

    assert steps(0, 0.0) == [] and len(steps(0, 1.0)) == 2000
    drawn = steps(0, 0.3)
    assert 540 <= len(drawn) <= 660 and drawn == steps(0, 0.3)  # 600 ± 2.6 sd; the same draws again
    assert drawn != steps(1, 0.3) and set(steps(0, 0.2)) <= set(drawn)  # another seed, other steps; nested in λ
    later = [step for step in range(2000) if on_student_samples(0, step, 0.3, start_step=1000)]
    assert later == [step for step in drawn if step >= 1000]  # before start_step, the corpus alone


# twelve sequences of 3 to 8 tokens over the word vocabulary, each ending with the end-of-text token 0
LENGTHS = [3, 8, 5, 6, 4, 8, 7, 3, 5, 8, 6, 4]
OFFSETS = np.concatenate([[0], np.cumsum(LENGTHS)])
TOKENS = np.concatenate([np.append(np.random.default_rng(i).integers(1, 8, n - 1), 0) for i, n in enumerate(LENGTHS)])
CORPUS = {tuple(TOKENS[a:b]) for a, b in zip(OFFSETS[:-1], OFFSETS[1:])}


def tiny_gpt2(seed: int, width: int):
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=8, n_layer=1, n_head=2, n_embd=width, n_positions=16, eos_token_id=0,
                        pad_token_id=0, bos_token_id=0)
    return AutoModelForCausalLM.from_config(config)


class Logs(TrainerCallback):
    def __init__(self):
        self.logs = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs))


def lm_run(tmp_path, name, method, hp, teacher=None, targets=None, steps=4):
    """A 16-wide GPT-2 student trained ``steps`` steps of 4 sequences; returns it and the logged lines."""
    logs = Logs()
    data = TokenSequences(TOKENS, OFFSETS, 0, targets, hp.get("T", 1.0))
    params = validate({})["train"] | {"max_steps": steps, "batch_size": 4, "logging_steps": 2, "eval_steps": 100,
                                       "save_steps": 100, "learning_rate": 0.01}
    model = train_model(tiny_gpt2(1, 16), data, data, params, seed=0, checkpoint_dir=tmp_path / name, method=method,
                        hyperparams=hp, teacher=teacher, tokenizer=word_tokenizer(), metric="nll",
                        compute_metrics=token_metrics, preprocess_logits_for_metrics=token_sums, callbacks=[logs])
    return model, [log for log in logs.logs if "loss" in log]


HP = {"T": 1.0, "alpha": 0.5, "beta": 0.5, "student_data_fraction": 1.0, "prompt_tokens": 2, "max_new_tokens": 6,
      "temperature": 1.0, "start_step": 0}


def test_on_samples_the_live_teacher_scores_the_student_s_own_continuations(tmp_path):
    teacher = tiny_gpt2(2, 32).eval().requires_grad_(False)
    seen = []
    teacher.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs["input_ids"].clone()),
                                      with_kwargs=True)
    _, logs = lm_run(tmp_path, "samples", METHOD, HP, teacher=teacher)
    assert len(seen) == 5 and all(set(log) >= {"loss", "jsd"} and "ce" not in log for log in logs)
    prompts = {tuple(TOKENS[a:a + 2]) for a in OFFSETS[:-1]}
    fresh = 0
    for batch in seen[:4]:  # the 4 training steps (then the final evaluation, on the corpus)
        for row in batch.tolist():
            real = row[:next((i + 1 for i, token in enumerate(row[2:], 2) if token == 0), len(row))]
            assert tuple(real[:2]) in prompts and 2 < len(real) <= 8  # a corpus prompt, then at most 6 samples
            fresh += tuple(real) not in CORPUS
    assert fresh >= 8  # the student's sequences, not the corpus's
    seen.clear()
    _, logs = lm_run(tmp_path, "corpus", METHOD, {**HP, "student_data_fraction": 0.0}, teacher=teacher)
    assert all(tuple(row[:int((row != 0).sum()) + 1]) in CORPUS for batch in seen for row in batch.numpy())
    assert len(seen) == 5
    assert all(set(log) >= {"ce", "jsd"} for log in logs)


def test_at_a_student_data_fraction_of_zero_it_trains_as_gkd_on_the_stored_logits(tmp_path):
    teacher = tiny_gpt2(2, 32).eval().requires_grad_(False)
    ids = np.arange(len(LENGTHS))
    with token_logits_writer(tmp_path / "train.parquet", 8, None) as writer:  # every logit, as logits_top_k: null
        for batch in token_logits_batches(teacher, TOKENS, OFFSETS, ids, None, 0, batch_size=4, desc="t",
                                          device=torch.device("cpu")):
            writer.write(*batch)
    stored = load_token_logits(tmp_path / "train.parquet", ids, np.array(LENGTHS), 8)
    gkd, _ = lm_run(tmp_path, "gkd", METHODS["gkd"], {"T": 1.0, "alpha": 0.5, "beta": 0.5}, targets=stored)
    live, _ = lm_run(tmp_path, "live", METHOD, {**HP, "student_data_fraction": 0.0}, teacher=teacher)
    sampled, _ = lm_run(tmp_path, "sampled", METHOD, {**HP, "student_data_fraction": 0.5}, teacher=teacher)
    for a, b, c in zip(gkd.parameters(), live.parameters(), sampled.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)  # the same up to how the logits were batched
    assert any(not torch.allclose(a, c, atol=1e-3) for a, c in zip(gkd.parameters(), sampled.parameters()))


def test_before_start_step_the_steps_train_on_the_corpus(tmp_path):
    teacher = tiny_gpt2(2, 32).eval().requires_grad_(False)
    seen = []
    teacher.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs["input_ids"].clone()),
                                      with_kwargs=True)
    _, logs = lm_run(tmp_path, "start", METHOD, {**HP, "start_step": 2}, teacher=teacher)
    real = [[tuple(row[:int((row != 0).sum()) + 1]) for row in batch.numpy()] for batch in seen[:4]]
    assert [all(row in CORPUS for row in batch) for batch in real] == [True, True, False, False]
    assert [sorted(set(log) & {"ce", "jsd"}) for log in logs] == [["ce", "jsd"], ["jsd"]]  # steps 1-2, then 3-4


def test_on_a_corpus_of_prompts_the_student_answers_each_row_s_whole_prompt(tmp_path):
    """With prompts and responses (prompt_tokens None, as training sets it) the batch's rows are cut at their own
    prompts, found from the labels: every sequence the live teacher scores is a whole prompt of the batch, then the
    student's answer, within max_length."""
    prompts = np.array([2, 5, 3, 4, 1, 6, 3, 2, 4, 7, 2, 3])  # each row's prompt tokens, shorter than the row
    teacher = tiny_gpt2(2, 32).eval().requires_grad_(False)
    seen = []
    teacher.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs["input_ids"].clone()),
                                      with_kwargs=True)
    data = TokenSequences(TOKENS, OFFSETS, 0, None, 1.0, np.maximum(prompts - 1, 0))
    params = validate({})["train"] | {"max_steps": 3, "batch_size": 4, "logging_steps": 1, "eval_steps": 100,
                                       "save_steps": 100, "learning_rate": 0.01}
    train_model(tiny_gpt2(1, 16), data, data, params, seed=0, checkpoint_dir=tmp_path / "prompts", method=METHOD,
                hyperparams={**HP, "prompt_tokens": None, "max_new_tokens": 16, "max_length": 12}, teacher=teacher,
                tokenizer=word_tokenizer(), metric="nll", compute_metrics=token_metrics,
                preprocess_logits_for_metrics=token_sums)
    whole = [tuple(TOKENS[a:a + p]) for a, p in zip(OFFSETS[:-1], prompts)]
    longest = 0
    for batch in seen[:3]:  # the training steps
        for row in batch.tolist():
            starts = [p for p in map(len, whole) if tuple(row[:p]) in whole]
            assert starts and len(row) <= 12  # a whole prompt of the corpus, then at most max_length in all
            longest = max(longest, max(starts))
    assert longest > 2  # prompts longer than prompt_tokens' 2: each row's own
