"""MNISTDataset and the idx reader: the real files (when present) and every kind of bad file."""

import gzip
import hashlib

import numpy as np
import pytest
from conftest import data_dir
from needle.data import DataError, DataFileNotFound, DataLoader, MNISTDataset, read_idx

MNIST = data_dir() / "mnist"
TEST_IMAGES, TEST_LABELS = MNIST / "t10k-images-idx3-ubyte.gz", MNIST / "t10k-labels-idx1-ubyte.gz"
TRAIN_LABELS = MNIST / "train-labels-idx1-ubyte.gz"
needs_mnist = pytest.mark.skipif(not (TEST_IMAGES.is_file() and TEST_LABELS.is_file()),
                                 reason=f"MNIST test files absent from {MNIST} (set NEEDLE_DATA_DIR)")


@pytest.fixture(scope="module")
def mnist_test():
    return MNISTDataset(TEST_IMAGES, TEST_LABELS)


@needs_mnist
def test_real_test_set_shapes_ranges_and_labels(mnist_test):
    ds = mnist_test
    assert len(ds) == 10000
    x, y = ds[0]
    assert x.shape == (784,) and x.dtype == np.float32 and int(y) == 7
    xb, yb = ds[10:15]
    assert xb.shape == (5, 784) and yb.shape == (5,)
    assert ds.images.min() == 0.0 and ds.images.max() == 1.0
    assert ds.images.mean() == pytest.approx(0.13251, abs=1e-5)  # MNIST's published test mean
    assert ds.labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(ds.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def raw_test_images():
    return gzip.decompress(TEST_IMAGES.read_bytes())


@needs_mnist
@pytest.mark.parametrize("i", [0, 1, 42, 5005, 9999])
def test_real_items_match_sha256_of_the_raw_bytes(mnist_test, raw_test_images, i):
    raw = raw_test_images
    expected = hashlib.sha256(raw[16 + 784 * i:16 + 784 * (i + 1)]).hexdigest()
    pixels = np.rint(mnist_test[i][0] * 255).astype(np.uint8)
    assert hashlib.sha256(pixels.tobytes()).hexdigest() == expected
    labels = gzip.decompress(TEST_LABELS.read_bytes())
    assert int(mnist_test[i][1]) == labels[8 + i]


@pytest.mark.skipif(not TRAIN_LABELS.is_file(), reason=f"{TRAIN_LABELS} absent (set NEEDLE_DATA_DIR)")
def test_real_train_labels():
    y = read_idx(TRAIN_LABELS, 0x801)
    assert y.shape == (60000,) and y.dtype == np.uint8
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    raw = gzip.decompress(TRAIN_LABELS.read_bytes())
    assert hashlib.sha256(y.tobytes()).hexdigest() == hashlib.sha256(raw[8:]).hexdigest()


@needs_mnist
def test_real_loader_batches_match_dataset_slices(mnist_test):
    batches = list(DataLoader(mnist_test, batch_size=128))
    assert len(batches) == 79 and batches[-1][0].shape == (10000 - 78 * 128, 784)
    for i in (0, 40, 78):
        x, y = batches[i]
        tx, ty = mnist_test[i * 128:(i + 1) * 128]
        np.testing.assert_array_equal(x.numpy(), tx)
        np.testing.assert_array_equal(y.numpy(), ty)


# -- synthetic files: formats and failures -------------------------------------------------------
def idx_bytes(arr, type_code=0x08, dtype=">u1"):
    arr = np.asarray(arr)
    head = bytes([0, 0, type_code, arr.ndim]) + np.array(arr.shape, ">u4").tobytes()
    return head + arr.astype(dtype).tobytes()


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(1)
    images, labels = rng.integers(0, 256, (6, 28, 28)), np.array([3, 1, 4, 1, 5, 9])
    img, lab = tmp_path / "images", tmp_path / "labels.gz"
    img.write_bytes(idx_bytes(images))
    lab.write_bytes(gzip.compress(idx_bytes(labels)))
    return img, lab, images, labels


def test_raw_and_gz_files_read_alike(files, tmp_path):
    img, lab, images, labels = files
    ds = MNISTDataset(img, lab)
    np.testing.assert_allclose(ds[np.arange(6)][0], images.reshape(6, -1) / 255, rtol=1e-6)
    assert ds[np.arange(6)][1].tolist() == labels.tolist()
    gz = tmp_path / "images.gz"
    gz.write_bytes(gzip.compress(img.read_bytes()))
    np.testing.assert_array_equal(MNISTDataset(gz, lab).images, ds.images)


def test_read_idx_other_types(tmp_path):
    path = tmp_path / "shorts"
    values = np.array([[-3, 500], [7, -32768]])
    path.write_bytes(idx_bytes(values, 0x0B, ">i2"))
    out = read_idx(path)
    assert out.dtype == np.int16 and out.dtype.isnative
    np.testing.assert_array_equal(out, values)


def test_missing_file_names_it(files, tmp_path):
    img, lab, *_ = files
    with pytest.raises(DataFileNotFound, match="nope.gz: no such file") as info:
        MNISTDataset(tmp_path / "nope.gz", lab)
    assert isinstance(info.value, FileNotFoundError)


def test_wrong_magic_number(files):
    img, lab, *_ = files
    with pytest.raises(DataError, match=r"labels.gz: wrong magic number 0x00000801, expected 0x0+803"):
        MNISTDataset(lab, img)


def test_truncated_payload(files, tmp_path):
    img, lab, *_ = files
    cut = tmp_path / "cut"
    cut.write_bytes(img.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"cut: truncated: .*shape \(6, 28, 28\)"):
        MNISTDataset(cut, lab)
    cut.write_bytes(img.read_bytes()[:10])
    with pytest.raises(DataError, match="cut: truncated idx header"):
        MNISTDataset(cut, lab)


def test_trailing_bytes(files, tmp_path):
    img, lab, *_ = files
    long = tmp_path / "long"
    long.write_bytes(img.read_bytes() + b"\0")
    with pytest.raises(DataError, match="long: unexpected bytes after"):
        MNISTDataset(long, lab)


def test_count_mismatch_names_both_files(files, tmp_path):
    img, _, _, labels = files
    lab = tmp_path / "five"
    lab.write_bytes(idx_bytes(labels[:5]))
    with pytest.raises(DataError, match=r"images holds 6 images but .*five holds 5 labels"):
        MNISTDataset(img, lab)


def test_labels_out_of_range(files, tmp_path):
    img, *_ = files
    lab = tmp_path / "big"
    lab.write_bytes(idx_bytes([0, 1, 2, 3, 4, 12]))
    with pytest.raises(DataError, match="big: labels must be digits 0-9, found 12"):
        MNISTDataset(img, lab)


def test_broken_gzip(files, tmp_path):
    img, lab, *_ = files
    bad = tmp_path / "bad.gz"
    data = bytearray(gzip.compress(img.read_bytes()))
    data[-8] ^= 0xFF  # corrupt the CRC
    bad.write_bytes(bytes(data))
    with pytest.raises(DataError, match="bad.gz: not a valid gzip file"):
        MNISTDataset(bad, lab)


def test_not_an_idx_file(tmp_path):
    path = tmp_path / "text"
    path.write_bytes(b"hello world")
    with pytest.raises(DataError, match="text: not an idx file"):
        read_idx(path)
