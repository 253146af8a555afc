"""Sources of array rows (images, feature vectors), declared once each: ``ARRAY_SOURCES`` maps a ``data.source``
kind to its loader, which returns a ``RawData``; ``load_source`` turns its labels into class indices by the rules
of a table's label column, ``prepare`` splits and scales it, and a transfer set of the same kind reads its inputs
alone. A kind's form and checks are declared beside the others in ``data.params.SOURCE_KINDS``; a local path after
``kind:`` is watched for edits whatever the kind (``data.sources``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import DistilleryError
from .params import SOURCE_KINDS, check_source
from .scaling import DIGITS_PIXEL_MAX, UINT8_PIXEL_MAX, as_pixels
from .validation import (check_splits_not_empty, class_indices, labels_are_names, refuse, table_problems,
                         unused_indices_problem)

NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass
class RawData:
    """A loaded source: inputs (N, ...) (float32 pixels in 0..1 or float64 features), labels, ids, class names and
    an optional fixed test split. A loader gives the labels as the source holds them (1-D; None when it reads no
    labels) and the class names the source declares (None: none); ``load_source`` gives class indices and names."""

    inputs: np.ndarray
    labels: np.ndarray | None
    ids: np.ndarray
    label_names: list[str] | None
    test_mask: np.ndarray | None = None  # True where the source itself puts a row in its test split
    pixel_max: float | None = None  # pixels: the source's values divided by this to 0..1 (data.scaling: auto keeps them)
    labels_in: str = "column 'label'"  # where the source holds its labels, as messages name them

    @property
    def pixels(self) -> bool:
        return self.pixel_max is not None


def load_digits(rest: str, root: Path, source: str, labelled: bool) -> RawData:
    """``sklearn:digits``: scikit-learn's bundled 8x8 digits (1,797 images), offline; its classes 0..9 declared as
    such (``data.label_names`` may name them)."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    inputs = as_pixels(digits.images, DIGITS_PIXEL_MAX)
    return RawData(inputs, digits.target, np.arange(len(inputs)), [str(n) for n in digits.target_names],
                   pixel_max=DIGITS_PIXEL_MAX, labels_in="column 'target'")


def load_npz(rest: str, root: Path, source: str, labelled: bool) -> RawData:
    """``npz:<file.npz>``: x_train, y_train, x_test, y_test (MNIST's layout); the test rows are the source's test
    split. Unlabelled (a transfer source): its images alone (``unlabelled_images``)."""
    path = root / rest
    if not path.exists():
        raise DistilleryError(f"data.source = {source!r}: file not found: {path}")
    arrays = read_arrays(path)
    if not labelled:
        images = unlabelled_images(arrays, path)
        check_inputs(images, path)
        inputs, pixel_max = as_inputs(images)
        return RawData(inputs, None, np.arange(len(inputs)), None, pixel_max=pixel_max)
    if isinstance(arrays, np.ndarray):
        raise DistilleryError(f"{path}: a .npy file holds one array, but an npz: source is an .npz of the arrays "
                              f"{list(NPZ_ARRAYS)} (numpy.savez); a .npy of images can serve as data.transfer.source")
    missing = [k for k in NPZ_ARRAYS if k not in arrays]
    if missing:
        raise DistilleryError(f"{path}: missing arrays {missing}; it has {sorted(arrays)}")
    images = {k: arrays[k] for k in ("x_train", "x_test")}
    check_inputs(images, path)
    for split in ("train", "test"):
        y = arrays[f"y_{split}"]
        if y.ndim == 2 and y.shape[1] == 1:  # (N, 1), as Keras' CIFAR: one class per row
            arrays[f"y_{split}"] = y = y[:, 0]
        if y.ndim != 1:
            raise DistilleryError(f"{path}: y_{split} must hold one class per row, of shape (N,) or (N, 1); it has "
                                  f"shape {list(y.shape)}" + (": for one-hot labels take argmax, "
                                                              f"y_{split}.argmax(axis=1)" if y.ndim == 2 else ""))
        if len(y) != len(images[f"x_{split}"]):
            raise DistilleryError(f"{path}: x_{split} has {len(images[f'x_{split}'])} rows but y_{split} has {len(y)}")
    check_splits_not_empty({name: len(x) for name, x in images.items()}, str(path))
    inputs, pixel_max = as_inputs(images)
    labels = np.concatenate([arrays["y_train"], arrays["y_test"]])
    ids = np.arange(len(inputs))
    return RawData(inputs, labels, ids, None, ids >= len(images["x_train"]), pixel_max,
                   labels_in="array y_train/y_test")


def read_arrays(path: Path) -> np.ndarray | dict[str, np.ndarray]:
    """The array of a ``.npy`` file, or the arrays of an ``.npz`` by name; pickled objects are refused."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return loaded
        with loaded:
            return {name: loaded[name] for name in loaded.files}
    except (ValueError, OSError, EOFError) as exc:
        raise DistilleryError(f"{path}: not readable as NumPy arrays (numpy.savez's .npz, or a .npy; pickled "
                              f"objects are refused): {exc}") from None


def unlabelled_images(arrays: np.ndarray | dict[str, np.ndarray], path: Path) -> dict[str, np.ndarray]:
    """The images of a transfer source, by name: a ``.npy``'s array, else an ``.npz``'s ``x_train`` (and ``x_test``
    when it has one), else its ``x``; any labels are ignored."""
    if isinstance(arrays, np.ndarray):
        return {path.name: arrays}
    if "x_train" in arrays:
        return {k: arrays[k] for k in ("x_train", "x_test") if k in arrays}
    if "x" in arrays:
        return {"x": arrays["x"]}
    raise DistilleryError(f"{path}: no images: unlabelled rows are an .npz's x_train (and x_test), or its x, or a "
                          f".npy array; it has the arrays {sorted(arrays)}")


def check_inputs(parts: dict[str, np.ndarray], path: Path) -> None:
    """The arrays of inputs ``parts`` (name -> rows (N, ...)) checked: numbers, one row shape in all, and all
    ``uint8`` (pixels of 0..255) or none."""
    for name, x in parts.items():
        if x.dtype.kind not in "iuf":
            raise DistilleryError(f"{path}: {name} must be a numeric array, got dtype {x.dtype}")
        if x.ndim < 2:
            raise DistilleryError(f"{path}: {name} must hold one input per row, of shape (N, ...); it has shape "
                                  f"{list(x.shape)}")
    (first, x), *others = parts.items()
    for name, other in others:
        if other.shape[1:] != x.shape[1:]:
            raise DistilleryError(f"{path}: {first} holds inputs of shape {list(x.shape[1:])} but {name} of shape "
                                  f"{list(other.shape[1:])}: every row needs the same shape")
        if (other.dtype == np.uint8) != (x.dtype == np.uint8):
            raise DistilleryError(f"{path}: {first} has dtype {x.dtype} but {name} {other.dtype}: uint8 arrays are "
                                  "pixels of 0..255 and others are features, so both need the same dtype")


def as_inputs(parts: dict[str, np.ndarray]) -> tuple[np.ndarray, float | None]:
    """The checked arrays ``parts`` (``check_inputs``) as one array of inputs (``RawData.inputs``), and their pixel
    range (``uint8``: pixels of 0..255; None: features)."""
    inputs = np.concatenate(list(parts.values()))
    if inputs.dtype == np.uint8:
        return as_pixels(inputs, UINT8_PIXEL_MAX), UINT8_PIXEL_MAX
    return inputs.astype(np.float64), None


# (what follows "kind:", the repo root, data.source as written, whether to read the labels: not a transfer source's)
Loader = Callable[[str, Path, str, bool], RawData]
ARRAY_SOURCES: dict[str, Loader] = {"sklearn": load_digits, "npz": load_npz}


def load_source(source: str, root: Path = Path("."), label_names: list | None = None,
                labelled: bool = True) -> RawData:
    """Load an array ``data.source`` with its kind's loader, its labels as class indices (``with_class_indices``)
    into ``label_names`` (``data.label_names``); ``labelled`` False (a transfer source): its inputs alone, labels
    None. Relative paths are taken from ``root`` (the repo)."""
    kind, _, rest = source.partition(":")
    if problem := check_source(source):
        raise DistilleryError(f"data.source = {source!r}: {problem}")
    if kind not in ARRAY_SOURCES:
        raise DistilleryError(f"data.source = {source!r}: the kind {kind!r} is declared in data.params.SOURCE_KINDS "
                              f"({SOURCE_KINDS[kind]}) but is no array source: it has no loader in "
                              f"data.arrays.ARRAY_SOURCES, and is not one of the text and table kinds")
    raw = ARRAY_SOURCES[kind](rest, root, source, labelled)
    return with_class_indices(raw, label_names, f"data.source = {source!r}") if labelled else raw


def with_class_indices(raw: RawData, label_names: list | None, where: str) -> RawData:
    """``raw`` with its labels as class indices, by the rules of a table's label column (``files.source_problems``):
    into ``label_names``, else the names the source declares, the labels being indices 0..k-1 or those names
    (``labels_are_names``); without either, integer indices that leave none unused below the largest, the classes
    named 0..k-1. Every problem is refused in one error naming ``where`` and the ids."""
    import pandas as pd

    names = label_names or raw.label_names
    labels = pd.Series(raw.labels)
    by_name = labels_are_names(labels, names)
    problems = table_problems(pd.DataFrame({"label": labels}), [], "label", where, names, label_what=raw.labels_in,
                              rows=("ids", raw.ids), by_name=by_name)
    unused = None if names else unused_indices_problem(labels, raw.labels_in, where)
    refuse(problems + ([unused] if unused else []))
    if names is None:
        names = [str(i) for i in range(int(labels.max()) + 1)]
    return replace(raw, labels=class_indices(labels, names, by_name), label_names=[str(n) for n in names])
