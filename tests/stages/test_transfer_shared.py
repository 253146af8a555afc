"""The transfer presets on the real data in ../shared/data (skipped where that folder is absent)."""
from __future__ import annotations


import numpy as np
import pytest

from distillery.data.prepare import prepare
from distillery.experiments.presets import resolve
from distillery.data.transfer import build_transfer

from ..conftest import REPO

SHARED_DATA = REPO.parent / "shared" / "data"
pytestmark = pytest.mark.usefixtures("in_repository")  # the shipped presets/, as the commands read them


@pytest.mark.skipif(not (SHARED_DATA / "sst2_train.tsv.gz").exists(),
                    reason=f"the SST-2 TSV files are not in {SHARED_DATA} (../shared/data beside the repo)")
def test_sst2_transfer_preset_gives_the_rest_of_train_as_unlabelled_rows(tmp_path):
    params = resolve("sst2-minilm-transfer", ["data.transfer.augment=1"])
    prepared = prepare(params["data"], tmp_path / "prepared", REPO)
    assert prepared.meta["sizes"]["train"] == 10_000 and prepared.meta["sizes"]["test"] == 872
    transfer = build_transfer(params["data"], prepared, REPO)
    counts = transfer.meta["counts"]
    # SST-2 train has 67,349 rows: 861 validation sentences (12.5 % of its 6,885 sentences), the 6,986 phrases
    # found only inside them (data.validation_split: sentences), the 10,000 labelled rows, and the rest
    assert prepared.meta["sizes"]["validation"] == 861
    assert "less 6,986 phrases found only inside validation sentences" in prepared.meta["split_origin"]["train"]
    assert counts["rest"] == 67_349 - 861 - 6_986 - 10_000
    assert 9_000 < counts["augment"] <= 10_000
    labelled = np.concatenate([s.ids for s in prepared.splits.values()])
    assert not np.intersect1d(transfer.ids, labelled).size and len(np.unique(transfer.ids)) == len(transfer)
    assert 0.5 < transfer.source_labels[transfer.origins == 0].mean() < 0.6  # the labels kept aside (56 % positive)


@pytest.mark.skipif(not (SHARED_DATA / "mnist.npz").exists(),
                    reason=f"mnist.npz is not in {SHARED_DATA} (../shared/data beside the repo)")
def test_mnist_jitter_preset_shifts_every_training_image_once(tmp_path):
    params = resolve("mnist-jitter")
    prepared = prepare(params["data"], tmp_path / "prepared", REPO)
    transfer = build_transfer(params["data"], prepared, REPO)
    train = prepared.splits["train"]
    assert len(transfer) == len(train.ids) == 57_000  # mnist-hinton's split: 5 % of the 60,000 validate
    assert transfer.inputs.shape[1:] == train.inputs.shape[1:] == (28, 28)
    assert np.array_equal(transfer.source_labels, train.labels)
    assert transfer.ids.min() == 70_000  # above every MNIST row id (60,000 train + 10,000 test)
