"""Stratified splits of labelled rows: a class too small to split is named with the rows it has and where they went."""
from __future__ import annotations

import re

import numpy as np
import pytest

from distillery.data.splitting import split_indices
from distillery.errors import DistilleryError

DATA = {"split_seed": 0, "test_fraction": 0.2, "validation_fraction": 0.15}


def test_a_class_left_too_small_by_the_test_split_is_named_with_the_rows_it_had():
    labels = np.r_[np.zeros(30, int), np.ones(30, int), [2, 2]]  # 2 rows of 'nebbiolo': one goes to test
    with pytest.raises(DistilleryError, match=re.escape(
            "wine.csv: too few rows to split off a stratified validation split: classes {'nebbiolo': 1} have fewer "
            "than 2 rows left for train and validation once the stratified test split took {'nebbiolo': 1} of their "
            "{'nebbiolo': 2} (give more data or fewer classes)")):
        split_indices(labels, DATA, None, "wine.csv", ["barbera", "barolo", "nebbiolo"])


def test_a_class_too_small_in_the_sources_own_train_split_is_named_as_it_is():
    labels = np.r_[np.zeros(30, int), np.ones(30, int), [2], np.zeros(10, int), [2, 2]]
    test_mask = np.arange(len(labels)) >= 61  # the source's own test split: nothing taken from train
    with pytest.raises(DistilleryError, match=re.escape(
            "train.csv: too few rows to split off a stratified validation split: classes {'nebbiolo': 1} have fewer "
            "than 2 rows (give more data or fewer classes)")):
        split_indices(labels, DATA, test_mask, "train.csv", ["barbera", "barolo", "nebbiolo"])
