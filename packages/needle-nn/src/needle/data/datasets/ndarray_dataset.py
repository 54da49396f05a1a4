"""``NDArrayDataset``: samples are rows of in-memory arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data_basic import Dataset
from ..errors import DataError


class NDArrayDataset(Dataset):
    """Row ``i`` of every array is sample ``i``: ``ds[i] == (a[i], b[i], ...)``.

    Any NumPy index works, so a batch is gathered in one vectorised step.
    """

    supports_batch_index = True

    def __init__(self, *arrays: Any) -> None:
        super().__init__()
        if not arrays:
            raise DataError("NDArrayDataset needs at least one array")
        self.arrays = tuple(np.asarray(a) for a in arrays)
        lengths = [a.shape[0] if a.ndim else None for a in self.arrays]
        if None in lengths or len(set(lengths)) != 1:
            shapes = ", ".join(str(a.shape) for a in self.arrays)
            raise DataError(f"NDArrayDataset: arrays must share their first dimension, "
                            f"got shapes {shapes}")

    def __len__(self) -> int:
        return self.arrays[0].shape[0]

    def __getitem__(self, index: Any) -> tuple[np.ndarray, ...]:
        return tuple(a[index] for a in self.arrays)
