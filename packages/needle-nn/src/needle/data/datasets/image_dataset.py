"""Shared machinery of the image datasets: stored arrays, per-image transforms."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..data_basic import Dataset


class ImageDataset(Dataset):
    """``images[i]`` and ``labels[i]`` are sample ``i``; any NumPy index works.

    Transforms see each image as H x W x C (``hwc``); the dataset stores and returns
    images either flat (``channels_first=False``: MNIST-style rows of H*W*C values)
    or as C x H x W (``channels_first=True``: CIFAR-style). A batch index applies the
    transforms image by image, in index order, so the random draws are the same as
    fetching the samples one at a time.
    """

    supports_batch_index = True

    def __init__(self, images: np.ndarray, labels: np.ndarray, hwc: tuple[int, int, int],
                 channels_first: bool,
                 transforms: Sequence[Callable[[np.ndarray], np.ndarray]] | None = None) -> None:
        super().__init__(transforms)
        self.images = images
        self.labels = labels
        self.hwc = hwc
        self.channels_first = channels_first

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: Any) -> tuple[np.ndarray, Any]:
        images, labels = self.images[index], self.labels[index]
        if self.transforms:
            if np.ndim(labels) == 0:
                images = self._transform(images)
            elif len(images):
                images = np.stack([self._transform(img) for img in images])
        return images, labels

    def _transform(self, img: np.ndarray) -> np.ndarray:
        if self.channels_first:
            out = self.apply_transforms(img.transpose(1, 2, 0))
            return np.ascontiguousarray(out.transpose(2, 0, 1))
        return self.apply_transforms(img.reshape(self.hwc)).reshape(-1)
