"""needle's CUDA backend: the backend contract on CuPy arrays, plus fused CUDA kernels.

Importing this never fails and never imports CuPy. Without CuPy, a driver or a
GPU the backend reports itself unusable with the reason (``availability()``), so
``ndl.cuda().enabled()`` is False and creating a tensor on it says what to fix.
"""

from __future__ import annotations

from ._probe import INSTALL_HINT
from .backend import CUDABackend

__version__ = "0.1.0"


def availability() -> str | None:
    """``None`` when the cuda backend can run here, else the sentence saying why not."""
    from ._probe import diagnose

    return diagnose()


__all__ = ["INSTALL_HINT", "CUDABackend", "availability"]
