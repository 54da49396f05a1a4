"""needle's CPU backend: the backend contract on NumPy arrays.

Arrays are plain ``numpy.ndarray`` objects, so course code that hands
``tensor._array`` to NumPy keeps working. Random numbers come from NumPy's
global generator (``np.random.rand/randn/permutation``), so ``np.random.seed(n)``
reproduces the course's reference values.
"""

from __future__ import annotations

from .backend import CPUBackend

__all__ = ["CPUBackend"]
__version__ = "0.1.0"
