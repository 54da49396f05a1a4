"""Random image augmentations on H x W x C NumPy arrays, with the course's draws.

Both draw from NumPy's global generator in the course's order, so
``np.random.seed(n)`` reproduces the course's reference images.
"""

from __future__ import annotations

import numpy as np

from .errors import DataError


class Transform:
    """A callable from one H x W x C image to another."""

    def __call__(self, img: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def _check_hwc(name: str, img: np.ndarray) -> None:
    if getattr(img, "ndim", None) != 3:
        raise DataError(f"{name} expects an H x W x C image, got shape {np.shape(img)}")


class RandomFlipHorizontal(Transform):
    """Mirror the image left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, img: np.ndarray) -> np.ndarray:
        _check_hwc("RandomFlipHorizontal", img)
        flip_img = np.random.rand() < self.p
        return img[:, ::-1, :] if flip_img else img


class RandomCrop(Transform):
    """Shift the image by up to ``padding`` pixels on each axis, filling with zeros.

    Same as zero-padding by ``padding`` and cropping back to H x W at a random offset.
    """

    def __init__(self, padding: int = 3) -> None:
        if int(padding) != padding or padding < 0:
            raise DataError(f"RandomCrop: padding must be a non-negative integer, got {padding!r}")
        self.padding = int(padding)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        _check_hwc("RandomCrop", img)
        p = self.padding
        shift_x, shift_y = np.random.randint(low=-p, high=p + 1, size=2)
        h, w = img.shape[:2]
        padded = np.pad(img, ((p, p), (p, p), (0, 0)))
        return padded[p + shift_x:p + shift_x + h, p + shift_y:p + shift_y + w, :]
