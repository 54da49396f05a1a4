"""``DigitsDataset``: scikit-learn's 8x8 handwritten digits, the built-in default data set.

scikit-learn ships the 1,797 images inside its wheel, so nothing is downloaded;
it is an optional dependency: ``pip install 'needle-nn[digits]'``.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import DataError
from .image_dataset import ImageDataset

INSTALL_HINT = "pip install 'needle-nn[digits]' (or pip install scikit-learn)"


def sklearn_digits_file() -> Path | None:
    """Where scikit-learn keeps ``digits.csv.gz``, found without importing scikit-learn
    (``import sklearn.datasets`` costs seconds); ``None`` if its layout ever changes."""
    try:
        spec = importlib.util.find_spec("sklearn")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"DigitsDataset reads the digits that scikit-learn ships, "
                                  f"but scikit-learn is not installed: {INSTALL_HINT}")
    for location in spec.submodule_search_locations:
        path = Path(location) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            return path
    return None


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits: images float32 (1797, 64) in [0, 1], labels uint8 (1797,)."""
    path = sklearn_digits_file()
    if path is None:
        try:
            from sklearn.datasets import load_digits
        except ImportError as exc:
            raise ModuleNotFoundError(f"DigitsDataset cannot import scikit-learn ({exc}): "
                                      f"{INSTALL_HINT}") from exc
        images, labels = load_digits(return_X_y=True)
    else:
        try:
            table = np.loadtxt(path, delimiter=",", ndmin=2)
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(f"{path}: unreadable digits table ({exc}); reinstall scikit-learn") from exc
        if table.shape[1:] != (65,):
            raise DataError(f"{path}: expected 65 columns (64 pixels and the label), "
                            f"found shape {table.shape}")
        images, labels = table[:, :-1], table[:, -1]
    if images.min() < 0 or images.max() > 16 or labels.min() < 0 or labels.max() > 9:
        raise DataError("scikit-learn's digits are outside 0-16 (pixels) or 0-9 (labels)")
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
