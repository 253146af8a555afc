"""NumPy references the method tests compare the torch losses with (float64)."""
import numpy as np


def np_log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def np_softmax(x):
    return np.exp(np_log_softmax(x))
