"""Corrupted and truncated files: every reader either returns valid data or raises DataError."""

import gzip
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from needle.data import Corpus, DataError, MNISTDataset, read_cifar_batch, read_idx

rng = np.random.default_rng(0)
IMAGES = rng.integers(0, 256, (3, 5, 4)).astype(np.uint8)
LABELS = np.array([1, 7, 9], dtype=np.uint8)


def idx(arr, code):
    return bytes([0, 0, 8, code]) + np.array(arr.shape, ">u4").tobytes() + arr.tobytes()


PIXELS = rng.integers(0, 128, (2, 3072)).astype(np.uint8)  # < 128: same bytes in latin-1 and UTF-8
CIFAR = {
    "protocol 2": pickle.dumps({b"batch_label": b"b", b"labels": [3, 9], b"data": PIXELS,
                                b"filenames": [b"a.png", b"b.png"]}, protocol=2),
    "protocol 4": pickle.dumps({b"labels": [3, 9], b"data": PIXELS}, protocol=4),
}
VALID = {
    "idx images": idx(IMAGES, 3),
    "idx images gz": gzip.compress(idx(IMAGES, 3)),
    "idx labels": idx(LABELS, 1),
    **CIFAR,
    "text": b"the cat sat\non the mat\n\nend\n",
}


def structure(blob):
    """Byte positions that are not CIFAR pixel payload (flipping pixels proves nothing)."""
    start = blob.find(PIXELS.tobytes())
    if start < 0:
        return list(range(len(blob)))
    return [*range(start), *range(start + PIXELS.size, len(blob))]


@st.composite
def corrupted(draw, name):
    data = bytearray(VALID[name])
    positions = structure(bytes(data))
    for _ in range(draw(st.integers(0, 4))):
        data[draw(st.sampled_from(positions))] = draw(st.integers(0, 255))
    action = draw(st.sampled_from(["none", "truncate", "insert", "append"]))
    if action == "truncate":
        del data[draw(st.integers(0, len(data) - 1)):]
    elif action == "insert":
        at = draw(st.sampled_from(positions))
        data[at:at] = draw(st.binary(min_size=1, max_size=8))
    elif action == "append":
        data += draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("corrupt")


def read(name, blob, folder):
    """Run the reader for ``name`` on ``blob`` and check what it returns."""
    path = folder / "file"
    path.write_bytes(blob)
    if name.startswith("idx images"):
        labels = folder / "labels"
        labels.write_bytes(VALID["idx labels"])
        ds = MNISTDataset(path, labels)
        assert ds.images.dtype == np.float32 and ds.images.shape[0] == len(ds.labels)
        assert 0.0 <= ds.images.min() and ds.images.max() <= 1.0
    elif name == "idx labels":
        assert read_idx(path).dtype.isnative
    elif name.startswith("protocol"):
        data, labels = read_cifar_batch(path)
        assert data.dtype == np.uint8 and data.shape == (len(labels), 3072) and labels.max() <= 9
    else:
        path.rename(folder / "test.txt")
        corpus = Corpus(folder, splits=("test",))
        assert all(0 <= i < len(corpus.dictionary) for i in corpus.test)


@pytest.mark.parametrize("name", list(VALID))
def test_valid_files_read(name, scratch):
    read(name, VALID[name], scratch)


@pytest.mark.parametrize("name", list(VALID))
@given(data=st.data())
def test_corrupted_files_read_or_raise_data_error(name, scratch, data):
    blob = data.draw(corrupted(name))
    try:
        read(name, blob, scratch)
    except DataError:
        pass


@pytest.mark.parametrize("name", list(VALID))
@given(blob=st.binary(max_size=300))
def test_arbitrary_bytes_read_or_raise_data_error(name, scratch, blob):
    try:
        read(name, blob, scratch)
    except DataError:
        pass
