"""CIFAR10Dataset on small batch files written in the real format, and the restricted unpickler."""

import os
import pickle
import struct

import needle as ndl
import numpy as np
import pytest
from needle.data import (
    CIFAR10Dataset,
    DataError,
    DataFileNotFound,
    DataLoader,
    RandomFlipHorizontal,
    read_pickle,
)

TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


def py2_pickle(data, labels):
    """The bytes Python 2's cPickle wrote for CIFAR-10 (protocol 2, str keys, numpy.core names)."""
    def s(b):  # a Python 2 str
        return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b

    n = data.shape[0]
    dtype = (b"cnumpy\ndtype\n" + s(b"u1") + b"K\x00K\x01\x87R(K\x03" + s(b"|")
             + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
    array = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + s(b"b") + b"\x87R"
             + b"(K\x01J" + struct.pack("<i", n) + b"M\x00\x0c\x86" + dtype + b"\x89"
             + s(data.tobytes()) + b"tb")
    items = b"".join(b"K" + bytes([y]) for y in labels)
    return (b"\x80\x02}(" + s(b"batch_label") + s(b"training batch 1 of 5") + s(b"data") + array
            + s(b"labels") + b"](" + items + b"e" + s(b"filenames") + b"](" + s(b"x.png") * n + b"eu.")


def write_batch(path, data, labels, style):
    if style == "py2":
        path.write_bytes(py2_pickle(data, labels))
        return
    batch = {b"batch_label": b"testing batch", b"labels": list(labels), b"data": data,
             b"filenames": [b"img_%d.png" % i for i in range(len(labels))]}
    path.write_bytes(pickle.dumps(batch, protocol=style))


def make_folder(tmp_path, sizes=(3, 2, 4, 1, 3), test_size=4, style="py2"):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    parts = {}
    for name, n in [*zip(TRAIN, sizes), ("test_batch", test_size)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        write_batch(folder / name, data, labels, style)
        parts[name] = (data, labels)
    return folder, parts


@pytest.mark.parametrize("style", ["py2", 2, 4, 5])
def test_reads_the_real_format(tmp_path, style):
    folder, parts = make_folder(tmp_path, style=style)
    train = CIFAR10Dataset(folder, train=True)
    data = np.concatenate([parts[name][0] for name in TRAIN])
    labels = sum((parts[name][1] for name in TRAIN), [])
    assert len(train) == 13
    x, y = train[4]
    assert isinstance(x, np.ndarray) and x.shape == (3, 32, 32) and x.dtype == np.float32
    np.testing.assert_array_equal(train.images, data.reshape(-1, 3, 32, 32) / np.float32(255))
    assert train.labels.tolist() == labels and int(y) == labels[4]
    assert 0.0 <= train.images.min() and train.images.max() <= 1.0
    test = CIFAR10Dataset(folder, train=False)
    assert len(test) == 4 and test.labels.tolist() == parts["test_batch"][1]


def test_loader_gives_nchw_float32_batches(tmp_path, device):
    folder, _ = make_folder(tmp_path)
    ds = CIFAR10Dataset(folder, train=True)
    x, y = next(iter(DataLoader(ds, 5, shuffle=True, device=device)))
    assert isinstance(x, ndl.Tensor) and x.shape == (5, 3, 32, 32) and x.dtype == "float32"
    assert y.shape == (5,) and y.dtype == np.int64


def test_transforms_see_hwc(tmp_path):
    folder, _ = make_folder(tmp_path)
    plain = CIFAR10Dataset(folder, train=False)
    flipped = CIFAR10Dataset(folder, train=False, transforms=[RandomFlipHorizontal(1.0)])
    np.testing.assert_array_equal(flipped[2][0], plain[2][0][:, :, ::-1])  # W is the last axis
    np.testing.assert_array_equal(flipped[:3][0], plain[:3][0][:, :, :, ::-1])


def test_missing_folder_and_file(tmp_path):
    with pytest.raises(DataFileNotFound, match="nowhere: no such file"):
        CIFAR10Dataset(tmp_path / "nowhere", train=True)
    folder, _ = make_folder(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataFileNotFound, match="data_batch_3: no such file"):
        CIFAR10Dataset(folder, train=True)
    assert len(CIFAR10Dataset(folder, train=False)) == 4


def rewrite(folder, batch, protocol=4):
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=protocol))


def good_batch(n=2):
    return {b"data": np.zeros((n, 3072), np.uint8), b"labels": [1] * n}


@pytest.mark.parametrize("batch,message", [
    ({**good_batch(), b"extra": 1}, "unexpected keys"),
    ({b"data": np.zeros((2, 3072), np.uint8)}, "unexpected keys"),
    ({**good_batch(), b"data": np.zeros((2, 3000), np.uint8)},
     r"shape \(N, 3072\), found uint8 array of shape \(2, 3000\)"),
    ({**good_batch(), b"data": np.zeros((2, 3072), np.float32)}, "found float32 array"),
    ({**good_batch(), b"data": [0] * 3072}, "found list"),
    ({**good_batch(), b"labels": [1, 10]}, "labels must be classes 0-9, found 1..10"),
    ({**good_batch(), b"labels": [1, -1]}, "labels must be classes 0-9"),
    ({**good_batch(), b"labels": [1]}, "2 images but 1 labels"),
    ({**good_batch(), b"labels": ["cat", "dog"]}, "'labels' must be a list of integers"),
    ([1, 2, 3], "a CIFAR-10 batch is a dict, found list"),
])
def test_bad_batches_are_explained(tmp_path, batch, message):
    folder, _ = make_folder(tmp_path)
    rewrite(folder, batch)
    with pytest.raises(DataError, match=rf"test_batch: .*{message}"):
        CIFAR10Dataset(folder, train=False)


class Evil:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.parametrize("fn,name", [(os.system, "system"), (eval, "eval"), (getattr, "getattr"),
                                     (np.load, "load")])
def test_pickles_that_import_anything_else_are_refused(tmp_path, fn, name):
    marker = tmp_path / "pwned"
    folder, _ = make_folder(tmp_path)
    payload = {"system": f"touch {marker}", "eval": f"open({str(marker)!r}, 'w')",
               "getattr": "x", "load": str(marker)}[name]
    for protocol in (2, 4):
        rewrite(folder, {**good_batch(), b"data": Evil(fn, payload)}, protocol)
        with pytest.raises(DataError, match=rf"test_batch: refusing to load the global \S+\.{name}:"):
            CIFAR10Dataset(folder, train=False)
    assert not marker.exists()


def test_read_pickle_plain_containers(tmp_path):
    path = tmp_path / "plain"
    obj = {b"a": [1, 2.5, None, True], "b": (b"x", "y"), "c": np.arange(3)}
    path.write_bytes(pickle.dumps(obj, protocol=2))
    out = read_pickle(path, "test data")
    assert out[b"a"] == [1, 2.5, None, True] and out["b"] == (b"x", "y")
    np.testing.assert_array_equal(out["c"], np.arange(3))
    path.write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(DataError, match="plain: not a valid pickle of test data"):
        read_pickle(path, "test data")
