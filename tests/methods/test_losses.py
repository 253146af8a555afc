"""Loss primitives: cross-entropy on labels and the temperature-softened KL."""
import numpy as np
import pytest
import torch

from distillery.methods.losses import hard_terms, soft_kl

from .reference import np_log_softmax


def test_hard_terms_is_cross_entropy():
    rng = np.random.default_rng(1)
    s, y = rng.normal(size=(6, 4)), rng.integers(0, 4, size=6)
    expected = -np_log_softmax(s)[np.arange(6), y].mean()
    result = hard_terms(torch.tensor(s), None, torch.tensor(y))
    assert result.loss.item() == pytest.approx(expected, rel=1e-12)
    assert result.terms == {"ce": result.loss}


def test_soft_kl_is_batchmean_kl_of_softened_distributions():
    rng = np.random.default_rng(2)
    s, t = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    T = 2.5
    p = np.exp(np_log_softmax(t / T))
    expected = (p * (np_log_softmax(t / T) - np_log_softmax(s / T))).sum() / 5
    assert soft_kl(torch.tensor(s), torch.tensor(t), T).item() == pytest.approx(expected, rel=1e-10)
    assert soft_kl(torch.tensor(s), torch.tensor(s), T).item() == pytest.approx(0.0, abs=1e-12)


def test_a_class_masked_with_a_large_negative_logit_adds_nothing_to_the_kl():
    """Finite logits only (-inf gives F.kl_div's 0·inf = NaN): -1e4 masks a class, its probability 0 in float32."""
    from distillery.methods.losses import generalized_jsd, reverse_soft_kl

    rng = np.random.default_rng(3)
    s, t = torch.tensor(rng.normal(size=(4, 5)), dtype=torch.float32), torch.tensor(rng.normal(size=(4, 5)),
                                                                                       dtype=torch.float32)
    s_masked, t_masked = s.clone(), t.clone()
    s_masked[:, 0], t_masked[:, 0] = -1e4, -1e4
    T = 2.0
    for loss, kl in ((soft_kl, lambda p, q: (p * (np.log(p) - np.log(q))).sum() / 4),
                     (reverse_soft_kl, lambda p, q: (q * (np.log(q) - np.log(p))).sum() / 4)):
        p = torch.softmax(t[:, 1:].double() / T, -1).numpy()  # the four classes left
        q = torch.softmax(s[:, 1:].double() / T, -1).numpy()
        student = s_masked.clone().requires_grad_()
        value = loss(student, t_masked, T)
        value.backward()
        assert value.item() == pytest.approx(kl(p, q), rel=1e-5)
        assert torch.isfinite(student.grad).all() and (student.grad[:, 0] == 0).all()
    assert torch.isfinite(generalized_jsd(s_masked, t_masked, T, 0.5))


@pytest.mark.parametrize("student, teacher, labels, message", [
    ((2, 3, 11), (2, 3, 11), (2, 3), r"student logits of shape \[2, 3, 11\]: the losses take rows, \(N, classes\); "
                                     r"flatten a language model's"),
    ((7,), (7,), (), r"student logits of shape \[7\]: the losses take rows"),
    ((5, 7), (1, 7), (5,), r"teacher logits of shape \[1, 7\], the student's \[5, 7\]: one teacher row per student"),
    ((5, 7), (7,), (5,), r"teacher logits of shape \[7\]"),
    ((5, 7), (5, 7), (5, 7), r"labels of shape \[5, 7\] for 5 rows of logits: one class index per row, shape \(5,\); "
                             r"one-hot rows or probabilities: their argmax\(-1\)"),
])
def test_what_the_losses_would_broadcast_or_misread_is_refused(student, teacher, labels, message):
    from distillery.methods.kd import kd_terms

    with pytest.raises(ValueError, match=message):
        kd_terms(torch.zeros(student), torch.zeros(teacher), torch.zeros(labels, dtype=torch.long), 2.0, 0.5)


def test_labels_of_any_integer_dtype_are_class_indices_and_float_labels_are_refused():
    rng = np.random.default_rng(4)
    s, y = torch.tensor(rng.normal(size=(6, 4))), torch.tensor(rng.integers(0, 4, size=6))
    expected = hard_terms(s, None, y).loss.item()
    assert hard_terms(s, None, y.to(torch.int32)).loss.item() == expected
    with pytest.raises(ValueError, match="labels of dtype torch.float32: class indices of an integer dtype"):
        hard_terms(s, None, y.float())


def test_half_precision_logits_are_taken_in_float32_and_the_teacher_is_a_constant():
    """In bfloat16 a KL of nearly equal 1000-class rows came out negative."""
    rng = np.random.default_rng(5)
    t = torch.tensor(rng.normal(size=(8, 1000)), dtype=torch.float32)
    s = t + 0.01 * torch.tensor(rng.normal(size=(8, 1000)), dtype=torch.float32)
    half = soft_kl(s.bfloat16(), t.bfloat16(), 1.0)
    assert half.dtype == torch.float32
    assert half.item() == soft_kl(s.bfloat16().float(), t.bfloat16().float(), 1.0).item() >= 0
    teacher = t.clone().requires_grad_()
    soft_kl(s.clone().requires_grad_(), teacher, 1.0).backward()
    assert teacher.grad is None
