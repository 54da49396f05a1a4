"""The MNIST test images the training benchmarks run on (idx format, gzip; no pickle)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

IMAGES = "t10k-images-idx3-ubyte.gz"
LABELS = "t10k-labels-idx1-ubyte.gz"


def data_dir() -> Path:
    """``NEEDLE_DATA_DIR`` or ``../shared/data`` beside the repository."""
    default = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    return Path(os.environ.get("NEEDLE_DATA_DIR", default)).resolve()


def _read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"MNIST file {path} not found: set NEEDLE_DATA_DIR to the folder "
                                f"holding mnist/{path.name}")
    with gzip.open(path, "rb") as f:
        raw = f.read()
    header = np.frombuffer(raw, dtype=">u4", count=1 + ndim)
    if header[0] != magic:
        raise ValueError(f"{path}: magic number {header[0]}, expected {magic} (not an idx file?)")
    shape = tuple(int(n) for n in header[1:])
    offset = 4 * (1 + ndim)
    if len(raw) - offset != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but the file holds "
                         f"{len(raw) - offset} bytes of data")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def load_test_set(root: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images as float32 (N, 784) in [0, 1] and labels as int64 (N,), as the course reads them."""
    folder = (root or data_dir()) / "mnist"
    images = _read_idx(folder / IMAGES, 2051, 3)
    labels = _read_idx(folder / LABELS, 2049, 1)
    if len(images) != len(labels):
        raise ValueError(f"{folder}: {len(images)} images but {len(labels)} labels")
    x = images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0)
    return x, labels.astype(np.int64)


def batches(x: np.ndarray, y: np.ndarray, batch: int, steps: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``steps`` full batches in order, wrapping around the data set when it runs out."""
    n = len(x) // batch
    if n == 0:
        raise ValueError(f"batch {batch} is larger than the {len(x)} examples")
    return [(x[(i % n) * batch:(i % n + 1) * batch], y[(i % n) * batch:(i % n + 1) * batch])
            for i in range(steps)]
