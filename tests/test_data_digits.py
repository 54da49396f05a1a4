"""DigitsDataset: scikit-learn's 8x8 digits with a deterministic train/test split."""

import csv
import gzip
import importlib.util
import io
import sys

import numpy as np
import pytest
from needle.data import DataError, DataLoader, DigitsDataset, RandomFlipHorizontal
from needle.data.datasets import digits_dataset

pytestmark = pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                                reason="the digits extra (scikit-learn) is not installed")


@pytest.fixture(scope="module")
def reference():
    """scikit-learn's table parsed with the csv module (independent of needle's reader)."""
    path = digits_dataset.sklearn_digits_file()
    table = np.array([[float(v) for v in row] for row in
                      csv.reader(io.StringIO(gzip.decompress(path.read_bytes()).decode()))])
    return table[:, :64] / 16.0, table[:, 64].astype(int)


def test_default_split_partitions_all_1797_digits(reference):
    ref_x, ref_y = reference
    train, test = DigitsDataset(train=True), DigitsDataset(train=False)
    assert (len(train), len(test)) == (1437, 360)  # test part rounds up, as train_test_split
    x, y = train[0]
    assert x.shape == (64,) and x.dtype == np.float32 and 0 <= int(y) <= 9
    both = np.concatenate([train.images, test.images])
    assert both.min() == 0.0 and both.max() == 1.0
    # every image keeps its own label: compare (image, label) multisets with scikit-learn's
    pairs = sorted((r.astype(np.float32).tobytes(), int(t)) for r, t in zip(ref_x, ref_y))
    labels = np.concatenate([train.labels, test.labels])
    ours = sorted((r.tobytes(), int(t)) for r, t in zip(both, labels))
    assert ours == pairs
    assert np.bincount(test.labels, minlength=10).min() > 15  # every class is in the test part


def test_split_is_deterministic_and_seeded():
    state = np.random.get_state()[1].copy()
    a, b = DigitsDataset(seed=0), DigitsDataset(seed=0)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # global generator untouched
    c = DigitsDataset(seed=1)
    assert not np.array_equal(a.labels, c.labels)
    assert len(DigitsDataset(train=False, test_size=100)) == 100
    assert len(DigitsDataset(train=True, test_size=0.5)) == 898


@pytest.mark.parametrize("test_size", [0.0, 1.0, 1.5, 0, 1797, True, "0.2"])
def test_bad_test_size(test_size):
    with pytest.raises(DataError, match="test_size"):
        DigitsDataset(test_size=test_size)


def test_loader_and_transforms():
    ds = DigitsDataset(train=False)
    x, y = next(iter(DataLoader(ds, 32, shuffle=True)))
    assert x.shape == (32, 64) and x.dtype == np.float32 and y.dtype == np.int64
    flipped = DigitsDataset(train=False, transforms=[RandomFlipHorizontal(1.0)])
    np.testing.assert_array_equal(flipped[5][0], ds[5][0].reshape(8, 8)[:, ::-1].reshape(-1))


def test_clear_message_without_scikit_learn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'needle-nn\[digits\]'"):
        DigitsDataset()


def test_fallback_through_scikit_learns_api_gives_the_same_arrays(monkeypatch):
    fast = digits_dataset.load_digits_arrays()
    monkeypatch.setattr(digits_dataset, "sklearn_digits_file", lambda: None)
    slow = digits_dataset.load_digits_arrays()  # sklearn.datasets.load_digits
    np.testing.assert_array_equal(fast[0], slow[0])
    np.testing.assert_array_equal(fast[1], slow[1])
