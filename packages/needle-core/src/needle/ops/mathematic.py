"""Element-wise and matrix ops. Binary ops broadcast like NumPy (``broadcasts = True``):
their ``backward`` returns gradients of the output's shape, and the backward walk sums
them back to each input's shape."""

from __future__ import annotations

from numbers import Number
from typing import Any

import numpy as np

from .. import dtypes
from ..autograd import NeedleError, Tensor, TensorOp, no_grad
from ._axes import broadcast_axes


def _scalar(value: Any) -> Any:
    """Python numbers are weak (keep the tensor's dtype); NumPy scalars are not, so unwrap."""
    if type(value) in (int, float, bool):
        return value
    if isinstance(value, Number) and hasattr(value, "item"):
        return value.item()
    return value


def sum_to_shape(grad: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Undo broadcasting: sum ``grad`` over the axes that broadcasting created."""
    gshape = grad.shape
    if gshape == shape:
        return grad
    axes = broadcast_axes(gshape, shape)
    if axes is None:
        raise NeedleError(f"sum_to_shape: a gradient of shape {gshape} cannot be summed to "
                          f"shape {shape} (it does not broadcast from it)")
    out = summation(grad, axes) if axes else grad
    return reshape(out, shape) if out.shape != shape else out


class EWiseAdd(TensorOp):
    def compute(self, a, b):
        return self.backend.add(a, b)

    broadcasts = True

    def backward(self, xp, g, node):
        return g, g


def add(a: Tensor, b: Tensor) -> Tensor:
    return EWiseAdd()(a, b)


class AddScalar(TensorOp):
    def __init__(self, scalar: Any) -> None:
        self.scalar = _scalar(scalar)

    def compute(self, a):
        return self.backend.add(dtypes.with_scalar(self.backend, a, self.scalar), self.scalar)

    def backward(self, xp, g, node):
        return (g,)


def add_scalar(a: Tensor, scalar: Any) -> Tensor:
    return AddScalar(scalar)(a)


class EWiseMul(TensorOp):
    def compute(self, a, b):
        return self.backend.multiply(a, b)

    broadcasts = True

    def backward(self, xp, g, node):
        a, b = node.inputs
        return (xp.multiply(g, xp.value(b)) if a.requires_grad else None,
                xp.multiply(g, xp.value(a)) if b.requires_grad else None)


def multiply(a: Tensor, b: Tensor) -> Tensor:
    return EWiseMul()(a, b)


class MulScalar(TensorOp):
    def __init__(self, scalar: Any) -> None:
        self.scalar = _scalar(scalar)

    def compute(self, a):
        return self.backend.multiply(dtypes.with_scalar(self.backend, a, self.scalar), self.scalar)

    def backward(self, xp, g, node):
        return (xp.multiply(g, self.scalar),)


def mul_scalar(a: Tensor, scalar: Any) -> Tensor:
    return MulScalar(scalar)(a)


class EWisePow(TensorOp):
    """a ** b element-wise; d/da = b a^(b-1), d/db = a^b log a."""

    def compute(self, a, b):
        return self.backend.power(a, b)

    broadcasts = True

    def backward(self, xp, g, node):
        a, b = node.inputs
        av, bv = xp.value(a), xp.value(b)
        ga = gb = None
        if a.requires_grad:
            ga = xp.multiply(g, xp.multiply(bv, xp.power(av, xp.subtract(bv, 1))))
        if b.requires_grad:
            # a^b log a, taken as 0 where a = 0 (PyTorch's convention: 0^b is flat in b
            # from the right, and log 0 would make it 0 * -inf = NaN)
            zero = xp.const(a, self.backend.equal(a._array, 0))
            log_a = xp.log(xp.where(zero, 1.0, av))
            gb = xp.multiply(g, xp.where(zero, 0.0, xp.multiply(xp.value(node), log_a)))
        return ga, gb


def power(a: Tensor, b: Tensor) -> Tensor:
    return EWisePow()(a, b)


class PowerScalar(TensorOp):
    """a ** scalar."""

    def __init__(self, scalar: Any) -> None:
        self.scalar = _scalar(scalar)

    def compute(self, a):
        return self.backend.power(dtypes.with_scalar(self.backend, a, self.scalar), self.scalar)

    def backward(self, xp, g, node):
        if self.scalar == 0:
            return (xp.multiply(g, 0),)
        a = xp.value(node.inputs[0])
        return (xp.multiply(g, xp.multiply(xp.power(a, self.scalar - 1), self.scalar)),)


def power_scalar(a: Tensor, scalar: Any) -> Tensor:
    return PowerScalar(scalar)(a)


class EWiseDiv(TensorOp):
    def compute(self, a, b):
        bk = self.backend
        return bk.divide(dtypes.as_float(bk, a), dtypes.as_float(bk, b))

    broadcasts = True

    def backward(self, xp, g, node):
        a, b = node.inputs
        ga = xp.divide(g, xp.value(b))
        gb = xp.negative(xp.multiply(ga, xp.value(node))) if b.requires_grad else None
        return ga if a.requires_grad else None, gb  # d(a/b)/db = -a/b^2 = -(1/b)(a/b)


def divide(a: Tensor, b: Tensor) -> Tensor:
    return EWiseDiv()(a, b)


class DivScalar(TensorOp):
    def __init__(self, scalar: Any) -> None:
        self.scalar = _scalar(scalar)

    def compute(self, a):
        return self.backend.divide(dtypes.as_float(self.backend, a), self.scalar)

    def backward(self, xp, g, node):
        return (xp.divide(g, self.scalar),)


def divide_scalar(a: Tensor, scalar: Any) -> Tensor:
    return DivScalar(scalar)(a)


class Negate(TensorOp):
    def compute(self, a):
        return self.backend.negative(a)

    def backward(self, xp, g, node):
        return (xp.negative(g),)


def negate(a: Tensor) -> Tensor:
    return Negate()(a)


class Exp(TensorOp):
    def compute(self, a):
        return self.backend.exp(dtypes.as_float(self.backend, a))

    def backward(self, xp, g, node):
        return (xp.multiply(g, xp.value(node)),)


def exp(a: Tensor) -> Tensor:
    return Exp()(a)


class Log(TensorOp):
    def compute(self, a):
        return self.backend.log(dtypes.as_float(self.backend, a))

    def backward(self, xp, g, node):
        return (xp.divide(g, xp.value(node.inputs[0])),)


def log(a: Tensor) -> Tensor:
    return Log()(a)


class Sqrt(TensorOp):
    def compute(self, a):
        return self.backend.sqrt(dtypes.as_float(self.backend, a))

    def backward(self, xp, g, node):
        return (xp.divide(g, xp.multiply(xp.value(node), 2)),)


def sqrt(a: Tensor) -> Tensor:
    return Sqrt()(a)


class ReLU(TensorOp):
    """max(x, 0), through the backend's ``relu`` kernel, which also returns the 0/1 mask
    that the backward multiplies by."""

    def compute(self, a):
        out, self.mask = self.backend.relu(a)
        return out

    def backward(self, xp, g, node):
        # The mask is a constant: relu is piecewise linear, its second derivative is 0.
        return (xp.multiply(g, xp.const(node, self.mask)),)


def relu(a: Tensor) -> Tensor:
    return ReLU()(a)


class Tanh(TensorOp):
    def compute(self, a):
        return self.backend.tanh(dtypes.as_float(self.backend, a))

    def backward(self, xp, g, node):
        y = xp.value(node)
        return (xp.multiply(g, xp.subtract(1.0, xp.multiply(y, y))),)


def tanh(a: Tensor) -> Tensor:
    return Tanh()(a)


class Sigmoid(TensorOp):
    """1 / (1 + e^-x), computed as (1 + tanh(x/2)) / 2 so large |x| never overflows."""

    def compute(self, a):
        b = self.backend
        a = dtypes.as_float(b, a)
        return b.multiply(b.add(b.tanh(b.multiply(a, 0.5)), 1.0), 0.5)

    def backward(self, xp, g, node):
        y = xp.value(node)
        return (xp.multiply(g, xp.multiply(y, xp.subtract(1.0, y))),)


def sigmoid(a: Tensor) -> Tensor:
    return Sigmoid()(a)


class MatMul(TensorOp):
    """Matrix product of the last two axes; leading (batch) axes broadcast."""

    def compute(self, a, b):
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError("1-D operand")  # explained by check(): vectors must be reshaped
        return self.backend.matmul(a, b)

    def check(self, a, b):
        if a.ndim < 2 or b.ndim < 2:
            raise NeedleError(f"matmul needs tensors of at least 2 dimensions (reshape vectors "
                              f"to (1, n) or (n, 1)), got shapes {a.shape} and {b.shape}")
        if a.shape[-1] != b.shape[-2]:
            raise NeedleError(
                f"matmul: shapes {a.shape} and {b.shape} do not align: "
                f"{a.shape[-1]} (last axis of a) != {b.shape[-2]} (second-to-last axis of b)")

    broadcasts = True  # over the leading (batch) axes

    def backward(self, xp, g, node):
        a, b = node.inputs
        return (xp.matmul(g, xp.mT(xp.value(b))) if a.requires_grad else None,
                xp.matmul(xp.mT(xp.value(a)), g) if b.requires_grad else None)


def matmul(a: Tensor, b: Tensor) -> Tensor:
    return MatMul()(a, b)





class AsType(TensorOp):
    """Explicit dtype conversion (the only way dtypes change)."""

    same_dtype = False

    def __init__(self, dtype: Any) -> None:

        self.dtype = np.dtype(dtype)

    def compute(self, a):
        return self.backend.astype(a, self.dtype)

    def backward(self, xp, g, node):
        return (xp.astype(g, node.inputs[0].dtype),)


def astype(a: Tensor, dtype: Any) -> Tensor:
    return AsType(dtype)(a)


# Imported last: shape and reduction ops use the element-wise ones above.
from .reduce import summation  # noqa: E402
from .shape import reshape  # noqa: E402

__all__ = [
    "AddScalar", "AsType", "DivScalar", "EWiseAdd", "EWiseDiv", "EWiseMul",
    "EWisePow", "Exp", "Log", "MatMul", "MulScalar", "Negate", "PowerScalar", "ReLU",
    "Sigmoid", "Sqrt", "Tanh", "add", "add_scalar", "astype", "divide", "divide_scalar",
    "exp", "log", "matmul", "mul_scalar", "multiply", "negate", "no_grad", "power",
    "power_scalar", "relu", "sigmoid", "sqrt", "sum_to_shape", "tanh",
]
