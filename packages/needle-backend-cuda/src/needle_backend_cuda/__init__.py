"""needle's CUDA backend (CuPy). Importing this never fails: without CuPy, a driver
or a GPU the backend reports itself unusable, with the reason."""

from __future__ import annotations

from needle.backend import Backend

__version__ = "0.1.0"


class CUDABackend(Backend):
    name = "cuda"

    def availability(self) -> str | None:
        return "the CUDA kernels are not written yet (needle-backend-cuda 0.1.0 skeleton)"


__all__ = ["CUDABackend"]
