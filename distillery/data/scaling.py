"""``data.scaling``: feature scaling of array and table inputs, fitted on the train rows only.

``prepare`` scales every split with the scaler fitted on ``train`` and stores the scaled features, so
every later stage and every model sees the same transform; meta.json records the scaler and its
statistics per feature (the report's setting table shows them), from which ``rescale`` rebuilds the fitted
scaler for new rows (``data.inputs``).

- ``standard``: scikit-learn's ``StandardScaler`` (mean 0, variance 1 per feature on train);
- ``minmax``: ``MinMaxScaler`` (0..1 per feature on train);
- ``none``: the inputs as loaded;
- ``auto``: ``none`` for pixel intensities (``sklearn:digits``, ``uint8`` arrays: already 0..1),
  ``standard`` for every other source.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .prepared import Split

DIGITS_PIXEL_MAX = 16.0  # sklearn's digits: 8x8 images of 0..16
UINT8_PIXEL_MAX = 255.0  # npz: uint8 arrays are images of 0..255
STATISTICS = {"standard": ("mean_", "scale_"), "minmax": ("data_min_", "data_max_")}


def as_pixels(values: np.ndarray, pixel_max: float) -> np.ndarray:
    """Pixel values of 0..``pixel_max`` as float32 intensities in 0..1, as every image source is loaded (and new
    images for a model, ``data.inputs``)."""
    return (values / pixel_max).astype(np.float32)


def resolve(scaling: str, pixels: bool) -> str:
    """The scaler ``data.scaling`` stands for with these inputs: ``standard``, ``minmax`` or ``none``."""
    if scaling != "auto":
        return scaling
    return "none" if pixels else "standard"


def scale_splits(splits: dict[str, Split], scaling: str, pixels: bool) -> tuple[dict[str, Split], dict]:
    """Every split with its inputs scaled (float32) by the scaler fitted on ``splits["train"]`` alone, and
    what meta.json records: the param, the scaler, the train rows it was fitted on and its statistics."""
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    kind = resolve(scaling, pixels)
    record = {"param": scaling, "scaler": kind}
    if kind == "none":
        return {name: replace(s, inputs=s.inputs.astype(np.float32, copy=False)) for name, s in splits.items()}, record
    train = splits["train"].inputs
    scaler = {"standard": StandardScaler, "minmax": MinMaxScaler}[kind]().fit(_flat(train))
    scaled = {name: replace(s, inputs=scaler.transform(_flat(s.inputs)).astype(np.float32).reshape(s.inputs.shape))
              for name, s in splits.items()}
    record["fitted_on_train_rows"] = len(train)
    record.update({attr.rstrip("_"): getattr(scaler, attr).tolist() for attr in STATISTICS[kind]})
    return scaled, record


def _flat(inputs: np.ndarray) -> np.ndarray:
    """(N, ...) inputs as an (N, features) float64 matrix, the shape scikit-learn's scalers take."""
    return inputs.reshape(len(inputs), -1).astype(np.float64)


def rescale(inputs: np.ndarray, record: dict) -> np.ndarray:
    """New rows (N, ...) scaled as ``scale_splits`` scaled the prepared ones (float32), by the scaler rebuilt from
    its ``record`` in meta.json: the same scikit-learn transform on the same statistics, so the same bits."""
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    kind = record["scaler"]
    if kind == "none":
        return inputs.astype(np.float32, copy=False)
    if kind == "standard":
        scaler = StandardScaler()
        scaler.mean_, scaler.scale_ = np.asarray(record["mean"]), np.asarray(record["scale"])
        scaler.var_, scaler.n_features_in_ = scaler.scale_ ** 2, len(scaler.mean_)
    else:  # minmax: fitted on the two rows of its statistics, it has the same data_min_ and data_max_
        scaler = MinMaxScaler().fit(np.array([record["data_min"], record["data_max"]]))
    return scaler.transform(_flat(inputs)).astype(np.float32).reshape(inputs.shape)
