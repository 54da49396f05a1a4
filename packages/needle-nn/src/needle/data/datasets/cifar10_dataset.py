"""``CIFAR10Dataset``: the python-version batch files, read without running code."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from os import PathLike
from pathlib import Path

import numpy as np

from ..errors import DataError, missing_file
from ..readers import read_pickle
from .image_dataset import ImageDataset

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
_KEYS = {"batch_label", "labels", "data", "filenames"}
_PIXELS = 3 * 32 * 32


def read_cifar_batch(path: str | PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """(data uint8 (N, 3072), labels uint8 (N,)) from one batch file, fully validated."""
    batch = read_pickle(path, "a CIFAR-10 batch")
    if not isinstance(batch, dict):
        raise DataError(f"{path}: a CIFAR-10 batch is a dict, found {type(batch).__name__}")
    keys = {k.decode("latin1") if isinstance(k, bytes) else k for k in batch}
    if not all(isinstance(k, str) for k in keys) or not keys <= _KEYS or not {"data", "labels"} <= keys:
        raise DataError(f"{path}: unexpected keys {sorted(map(repr, batch))}; a CIFAR-10 batch has "
                        f"'data' and 'labels' (and optionally 'batch_label', 'filenames')")
    fields = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data, labels = fields["data"], fields["labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != _PIXELS:
        desc = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) \
            else type(data).__name__
        raise DataError(f"{path}: 'data' must be a uint8 array of shape (N, {_PIXELS}), found {desc}")
    if not isinstance(labels, (list, np.ndarray)) or \
            not all(isinstance(y, (int, np.integer)) and not isinstance(y, bool) for y in labels):
        raise DataError(f"{path}: 'labels' must be a list of integers")
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if labels.shape[0] != data.shape[0]:
        raise DataError(f"{path}: {data.shape[0]} images but {labels.shape[0]} labels")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path}: labels must be classes 0-9, found {labels.min()}..{labels.max()}")
    return data, labels.astype(np.uint8)


class CIFAR10Dataset(ImageDataset):
    """CIFAR-10 as float32 images (N, 3, 32, 32) in [0, 1] and uint8 labels.

    ``base_folder`` is the ``cifar-10-batches-py`` folder; ``train`` picks
    ``data_batch_1..5`` or ``test_batch``. ``p`` is kept from the course's
    signature, where it is unused too. Transforms see each image as 32 x 32 x 3.
    """

    def __init__(self, base_folder: str | PathLike[str], train: bool, p: float | None = 0.5,
                 transforms: Sequence[Callable[[np.ndarray], np.ndarray]] | None = None) -> None:
        folder = Path(base_folder)
        if not folder.is_dir():
            raise missing_file(folder, "the cifar-10-batches-py folder")
        parts = [read_cifar_batch(folder / name) for name in (TRAIN_FILES if train else TEST_FILES)]
        data = np.concatenate([d for d, _ in parts]).reshape(-1, 3, 32, 32)
        images = np.divide(data, np.float32(255), dtype=np.float32)
        labels = np.concatenate([y for _, y in parts])
        self.p = p
        super().__init__(images, labels, (32, 32, 3), channels_first=True, transforms=transforms)
