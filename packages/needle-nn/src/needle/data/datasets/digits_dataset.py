"""``DigitsDataset``: scikit-learn's 8x8 handwritten digits, the built-in default data set.

scikit-learn ships the 1,797 images inside its wheel, so nothing is downloaded;
it is an optional dependency: ``pip install 'needle-nn[digits]'``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from ..errors import DataError
from .image_dataset import ImageDataset

INSTALL_HINT = "pip install 'needle-nn[digits]' (or pip install scikit-learn)"


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits: images float32 (1797, 64) in [0, 1], labels uint8 (1797,)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ModuleNotFoundError(
            f"DigitsDataset reads the digits that scikit-learn ships, but scikit-learn is not "
            f"installed ({exc}): {INSTALL_HINT}") from exc
    images, labels = load_digits(return_X_y=True)
    return (images / 16.0).astype(np.float32), labels.astype(np.uint8)


def split_indices(n: int, test_size: float | int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) sample indices: a seeded permutation, test first, as scikit-learn's
    ``train_test_split`` counts (a fraction rounds the test part up). Each part is sorted."""
    if isinstance(test_size, float):
        if not 0.0 < test_size < 1.0:
            raise DataError(f"test_size must be a fraction in (0, 1) or a count, got {test_size}")
        n_test = math.ceil(test_size * n)
    elif isinstance(test_size, (int, np.integer)) and not isinstance(test_size, bool) \
            and 0 < test_size < n:
        n_test = int(test_size)
    else:
        raise DataError(f"test_size must be a fraction in (0, 1) or a count in [1, {n - 1}], "
                        f"got {test_size!r}")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


class DigitsDataset(ImageDataset):
    """A deterministic train or test part of scikit-learn's digits.

    Images are float32 rows of 64 values in [0, 1] (pixel / 16), ready for an MLP
    such as MLP-ResNet (``dim=64``); labels are uint8 in 0-9. ``test_size`` (a
    fraction or a count) and ``seed`` fix the split: the same arguments always give
    the same parts, and ``train=True``/``False`` give complementary ones. The split
    uses its own generator, so it neither reads nor moves NumPy's global one.
    Transforms see each image as 8 x 8 x 1.
    """

    def __init__(self, train: bool = True, test_size: float | int = 0.2, seed: int = 0,
                 transforms: Sequence[Callable[[np.ndarray], np.ndarray]] | None = None) -> None:
        images, labels = load_digits_arrays()
        train_idx, test_idx = split_indices(len(labels), test_size, seed)
        part = train_idx if train else test_idx
        self.train = train
        super().__init__(images[part], labels[part], (8, 8, 1), channels_first=False,
                         transforms=transforms)
