"""minillm: the policy gradient of the sequence-level reverse KL and its single-step part on the student's samples
(values and gradients checked in NumPy), kd's loss on the corpus, the refusals, and training that scores the
student's teacher-mixed sequences with the live teacher; at a student data fraction of 0, kd on the stored logits."""
import numpy as np
import pytest
import torch
from transformers.modeling_outputs import CausalLMOutput

from distillery.errors import DistilleryError
from distillery.methods import METHODS, StepInputs
from distillery.methods.minillm import length_normalised_returns, minillm_terms
from distillery.models.causal_lm import token_logits_batches
from distillery.params import validate
from distillery.token_logits import load_token_logits, token_logits_writer

from ..conftest import make_params
from ..test_params import lm
from .reference import np_log_softmax, np_softmax
from .test_on_policy_gkd import LENGTHS, OFFSETS, TOKENS, lm_run, tiny_gpt2

METHOD = METHODS["minillm"]
# 7 token rows: sequence 0 at positions 2, 3, 4; sequence 1 at 0, 1; sequence 2 at 5, 6 (a batch of 3 x 8)
INDEX = (torch.tensor([0, 0, 0, 1, 1, 2, 2]), torch.tensor([2, 3, 4, 0, 1, 5, 6]))
SEQUENCES = [[0, 1, 2], [3, 4], [5, 6]]


def test_returns_are_the_mean_reward_from_each_token_to_its_sequence_s_end():
    rewards = torch.tensor([1.0, 2.0, 3.0, 4.0, 6.0, -1.0, 5.0], dtype=torch.float64)
    got = length_normalised_returns(rewards, INDEX, (3, 8))
    assert got.tolist() == [2.0, 2.5, 3.0, 5.0, 6.0, 2.0, 5.0]


def reference_sampled(s, t, y, mix, clip, whiten=True):
    """NumPy: (loss, pg, reverse KL, d loss / d s, the rows whose pg has a gradient) by the formulas of
    minillm_terms' docstring."""
    n = len(y)
    log_q, log_p = np_log_softmax(s), np_log_softmax(t)
    r = log_p[np.arange(n), y] - log_q[np.arange(n), y]
    returns = np.empty(n)
    for rows in SEQUENCES:
        for k, row in enumerate(rows):
            returns[row] = r[rows[k:]].mean()
    advantages = (returns - returns.mean()) / np.sqrt(returns.var(ddof=1) + 1e-8) if whiten else returns
    q_y, p_y = np.exp(log_q[np.arange(n), y]), np.exp(log_p[np.arange(n), y])
    w = q_y / (mix * p_y + (1 - mix) * q_y)
    unclipped, clipped = -advantages * w, -advantages * np.clip(w, 1 - clip, 1 + clip)
    pg = np.maximum(unclipped, clipped).mean()
    q = np.exp(log_q)
    kl_rows = (q * (log_q - log_p)).sum(1)
    # d pg / d s: -A·w·(onehot(y) - q) where the unclipped branch is the larger (both on a tie), 0 where clipped
    live = unclipped >= clipped
    onehot = np.eye(s.shape[1])[y]
    grad = (np.where(live, -advantages * w, 0.0)[:, None] * (onehot - q)) / n
    grad += q * (log_q - log_p - kl_rows[:, None]) / n  # d KL(q ‖ p) / d s, per row
    return pg + kl_rows.mean(), pg, kl_rows.mean(), grad, live


@pytest.mark.parametrize("mix, clip, whiten", [(0.0, 0.2, True), (0.2, 0.2, True), (0.5, 0.05, True),
                                                (1.0, 0.5, True), (0.0, 0.2, False), (0.5, 0.05, False)])
def test_on_samples_the_loss_and_its_gradient_match_the_formulas(batch, mix, clip, whiten):
    s, t, y = batch
    student = torch.tensor(s, requires_grad=True)
    got = minillm_terms(student, torch.tensor(t), torch.tensor(y), INDEX, (3, 8), 2.0, 0.5, True, mix, clip, whiten)
    loss, pg, kl, grad, live = reference_sampled(s, t, y, mix, clip, whiten)
    if whiten:  # without mixing no weight leaves the trust region; in these whitened cases some do
        assert live.all() == (mix == 0)
    assert set(got.terms) == {"pg", "reverse_kl"}
    assert got.loss.item() == pytest.approx(loss, rel=1e-9, abs=1e-12)
    assert got.terms["pg"].item() == pytest.approx(pg, rel=1e-9, abs=1e-12)
    assert got.terms["reverse_kl"].item() == pytest.approx(kl, rel=1e-9)  # at T = 1 whatever kd.T is
    got.loss.backward()
    np.testing.assert_allclose(student.grad.numpy(), grad, rtol=1e-7, atol=1e-12)


def test_on_the_corpus_it_is_kd_s_loss_with_the_live_teacher(batch):
    s, t, y = batch
    T, alpha = 2.0, 0.3
    ce = -np_log_softmax(s)[np.arange(len(y)), y].mean()
    p, log_q = np_softmax(t / T), np_log_softmax(s / T)
    kd = T * T * (p * (np.log(p) - log_q)).sum(1).mean()
    got = minillm_terms(*(torch.tensor(a) for a in batch), INDEX, (3, 8), T, alpha, False, 0.2, 0.2)
    assert set(got.terms) == {"ce", "kd"}
    assert got.loss.item() == pytest.approx((1 - alpha) * ce + alpha * kd, rel=1e-10)


def test_a_single_sampled_token_has_no_advantage():
    s, t = torch.randn(1, 5, dtype=torch.float64, requires_grad=True), torch.randn(1, 5, dtype=torch.float64)
    got = minillm_terms(s, t, torch.tensor([2]), (torch.tensor([0]), torch.tensor([3])), (1, 6), 1.0, 0.5, True,
                        0.2, 0.2)
    assert got.terms["pg"].item() == 0.0 and torch.isfinite(got.loss)


def test_the_method_reads_its_params_and_the_step_inputs(batch):
    s, t, y = (torch.tensor(a) for a in batch)
    hp = METHOD.hyperparams(make_params(**lm(kd={"method": "minillm", "T": 2.0}))["kd"])
    assert hp == {"T": 2.0, "alpha": 0.5, "student_data_fraction": 0.5, "prompt_tokens": 8, "max_new_tokens": None,
                  "start_step": 0, "teacher_mix": 0.2, "clip": 0.2, "whiten": True}
    for sampled in (False, True):
        inputs = StepInputs(student=CausalLMOutput(logits=s), labels=y, teacher_logits=t, sampled=sampled,
                            token_index=INDEX, inputs={"input_ids": torch.zeros(3, 8, dtype=torch.long)})
        expected = minillm_terms(s, t, y, INDEX, (3, 8), 2.0, 0.5, sampled, 0.2, 0.2).loss
        assert torch.equal(METHOD.loss(inputs, hp).loss, expected)
    assert METHOD.needs == {"live_teacher", "student_samples"}


@pytest.mark.parametrize("raw, message", [
    ({"kd": {"method": "minillm"}}, r"kd.method = 'minillm'.*language models only \(task: causal_lm\)"),
    (lm(kd={"method": "minillm", "minillm": {"prompt_tokens": 16}}),
     r"kd.minillm.prompt_tokens = 16 leaves no room to sample within data.max_length = 16"),
    (lm(kd={"method": "minillm", "minillm": {"prompt_tokens": 8, "max_new_tokens": 9}}),
     r"kd.minillm.prompt_tokens \+ max_new_tokens = 8 \+ 9 is above data.max_length = 16"),
    (lm(kd={"method": "minillm", "minillm": {"start_step": 1500}}),
     r"kd.minillm.start_step = 1500 is not below train.max_steps = 1500: no step would sample"),
    (lm(kd={"method": "minillm", "minillm": {"teacher_mix": 1.5}}), r"kd.minillm.teacher_mix = 1.5: must be in \[0, 1\]"),
    (lm(kd={"method": "minillm", "minillm": {"clip": 0}}), r"kd.minillm.clip = 0: must be in \(0, 1\)"),
])
def test_bad_settings_are_refused_naming_the_param(raw, message):
    with pytest.raises(DistilleryError, match=message):
        validate(raw)


HP = {"T": 1.0, "alpha": 0.5, "student_data_fraction": 1.0, "prompt_tokens": 2, "max_new_tokens": 6,
      "start_step": 0, "teacher_mix": 0.2, "clip": 0.2, "whiten": True}


def test_on_samples_the_live_teacher_scores_the_student_s_teacher_mixed_continuations(tmp_path):
    teacher = tiny_gpt2(2, 32).eval().requires_grad_(False)
    seen = []
    teacher.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs["input_ids"].clone()),
                                      with_kwargs=True)
    _, logs = lm_run(tmp_path, "samples", METHOD, HP, teacher=teacher)
    assert all(set(log) >= {"loss", "pg", "reverse_kl"} and not set(log) & {"ce", "kd"} for log in logs)
    widths = [batch.shape[1] for batch in seen]
    # per step: the mixture's calls while sampling (the prompts, then each generated token alone, from the teacher's
    # cache), then the scoring of the batch
    assert len(seen) > 4 + 5 and widths[:3] == [2, 1, 1] and max(widths) > 2
    _, logs = lm_run(tmp_path, "corpus", METHOD, {**HP, "student_data_fraction": 0.0, "teacher_mix": 0.0},
                     teacher=teacher)
    assert all(set(log) >= {"ce", "kd"} and not set(log) & {"pg", "reverse_kl"} for log in logs)


def test_at_a_student_data_fraction_of_zero_it_trains_as_kd_on_the_stored_logits(tmp_path):
    teacher = tiny_gpt2(2, 32).eval().requires_grad_(False)
    ids = np.arange(len(LENGTHS))
    with token_logits_writer(tmp_path / "train.parquet", 8, None) as writer:
        for batch in token_logits_batches(teacher, TOKENS, OFFSETS, ids, None, 0, batch_size=4, desc="t",
                                          device=torch.device("cpu")):
            writer.write(*batch)
    stored = load_token_logits(tmp_path / "train.parquet", ids, np.array(LENGTHS), 8)
    kd, _ = lm_run(tmp_path, "kd", METHODS["kd"], {"T": 1.0, "alpha": 0.5}, targets=stored)
    live, _ = lm_run(tmp_path, "live", METHOD, {**HP, "student_data_fraction": 0.0}, teacher=teacher)
    sampled, _ = lm_run(tmp_path, "sampled", METHOD, {**HP, "student_data_fraction": 0.5}, teacher=teacher)
    for a, b, c in zip(kd.parameters(), live.parameters(), sampled.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)  # the same up to how the logits were batched
    assert any(not torch.allclose(a, c, atol=1e-3) for a, c in zip(kd.parameters(), sampled.parameters()))
