"""``MNISTDataset``: MNIST (or any idx image/label pair) from ``.gz`` or raw files."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from os import PathLike

import numpy as np

from ..errors import DataError
from ..readers import read_idx
from .image_dataset import ImageDataset

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (count, rows, cols)
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (count)


class MNISTDataset(ImageDataset):
    """Images as float32 rows of rows*cols values in [0, 1]; labels as uint8.

    ``ds[i]`` is ``(image (784,), label)``; ``ds[indices]`` is ``(images (B, 784), labels (B,))``.
    Transforms see each image as 28 x 28 x 1 (course semantics).
    """

    def __init__(self, image_filename: str | PathLike[str], label_filename: str | PathLike[str],
                 transforms: Sequence[Callable[[np.ndarray], np.ndarray]] | None = None) -> None:
        raw = read_idx(image_filename, IMAGES_MAGIC)
        labels = read_idx(label_filename, LABELS_MAGIC)
        if raw.shape[0] != labels.shape[0]:
            raise DataError(f"{image_filename} holds {raw.shape[0]} images but {label_filename} "
                            f"holds {labels.shape[0]} labels")
        if labels.size and labels.max() > 9:
            raise DataError(f"{label_filename}: labels must be digits 0-9, found {int(labels.max())}")
        n, rows, cols = raw.shape
        if rows == 0 or cols == 0:
            raise DataError(f"{image_filename}: its images are {rows}x{cols} pixels (nothing to "
                            f"learn from); an idx image file needs rows and columns >= 1")
        images = np.divide(raw.reshape(n, rows * cols), np.float32(255), dtype=np.float32)
        super().__init__(images, labels, (rows, cols, 1), channels_first=False, transforms=transforms)
