"""Hinton et al. (2015)'s omitted-class experiment (``data.omit_classes``).

The students (distilled and hard) never see a row of the omitted classes: they are removed from the labelled
train rows and from the transfer rows whose source label is known (rest rows, augmented variants of an
omitted row). The teacher still knows them, so a distilled student learns about them from the soft targets
of the other rows only. The paper (MNIST, the 3s omitted): the distilled net made 206 test errors, 133 of
them on the 1,010 threes; raising the bias of the 3 output by 3.5 brought it to 109 errors, 14 on threes.

The bias correction here adds one value ``b`` to the logit of every omitted class, ``b`` fitted on the
validation split (the smallest value on a grid of 0.1 steps in [0, 20] with the highest validation accuracy);
evaluate reports the test errors, on all rows and on the omitted classes' rows, before and after.
"""
from __future__ import annotations

import numpy as np

from ..errors import DistilleryError
from .prepared import Prepared, Split

PAPER = {"errors": 206, "omitted_errors": 133, "omitted_rows": 1010, "bias": 3.5,
         "errors_after": 109, "omitted_errors_after": 14}
GRID = np.round(np.arange(0.0, 20.0 + 1e-9, 0.1), 1)


def resolve(omit: list, label_names: list[str]) -> list[int]:
    """``data.omit_classes`` (class indices or names) as sorted class indices; refused if a class does not exist
    or nothing would be left."""
    out = []
    for c in omit:
        if isinstance(c, int) and not isinstance(c, bool) and 0 <= c < len(label_names):
            out.append(c)
        elif isinstance(c, str) and c in label_names:
            out.append(label_names.index(c))
        else:
            raise DistilleryError(f"params.yaml: data.omit_classes = {omit!r}: no class {c!r}; the classes are "
                                  f"indices 0..{len(label_names) - 1} or names {label_names}")
    if len(set(out)) >= len(label_names) - 1:
        raise DistilleryError(f"params.yaml: data.omit_classes = {omit!r}: at least two classes must stay")
    return sorted(set(out))


def keep_rows(split: Split, omitted: list[int]) -> Split:
    """``split`` without the rows of the ``omitted`` classes."""
    keep = ~np.isin(split.labels, omitted)
    rows = np.flatnonzero(keep)
    return Split(split.ids[rows], None if split.inputs is None else split.inputs[rows], split.labels[rows],
                 None if split.dataset is None else split.dataset.select(rows))


def without_omitted(prepared: Prepared, omitted: list[int]) -> Prepared:
    """A copy of ``prepared`` whose train split has no row of the omitted classes (validation and test stay)."""
    from dataclasses import replace

    if not omitted:
        return prepared
    return replace(prepared, splits={**prepared.splits, "train": keep_rows(prepared.splits["train"], omitted)})


def transfer_without_omitted(transfer: tuple, omitted: list[int]) -> tuple:
    """The transfer set and its logits without the rows whose source label is an omitted class."""
    from dataclasses import replace

    rows, logits = transfer
    if not omitted:
        return transfer
    keep = np.flatnonzero(~np.isin(rows.source_labels, omitted))
    dataset = rows.dataset.select(keep) if rows.dataset is not None else None
    return replace(rows, ids=rows.ids[keep], inputs=None if rows.inputs is None else rows.inputs[keep],
                   source_labels=rows.source_labels[keep], origins=rows.origins[keep], dataset=dataset), logits[keep]


def corrected(logits: np.ndarray, omitted: list[int], bias: float) -> np.ndarray:
    out = np.array(logits, dtype=np.float64, copy=True)
    out[:, omitted] += bias
    return out


def fit_bias(val_logits: np.ndarray, val_labels: np.ndarray, omitted: list[int]) -> float:
    """The value added to the omitted classes' logits that maximises validation accuracy (smallest on ties)."""
    accuracies = [(corrected(val_logits, omitted, b).argmax(1) == val_labels).mean() for b in GRID]
    return float(GRID[int(np.argmax(accuracies))])


def errors(logits: np.ndarray, labels: np.ndarray, omitted: list[int]) -> dict:
    wrong = logits.argmax(1) != labels
    on = np.isin(labels, omitted)
    return {"errors": int(wrong.sum()), "omitted_errors": int((wrong & on).sum()), "omitted_rows": int(on.sum())}


def omitted_table(test_logits: list[np.ndarray], val_logits: list[np.ndarray], test_labels: np.ndarray,
                  val_labels: np.ndarray, omitted: list[int]) -> dict:
    """Per seed: the fitted bias and the test errors before and after the correction; and their means."""
    seeds = []
    for test, val in zip(test_logits, val_logits):
        bias = fit_bias(val, val_labels, omitted)
        before, after = errors(test, test_labels, omitted), errors(corrected(test, omitted, bias), test_labels, omitted)
        seeds.append({"bias": bias, **before, "errors_after": after["errors"],
                      "omitted_errors_after": after["omitted_errors"]})
    mean = {k: float(np.mean([s[k] for s in seeds])) for k in seeds[0]}
    return {"seeds": seeds, "mean": mean}
