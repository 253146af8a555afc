"""Every registered method, on the tiny problem of ``problem.py``: its loss teaches the student (a wrong sign or a
dropped term shows here, whatever the method's own tests check)."""
import pytest
import torch

from distillery.methods import METHODS

from .problem import hyperparams, make_problem

STEPS, LEARNING_RATE = 40, 0.03
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: many times faster on a busy machine


def train(problem, method, hp, steps: int = STEPS) -> list[tuple[float, bool]]:
    """``steps`` Adam steps of ``method``'s loss on the problem (the student, its peers and helpers); each step's loss
    and whether the step learnt from the student's own samples."""
    optimizer = torch.optim.Adam(problem.parameters(), lr=LEARNING_RATE)
    generator = torch.Generator().manual_seed(0)  # the tokens of the steps that sample
    losses = []
    for step in range(steps):
        inputs = problem.training_inputs(step, generator)
        loss = method.loss(inputs, hp).loss
        losses.append((loss.item(), inputs.sampled))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return losses


def learning_setting(method) -> dict:
    """α = 1 where the method reads α and has a teacher, so that the student learns from the teacher alone (the
    labels are random, independent of it); a method without a teacher learns the labels at its default α."""
    return {"alpha": 1.0} if method.teacher_needed and "alpha" in hyperparams(method) else {}


@pytest.mark.parametrize("name", METHODS)
def test_the_loss_teaches_the_student_the_teacher_or_the_labels(name):
    """The student's top-1 agreement with the teacher's logits (with the labels, for a method without a teacher)
    rises from chance, 1/4, to most rows within 40 steps. The loss stays finite, and at or above 0 on the steps that
    do not sample: every method's loss there is a sum of cross-entropies, divergences and distances, with weights of
    at least 0 (a term of the wrong sign had trained a student to a loss of −498,771)."""
    method = METHODS[name]
    problem = make_problem(method, hyperparams(method, **learning_setting(method)))
    target = problem.teacher_logits.argmax(-1) if method.teacher_needed else problem.labels

    def agreement() -> float:
        with torch.no_grad():
            return (problem.student(**problem.model_inputs).logits.argmax(-1) == target).float().mean().item()

    before = agreement()
    losses = train(problem, method, problem.hp)
    values = torch.tensor([loss for loss, _ in losses])
    assert torch.isfinite(values).all(), f"{name}: losses {values.tolist()}"
    assert min(loss for loss, sampled in losses if not sampled) >= -1e-4, f"{name}: losses {values.tolist()}"
    assert agreement() >= before + 0.4, f"{name}: agreement {before:.2f} -> {agreement():.2f}"

