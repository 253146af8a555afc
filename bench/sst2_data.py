"""What the SST-2 benchmarks share: the `sst2-minilm` preset's params and a fixed random subset of SST-2 train.

Reads ../shared/data/sst2_train.tsv.gz (relative to the repo root); exits with a clear message without it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from distillery.params import validate

REPO = Path(__file__).resolve().parents[1]
TRAIN_TSV = REPO.parent / "shared" / "data" / "sst2_train.tsv.gz"
LABELS = ["negative", "positive"]


def preset() -> dict:
    """The validated params of presets/sst2-minilm.yaml."""
    return validate(yaml.safe_load((REPO / "presets" / "sst2-minilm.yaml").read_text()))


def sentences(n: int | None, seed: int = 0):
    """``n`` SST-2 train sentences drawn at random with ``seed`` (all of them when None), as a ``datasets.Dataset``
    with the prepared columns ``id``, ``text``, ``label``."""
    import datasets
    import pandas as pd

    if not TRAIN_TSV.exists():
        raise SystemExit(f"{TRAIN_TSV.relative_to(REPO.parent)} not found: the SST-2 benchmarks need it")
    table = pd.read_csv(TRAIN_TSV, sep="\t", quoting=3, keep_default_na=False)
    if n is not None:
        table = table.iloc[np.sort(np.random.default_rng(seed).permutation(len(table))[:n])]
    return datasets.Dataset.from_dict({"id": table.index.to_numpy(), "text": table["sentence"].tolist(),
                                       "label": table["label"].to_numpy()})
