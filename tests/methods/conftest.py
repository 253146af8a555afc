"""A small batch of logits (student, teacher) and labels, float64."""
import numpy as np
import pytest


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(7, 5)) * 3
    t = rng.normal(size=(7, 5)) * 3
    y = rng.integers(0, 5, size=7)
    return s, t, y
