"""RandomFlipHorizontal and RandomCrop: course semantics, draws and use inside datasets."""

import gzip

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from needle.data import DataError, DataLoader, MNISTDataset, RandomCrop, RandomFlipHorizontal


def shifted(img, sx, sy):
    """Reference crop, written as a shift: out[i, j] = img[i + sx, j + sy], zero outside."""
    h, w, _ = img.shape
    out = np.zeros_like(img)
    for i in range(h):
        for j in range(w):
            if 0 <= i + sx < h and 0 <= j + sy < w:
                out[i, j] = img[i + sx, j + sy]
    return out


@given(seed=st.integers(0, 2**31 - 1), padding=st.integers(0, 6),
       h=st.integers(1, 7), w=st.integers(1, 7), c=st.integers(1, 3))
def test_random_crop_is_a_zero_filled_shift_with_the_course_draws(seed, padding, h, w, c):
    img = np.arange(h * w * c, dtype=np.float32).reshape(h, w, c) + 1
    np.random.seed(seed)
    out = RandomCrop(padding)(img)
    np.random.seed(seed)
    sx, sy = np.random.randint(low=-padding, high=padding + 1, size=2)
    assert out.shape == img.shape
    np.testing.assert_array_equal(out, shifted(img, sx, sy))


def test_random_crop_covers_every_shift_and_can_empty_the_image():
    img = np.ones((4, 4, 1))
    np.random.seed(0)
    sums = {RandomCrop(4)(img).sum() for _ in range(400)}
    assert 0.0 in sums and 16.0 in sums  # shift of +-4 leaves nothing; (0, 0) keeps all


def test_random_flip_horizontal_draws_like_the_course():
    img = np.arange(2 * 3 * 2).reshape(2, 3, 2)
    np.testing.assert_array_equal(RandomFlipHorizontal(1.0)(img), img[:, ::-1, :])
    np.testing.assert_array_equal(RandomFlipHorizontal(0.0)(img), img)
    np.random.seed(7)
    flips = [np.array_equal(RandomFlipHorizontal(0.4)(img), img[:, ::-1]) for _ in range(50)]
    np.random.seed(7)
    assert flips == [np.random.rand() < 0.4 for _ in range(50)]
    assert 10 < sum(flips) < 40


@pytest.mark.parametrize("tform", [RandomFlipHorizontal(), RandomCrop(2)])
def test_transforms_want_hwc_images(tform):
    with pytest.raises(DataError, match="H x W x C"):
        tform(np.zeros((28, 28)))


def test_bad_padding():
    with pytest.raises(DataError, match="padding"):
        RandomCrop(-1)


def write_mnist(tmp_path, images, labels):
    n, h, w = images.shape
    img = tmp_path / "img.gz"
    img.write_bytes(gzip.compress(b"\0\0\x08\x03" + np.array([n, h, w], ">u4").tobytes()
                                  + images.astype(np.uint8).tobytes()))
    lab = tmp_path / "lab"
    lab.write_bytes(b"\0\0\x08\x01" + np.array([n], ">u4").tobytes() + labels.astype(np.uint8).tobytes())
    return img, lab


def test_dataset_applies_transforms_on_hxwx1_and_batches_draw_like_single_items(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(9, 5, 4))
    img, lab = write_mnist(tmp_path, images, np.arange(9) % 10)
    flipped = MNISTDataset(img, lab, transforms=[RandomFlipHorizontal(1.0)])
    x, _ = flipped[3]
    np.testing.assert_allclose(x, (images[3][:, ::-1] / 255).reshape(-1), rtol=1e-6)
    xb, _ = next(iter(DataLoader(flipped, 9)))
    np.testing.assert_allclose(xb.numpy(), (images[:, :, ::-1] / 255).reshape(9, -1), rtol=1e-6)

    tforms = [RandomCrop(2), RandomFlipHorizontal()]
    ds = MNISTDataset(img, lab, transforms=tforms)
    np.random.seed(11)
    one_by_one = np.stack([ds[i][0] for i in range(9)])
    np.random.seed(11)
    batched = next(iter(DataLoader(ds, 9)))[0].numpy()
    np.testing.assert_array_equal(batched, one_by_one)
    plain = MNISTDataset(img, lab)[np.arange(9)][0]
    assert not np.array_equal(batched, plain)  # the draws did change some images
