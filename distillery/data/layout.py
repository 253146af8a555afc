"""``data.channels``: one layout of images inside the pipeline, channels first.

Every stage, model and plot reads an image row as ``(H, W)`` or ``(C, H, W)``: the CNN's ``Conv2d`` takes channels
first, jitter (``data.augment``) shifts the last two axes, the plots draw ``C, H, W``. An array source whose samples
have 3 dims may hold them channels last, ``(H, W, C)``, as PIL, Keras and most ``.npz`` files do; ``prepare`` moves
the channel axis in front once (``np.moveaxis``: the same values, bit for bit), the transfer stage does the same with
an array transfer source, and ``predict`` with new images, as the record saved beside each model says
(``inputs.json``'s ``channels``, present only for samples of 3 dims).

``data.channels``: ``first`` or ``last`` say it; ``auto`` (the default) reads channels last when the last axis is
1, 3 or 4 (grey, RGB, RGBA) and the first is not, channels first in the opposite case, and refuses every other
shape of 3 dims (``(3, 8, 3)``, ``(5, 32, 32)``), naming it, rather than guess. Samples of other dims (the digits'
``(8, 8)``, MNIST's ``(28, 28)``, feature vectors) have no channel axis and are left as they are.
"""
from __future__ import annotations

import numpy as np

from ..errors import DistilleryError

CHANNELS = ("auto", "first", "last")
COLOUR_CHANNELS = (1, 3, 4)  # grey, RGB, RGBA: what auto takes for a channel axis


def source_layout(shape, setting: str, where: str) -> str | None:
    """How samples of ``shape`` (one row's, without N) hold their channels: ``"first"``, ``"last"``, or None for
    samples without a channel axis (not 3 dims); ``setting`` is ``data.channels``, ``where`` names the source in
    errors. Raises ``DistilleryError`` for a shape ``auto`` cannot read, and for ``first``/``last`` on samples that
    have no channel axis."""
    shape = [int(n) for n in shape]
    if len(shape) != 3:
        if setting != "auto":
            raise DistilleryError(f"{where}: data.channels = {setting!r}, but its samples have shape {shape}: no "
                                  "channel axis (data.channels reads samples of 3 dims, (H, W, C) or (C, H, W)); "
                                  "set data.channels: auto")
        return None
    if setting != "auto":
        return setting
    first, last = shape[0] in COLOUR_CHANNELS, shape[-1] in COLOUR_CHANNELS
    if last and not first:
        return "last"
    if first and not last:
        return "first"
    why = ("both the first and the last axis could hold the channels (1, 3 or 4)" if first else
           "neither the first nor the last axis holds 1, 3 or 4 channels")
    raise DistilleryError(f"{where}: samples of shape {shape}, channels first (C, H, W) or last (H, W, C)? "
                          f"data.channels = 'auto' cannot tell: {why}; set data.channels: first or last")


def channels_first(values: np.ndarray, layout: str | None) -> np.ndarray:
    """``values`` (N, ...) in the pipeline's layout: for ``layout`` ``"last"`` the channel axis moved in front of
    H and W (a C-contiguous copy); else ``values`` as they are."""
    if layout != "last":
        return values
    return np.ascontiguousarray(np.moveaxis(values, -1, 1))


def layout_shape(shape, layout: str | None) -> list[int]:
    """The sample shape as a source of ``layout`` holds it, from the pipeline's (channels-first) ``shape``."""
    shape = list(shape)
    return shape[1:] + shape[:1] if layout == "last" else shape
