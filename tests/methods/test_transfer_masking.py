"""Transfer rows (label -100) are masked out of every method's hard-label term; a batch of transfer rows
only gives a cross-entropy of 0 and a finite loss."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from distillery.methods import HARD, METHODS
from distillery.methods.dkd import dkd_parts
from distillery.methods.losses import UNLABELLED, labelled_ce

from .problem import make_problem


def _batch(seed=0, n=6, c=4):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(n, c, generator=g, requires_grad=True)
    t = torch.randn(n, c, generator=g)
    y = torch.randint(0, c, (n,), generator=g)
    return s, t, y


def test_labelled_ce_ignores_transfer_rows():
    s, _, y = _batch()
    mixed = y.clone()
    mixed[3:] = UNLABELLED
    assert torch.allclose(labelled_ce(s, mixed), F.cross_entropy(s[:3], y[:3]))
    assert torch.equal(labelled_ce(s, y), F.cross_entropy(s, y))  # the plain path when every row is labelled


def test_transfer_only_batch_gives_zero_ce_and_zero_gradient():
    s, _, _ = _batch()
    none = torch.full((len(s),), UNLABELLED)
    ce = labelled_ce(s, none)
    assert ce.item() == 0.0
    ce.backward()
    assert torch.equal(s.grad, torch.zeros_like(s))


# the hard baseline and every method whose declared terms hold the hard-label cross-entropy
WITH_CE = {method.name: method for method in (HARD, *METHODS.values()) if "ce" in method.terms}


@pytest.mark.parametrize("name", WITH_CE)
def test_every_method_masks_transfer_rows(name):
    method = WITH_CE[name]
    problem = make_problem(method)
    y = problem.labels
    mixed = y.clone()
    mixed[::2] = UNLABELLED
    inputs = problem.step_inputs(mixed)
    out = method.loss(inputs, problem.hp)
    assert torch.isfinite(out.loss)
    assert torch.allclose(out.terms["ce"], F.cross_entropy(inputs.student.logits[1::2], y[1::2]))
    only = method.loss(problem.step_inputs(torch.full_like(y, UNLABELLED)), problem.hp)
    assert torch.isfinite(only.loss) and only.terms["ce"].item() == 0.0


def test_dkd_splits_transfer_rows_at_the_teachers_top_class():
    s, t, _ = _batch()
    none = torch.full((len(s),), UNLABELLED)
    got = dkd_parts(s, t, none, 2.0)
    want = dkd_parts(s, t, t.argmax(-1), 2.0)
    assert all(torch.allclose(a, b) for a, b in zip(got, want))
