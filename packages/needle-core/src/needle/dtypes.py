"""needle's dtype policy, all in one place.

The rules are NumPy's where course code relies on NumPy (the course's hw1/hw2 ops
are NumPy calls) and PyTorch's where NumPy would surprise a PyTorch user:

* **New tensors.** A NumPy (or backend) array keeps its dtype, so float64 data
  stays float64; Python lists and scalars become float32, the default float;
  ``dtype=`` overrides both.
* **Promotion.** Tensors of different dtypes in one op promote as NumPy does
  (float32 with float64 gives float64), except that integers and bools meeting a
  float take the float's dtype (PyTorch's rule: int64 with float32 is float32).
  The cast is an ``AsType`` node, so a gradient flows back in its input's dtype.
* **Float-only ops** (``exp``, ``log``, ``/``, ``sqrt``, ``sin``, ``mean``...) turn
  integer and bool input into float32, never float64 or float16.
* **Python scalars are weak**: they take the tensor's dtype, except that a float
  scalar with an integer tensor gives float32.
* **Gradients** exist only for floating-point tensors: integer and bool tensors are
  made with ``requires_grad=False``, and asking for one is an error (PyTorch's rule).

Why here and not in each op: the same questions come up in ``Tensor()``,
``make_from_op`` and a dozen ops, and one answer is easier to keep consistent.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DEFAULT_FLOAT = np.dtype("float32")

# dtype kinds: 'f' float, 'c' complex, 'i'/'u' integers, 'b' bool
_DIFFERENTIABLE = "fc"


def infer_dtype(data: Any, dtype: Any = None) -> np.dtype:
    """The dtype of a new tensor made from ``data`` (see the module docstring)."""
    if dtype is not None:
        return np.dtype(dtype)
    found = getattr(data, "dtype", None)  # NumPy arrays and scalars, backend arrays
    if found is None or isinstance(data, type):
        return DEFAULT_FLOAT
    found = np.dtype(found)
    if found.kind not in "fciub":
        raise TypeError(f"cannot make a Tensor from an array of dtype {found}: "
                        f"needle tensors hold numbers (float, int or bool)")
    return found


def is_differentiable(dtype: np.dtype) -> bool:
    return dtype.kind in _DIFFERENTIABLE


def resolve_requires_grad(dtype: np.dtype, requires_grad: bool | None) -> bool:
    """``None`` means "if it can": floats require grad, integers and bools never do."""
    if requires_grad is None:
        return dtype.kind in _DIFFERENTIABLE
    if requires_grad and dtype.kind not in _DIFFERENTIABLE:
        raise NeedleError(f"only floating-point tensors can require gradients, not {dtype} "
                          f"(convert with .astype('float32') first)")
    return bool(requires_grad)


def result_type(*dtypes: np.dtype) -> np.dtype:
    """The common dtype of an op's tensor inputs."""
    floats = [d for d in dtypes if d.kind in _DIFFERENTIABLE]
    if floats and len(floats) < len(dtypes):
        dtypes = tuple(floats)  # integers and bools join the float
    return np.result_type(*dtypes)


def float_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype a float-only op gives for input of ``dtype``."""
    return dtype if dtype.kind in _DIFFERENTIABLE else DEFAULT_FLOAT


def as_float(backend: Any, a: Any) -> Any:
    """``a`` itself if floating point, else converted to float32 (for float-only ops)."""
    return a if a.dtype.kind in _DIFFERENTIABLE else backend.astype(a, DEFAULT_FLOAT)


def with_scalar(backend: Any, a: Any, scalar: Any) -> Any:
    """``a`` ready for an op with a weak Python scalar: float scalars make integers float32."""
    if type(scalar) is float and a.dtype.kind not in _DIFFERENTIABLE:
        return backend.astype(a, DEFAULT_FLOAT)
    return a


from .autograd import NeedleError  # noqa: E402
