"""DataLoader and NDArrayDataset: order, coverage, batching, dtypes, devices."""

import needle as ndl
import numpy as np
import pytest
from needle.data import DataError, DataLoader, Dataset, NDArrayDataset


class CountingDataset(NDArrayDataset):
    """NDArrayDataset that records every index it is asked for."""

    def __init__(self, *arrays):
        super().__init__(*arrays)
        self.calls = []

    def __getitem__(self, index):
        self.calls.append(index)
        return super().__getitem__(index)


class PerSampleDataset(Dataset):
    """A course-style dataset that only understands integer indices."""

    def __init__(self, n):
        super().__init__()
        self.n = n
        self.calls = 0

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not isinstance(i, int):
            raise TypeError(f"integer index expected, got {type(i).__name__}")
        self.calls += 1
        return np.full((2, 3), float(i)), i % 4


def ids_per_epoch(loader):
    return [batch[1].numpy().tolist() for batch in loader]


@pytest.mark.parametrize("n,batch_size", [(100, 1), (100, 10), (103, 10), (7, 20), (128, 128)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_every_sample_exactly_once_per_epoch(n, batch_size, shuffle):
    x = np.random.rand(n, 3).astype(np.float32)
    loader = DataLoader(NDArrayDataset(x, np.arange(n)), batch_size, shuffle=shuffle)
    for _ in range(2):
        batches = list(loader)
        ids = np.concatenate([b[1].numpy() for b in batches])
        assert sorted(ids.tolist()) == list(range(n))
        assert [len(b[1].numpy()) for b in batches[:-1]] == [batch_size] * (len(batches) - 1)
        assert len(batches[-1][1].numpy()) == n - batch_size * (len(batches) - 1)
        assert len(batches) == len(loader) == -(-n // batch_size)
        for xb, yb in batches:  # features travel with their labels
            np.testing.assert_array_equal(xb.numpy(), x[yb.numpy()])
        if not shuffle:
            assert ids.tolist() == list(range(n))


def test_last_partial_batch_and_drop_last():
    ds = NDArrayDataset(np.arange(103))
    sizes = [len(b[0].numpy()) for b in DataLoader(ds, 10)]
    assert sizes == [10] * 10 + [3]
    loader = DataLoader(ds, 10, shuffle=True, drop_last=True)
    batches = [b[0].numpy() for b in loader]
    assert [len(b) for b in batches] == [10] * 10 and len(loader) == 10
    assert len(set(np.concatenate(batches).tolist())) == 100
    # drop_last never drops a full last batch
    assert len(list(DataLoader(NDArrayDataset(np.arange(100)), 10, drop_last=True))) == 10


def test_empty_dataset_yields_nothing():
    loader = DataLoader(NDArrayDataset(np.zeros((0, 3))), 4, shuffle=True)
    assert list(loader) == [] and len(loader) == 0


def test_shuffle_is_the_course_order_and_seed_reproduces_it():
    np.random.seed(0)
    it = iter(DataLoader(NDArrayDataset(np.arange(100)), batch_size=1, shuffle=True))
    first = [next(it)[0].numpy().item() for _ in range(10)]
    assert first == [26, 86, 2, 55, 75, 93, 16, 73, 54, 95]  # the course's hw2 reference values

    loader = DataLoader(NDArrayDataset(np.arange(103)), batch_size=10, shuffle=True)
    np.random.seed(5)
    epoch = [b[0].numpy().tolist() for b in loader]
    np.random.seed(5)
    perm = np.random.permutation(103)
    expected = np.array_split(perm, range(10, 103, 10))
    assert epoch == [e.tolist() for e in expected]
    np.random.seed(5)
    assert [b[0].numpy().tolist() for b in loader] == epoch


def test_shuffle_changes_order_across_epochs():
    loader = DataLoader(NDArrayDataset(np.arange(50)), batch_size=8, shuffle=True)
    np.random.seed(1)
    epochs = [np.concatenate([b[0].numpy() for b in loader]).tolist() for _ in range(3)]
    assert epochs[0] != epochs[1] != epochs[2]
    assert all(sorted(e) == list(range(50)) for e in epochs)


def test_permutation_is_drawn_when_iteration_starts():
    loader = DataLoader(NDArrayDataset(np.arange(20)), batch_size=20, shuffle=True)
    np.random.seed(3)
    it = iter(loader)
    np.random.rand(5)  # draws between iter() and next() must not change this epoch
    np.random.seed(3)
    expected = np.random.permutation(20)
    np.testing.assert_array_equal(next(it)[0].numpy(), expected)


def test_one_vectorised_gather_per_batch():
    ds = CountingDataset(np.random.rand(25, 4), np.arange(25))
    assert len(list(DataLoader(ds, 10, shuffle=True))) == 3
    assert len(ds.calls) == 3 and all(isinstance(c, np.ndarray) for c in ds.calls)


def test_per_sample_fallback_stacks_fields():
    ds = PerSampleDataset(11)
    batches = list(DataLoader(ds, 4))
    assert ds.calls == 11 and len(batches) == 3
    x, y = batches[1]
    assert x.shape == (4, 2, 3) and y.shape == (4,)
    np.testing.assert_array_equal(x.numpy()[:, 0, 0], [4, 5, 6, 7])
    np.testing.assert_array_equal(y.numpy(), [0, 1, 2, 3])


def test_dtypes_and_tensors(device):
    x = np.random.rand(10, 3)  # float64 in the dataset
    ds = NDArrayDataset(x, np.arange(10, dtype=np.uint8))
    xb, yb = next(iter(DataLoader(ds, 4, device=device)))
    assert isinstance(xb, ndl.Tensor) and xb.device == ndl.device(device)
    assert xb.dtype == np.float32 and yb.dtype == np.int64
    assert not xb.requires_grad and not yb.requires_grad
    np.testing.assert_allclose(xb.numpy(), x[:4], rtol=1e-6)
    xb, yb = next(iter(DataLoader(ds, 4, device=device, dtype="float64")))
    assert xb.dtype == np.float64
    xb, yb = next(iter(DataLoader(ds, 4, device=device, dtype=None)))
    assert xb.dtype == np.float64 and yb.dtype == np.uint8


class ViewDataset(NDArrayDataset):
    """Answers a batch index with a view of its storage (breaking the new-arrays promise)."""

    def __getitem__(self, index):
        index = np.asarray(index)
        return tuple(a[index.min():index.max() + 1] for a in self.arrays)


@pytest.mark.parametrize("dataset", [NDArrayDataset, ViewDataset, PerSampleDataset])
def test_batches_do_not_alias_the_dataset(dataset):
    x = np.zeros((4, 2, 3), dtype=np.float32)
    ds = PerSampleDataset(4) if dataset is PerSampleDataset else dataset(x)
    before = ds[0][0].copy()
    xb = next(iter(DataLoader(ds, 4, dtype=None)))[0]
    xb.numpy()[:] = 7.0
    np.testing.assert_array_equal(ds[0][0], before)


def test_bad_arguments_are_clear():
    with pytest.raises(DataError, match="batch_size must be a positive integer"):
        DataLoader(NDArrayDataset(np.arange(3)), 0)
    with pytest.raises(DataError, match="__getitem__ and __len__"):
        DataLoader(42, 1)
    with pytest.raises(DataError, match=r"share their first dimension.*\(3,\), \(4,\)"):
        NDArrayDataset(np.arange(3), np.arange(4))
    with pytest.raises(DataError, match="dtype <U1"):
        next(iter(DataLoader(NDArrayDataset(np.array(list("abc"))), 2)))


def test_ndarray_dataset_indexing_matches_course():
    x = np.random.rand(100, 10, 10)
    ds = NDArrayDataset(x)
    for batch_size in (1, 10, 100):
        for i, (xb,) in enumerate(DataLoader(ds, batch_size)):
            truth = ds[i * batch_size:(i + 1) * batch_size][0].reshape((batch_size, 10, 10))
            np.testing.assert_allclose(truth, xb.numpy(), rtol=1e-6)
