"""Train/validation/test splits of a source's rows, from ``data.split_seed``: stratified by label, or plain random
splits for rows without labels (a language-model corpus)."""
from __future__ import annotations

import numpy as np

from ..errors import DistilleryError
from .validation import check_splits_not_empty, check_stratifiable


def split_indices(
    labels: np.ndarray,
    data_params: dict,
    test_mask: np.ndarray | None,
    source: str = "data",
    label_names: list[str] | None = None,
) -> dict[str, np.ndarray]:
    """Stratified train/validation/test row indices from ``data.split_seed`` (sorted, so ids stay ordered)."""
    from sklearn.model_selection import train_test_split

    seed = data_params["split_seed"]
    rows = np.arange(len(labels))
    names = label_names or [str(i) for i in range(int(labels.max()) + 1)]
    try:  # the checks name the scarce classes; scikit-learn's own error is the fallback
        if test_mask is None:
            check_stratifiable(labels, data_params["test_fraction"], "test", source, names)
            rest, test = train_test_split(
                rows, test_size=data_params["test_fraction"], stratify=labels, random_state=seed
            )
        else:
            rest, test = rows[~test_mask], rows[test_mask]
        check_stratifiable(labels[rest], data_params["validation_fraction"], "validation", source, names,
                           test_took=labels[test] if test_mask is None else None)
        train, validation = train_test_split(
            rest, test_size=data_params["validation_fraction"], stratify=labels[rest], random_state=seed
        )
    except ValueError as exc:
        raise DistilleryError(f"{source}: cannot make stratified splits from {len(labels)} rows: {exc}") from None
    index = {"train": np.sort(train), "validation": np.sort(validation), "test": np.sort(test)}
    check_splits_not_empty({name: len(rows) for name, rows in index.items()}, source)
    return index


def random_split_indices(n: int, data_params: dict, test_mask: np.ndarray | None,
                         source: str = "data") -> dict[str, np.ndarray]:
    """Like ``split_indices`` for ``n`` rows without labels: plain random splits from ``data.split_seed``."""
    from sklearn.model_selection import train_test_split

    seed = data_params["split_seed"]
    rows = np.arange(n)
    try:
        if test_mask is None:
            rest, test = train_test_split(rows, test_size=data_params["test_fraction"], random_state=seed)
        else:
            rest, test = rows[~test_mask], rows[test_mask]
        train, validation = train_test_split(rest, test_size=data_params["validation_fraction"], random_state=seed)
    except ValueError as exc:
        raise DistilleryError(f"{source}: cannot split {n} rows into train/validation/test: {exc}") from None
    index = {"train": np.sort(train), "validation": np.sort(validation), "test": np.sort(test)}
    check_splits_not_empty({name: len(rows) for name, rows in index.items()}, source)
    return index
