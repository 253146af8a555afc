"""Image jitter (Hinton et al. 2015): shifts by up to a few pixels with zero fill.

Used twice: the transfer set's jittered copies (``data.transfer.jitter``, fixed once in the transfer stage) and
the teacher's on-the-fly jitter (``teacher.train.jitter``: every training batch shifted afresh, as the paper's
1200-1200 teacher was trained).
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import DistilleryError
from .device import to_device


def shift_image(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``image`` (..., H, W) moved ``dy`` rows down and ``dx`` columns right; what comes in is 0."""
    out = np.zeros_like(image)
    h, w = image.shape[-2:]
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = \
        image[..., max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
    return out


def jitter_batch(images: torch.Tensor, pixels: int) -> torch.Tensor:
    """Each image of ``images`` (N, ..., H, W) shifted by its own (dy, dx), each uniform in [-pixels, pixels],
    zero fill, in one indexing operation on the images' device. Draws from torch's global CPU generator, which
    the Trainer seeds and restores on resume (the same draws wherever the images are)."""
    n, (h, w) = len(images), images.shape[-2:]
    dy, dx = to_device(torch.randint(-pixels, pixels + 1, (2, n)), images.device)
    padded = torch.nn.functional.pad(images, (pixels, pixels, pixels, pixels)).reshape(n, -1, h + 2 * pixels,
                                                                                        w + 2 * pixels)
    arange = lambda size: torch.arange(size, device=images.device)  # noqa: E731
    rows = (arange(h) + pixels)[None, :] - dy[:, None]  # (N, H): the padded rows image i's output rows read
    cols = (arange(w) + pixels)[None, :] - dx[:, None]
    out = padded[arange(n)[:, None, None, None], arange(padded.shape[1])[None, :, None, None],
                 rows[:, None, :, None], cols[:, None, None, :]]
    return out.reshape(images.shape)


class Jittered(torch.utils.data.Dataset):
    """A training dataset whose batches' ``features`` are shifted by ``jitter_batch``; the rest passes unchanged.

    Jitter lives in the training dataset, not in the collator, which the Trainer also uses for evaluation."""

    def __init__(self, dataset, pixels: int):
        self.dataset, self.pixels = dataset, pixels

    def __len__(self) -> int:
        return len(self.dataset)

    def to(self, device: torch.device) -> "Jittered":
        """The underlying dataset's tensors moved to ``device`` (see ``TensorDictDataset.to``)."""
        self.dataset.to(device)
        return self

    def __getitem__(self, index) -> dict:
        row = dict(self.dataset[index])
        row["features"] = jitter_batch(row["features"][None], self.pixels)[0]
        return row

    def __getitems__(self, indices: list[int]) -> dict:
        batch = dict(self.dataset.__getitems__(indices))
        batch["features"] = jitter_batch(batch["features"], self.pixels)
        return batch


def check_jitter(pixels: int, input_shape: list[int], where: str) -> None:
    """Refuse jitter on inputs that are not images (at least H x W)."""
    if pixels and len(input_shape) < 2:
        raise DistilleryError(f"params.yaml: {where}.jitter = {pixels}: jitter shifts images; the inputs have shape "
                              f"{list(input_shape)} (set it to 0)")
