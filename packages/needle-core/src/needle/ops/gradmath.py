"""The two worlds a derivative runs in, behind one set of names.

Every op writes its derivative once, as ``backward(xp, out_grad, node)``, using only
``xp``'s functions (NumPy's names) on ``xp.value(tensor)`` and ``xp.const(node, array)``:

* ``array_math(backend)``: the backend's arrays. ``backward()`` runs here: nothing is
  recorded, so wrapping every gradient in a Tensor would be pure cost.
* ``TENSOR_MATH``: Tensor ops, which record the gradient's own graph. Used by
  ``backward(create_graph=True)`` and by the course's ``op.gradient(out_grad, node)``.

Fused kernels (batch-norm backward, softmax) are namespace functions too: the array
world calls the backend's kernel, the Tensor world a decomposition into Tensor ops
(the reference that higher-order gradients differentiate and tests compare with).
Broadcasting is undone once, by the backward walk (``sum_to_shape``), for the ops that
say ``broadcasts = True``; ``Linear`` sums its bias's gradient itself, which keeps it
shape-exact (``Op._exact``), so the walk need not check it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

from ..autograd import Tensor, TensorTuple, TupleGrad, Value
from ..backend import Backend, shift_of
from ._axes import broadcast_axes, keepdims_shape

_SWAP = (1, 0)


class ArrayMath:
    """``xp`` over one backend's arrays: its own methods, bound once (no extra call)."""

    records = False
    transpose: Any  # the backend's, bound in __init__ with the others below

    def __init__(self, backend: Backend) -> None:
        self.backend = b = backend
        for name in ("add", "subtract", "multiply", "divide", "negative", "power", "exp",
                     "log", "tanh", "sin", "cos", "sqrt", "matmul", "reshape", "broadcast_to",
                     "transpose", "flip", "pad", "getitem", "stack", "concatenate", "where", "astype",
                     "sum", "prod", "im2col", "col2im", "batch_norm_backward"):
            setattr(self, name, getattr(b, name))

    #: A Tensor's array (``attrgetter``: a C call, for the hottest name of every backward).
    value: Callable[[Value], Any] = attrgetter("_array")

    @staticmethod
    def const(like: Value, array: Any) -> Any:
        return array

    def mT(self, a: Any) -> Any:  # noqa: N802 - PyTorch's name
        """The last two axes swapped."""
        n = a.ndim
        return self.transpose(a, _SWAP if n == 2 else (*range(n - 2), n - 1, n - 2))

    def zeros(self, like: Value, shape: tuple[int, ...], dtype: Any) -> Any:
        return self.backend.full(shape, 0.0, dtype)

    def scatter(self, g: Any, index: Any, shape: tuple[int, ...], unique: bool = False) -> Any:
        """Zeros of ``shape`` with ``g`` added at ``index`` (repeated positions add up;
        ``unique``: the caller knows none repeats, so a plain write does)."""
        b = self.backend
        out = b.full(shape, 0.0, g.dtype)
        if unique or _is_basic(index):
            b.setitem(out, index, g)  # basic indexing never repeats an element
        else:
            b.add_at(out, index, g)
        return out

    @staticmethod
    def make_tuple(*parts: Any) -> tuple[Any, ...]:
        return parts

    @staticmethod
    def tuple_part(tup: Value, index: int, g: Any) -> Any:
        """The gradient of TensorTuple ``tup`` that part ``index`` sends back: only that
        part (the walk adds parts up and fills in zeros once, ``autograd.TupleGrad``)."""
        return TupleGrad({index: g})

    def unstack(self, g: Any, axis: int) -> tuple[Any, ...]:
        index: list[Any] = [slice(None)] * g.ndim
        parts = []
        for i in range(g.shape[axis]):
            index[axis] = i
            parts.append(self.backend.getitem(g, tuple(index)))
        return tuple(parts)

    def softmax(self, z: Any, axes: tuple[int, ...] | None) -> Any:
        """exp(z − max z) / Σ exp(z − max z): large |z| keep their digits."""
        b = self.backend
        e = b.exp(b.subtract(z, shift_of(b, z, axes)))
        return b.divide(e, b.sum(e, axes, keepdims=True))

    def sum_to_shape(self, g: Any, shape: tuple[int, ...]) -> Any:
        axes = broadcast_axes(tuple(g.shape), shape)
        if not axes:
            return g
        out = self.backend.sum(g, axes)
        return out if tuple(out.shape) == shape else self.backend.reshape(out, shape)


_ARRAY_MATHS: dict[int, ArrayMath] = {}


def array_math(backend: Backend) -> ArrayMath:
    """The (cached) array namespace of ``backend``. It holds the backend's methods as they
    were when first asked for: code that later replaces them on the object (a profiler's
    wrappers) calls ``forget(backend)``."""
    xp = _ARRAY_MATHS.get(id(backend))
    if xp is None or xp.backend is not backend:
        xp = _ARRAY_MATHS[id(backend)] = ArrayMath(backend)
    return xp


def forget(backend: Backend) -> None:
    """Drop ``backend``'s cached namespace (its methods were replaced)."""
    _ARRAY_MATHS.pop(id(backend), None)


class TensorMath:
    """``xp`` over Tensors: every function is a recorded op, so the gradient's own graph
    exists (second derivatives, and the course's ``gradient`` API)."""

    records = True

    @staticmethod
    def value(t: Value) -> Any:
        return t

    @staticmethod
    def const(like: Value, array: Any) -> Tensor:
        return Tensor.make_const(array, device=like._device)

    add = staticmethod(lambda a, b: a + b)
    subtract = staticmethod(lambda a, b: a - b)
    multiply = staticmethod(lambda a, b: a * b)
    divide = staticmethod(lambda a, b: a / b)
    negative = staticmethod(lambda a: -a)
    power = staticmethod(lambda a, b: a ** b)

    @staticmethod
    def exp(a: Tensor) -> Tensor:
        return ops.exp(a)

    @staticmethod
    def log(a: Tensor) -> Tensor:
        return ops.log(a)

    @staticmethod
    def tanh(a: Tensor) -> Tensor:
        return ops.tanh(a)

    @staticmethod
    def sin(a: Tensor) -> Tensor:
        return ops.sin(a)

    @staticmethod
    def cos(a: Tensor) -> Tensor:
        return ops.cos(a)

    @staticmethod
    def sqrt(a: Tensor) -> Tensor:
        return ops.sqrt(a)

    @staticmethod
    def matmul(a: Tensor, b: Tensor) -> Tensor:
        return ops.matmul(a, b)

    @staticmethod
    def mT(a: Tensor) -> Tensor:  # noqa: N802
        return ops.transpose(a)

    @staticmethod
    def reshape(a: Tensor, shape: tuple[int, ...]) -> Tensor:
        return ops.reshape(a, shape)

    @staticmethod
    def broadcast_to(a: Tensor, shape: tuple[int, ...]) -> Tensor:
        return ops.broadcast_to(a, shape)

    @staticmethod
    def transpose(a: Tensor, axes: Sequence[int]) -> Tensor:
        return ops.permute(a, tuple(axes))

    @staticmethod
    def flip(a: Tensor, axes: tuple[int, ...]) -> Tensor:
        return ops.flip(a, axes)

    @staticmethod
    def pad(a: Tensor, widths: Any) -> Tensor:
        return ops.pad(a, widths)

    @staticmethod
    def getitem(a: Tensor, index: Any) -> Tensor:
        return ops.GetItem(index)(a)

    @staticmethod
    def scatter(g: Tensor, index: Any, shape: tuple[int, ...], unique: bool = False) -> Tensor:
        return ops.ScatterAdd(index, shape)(g)

    @staticmethod
    def stack(parts: Any, axis: int) -> Tensor:
        return ops.stack(parts, axis)

    @staticmethod
    def unstack(g: Tensor, axis: int) -> tuple[Tensor, ...]:
        return ops.split(g, axis).tuple()

    @staticmethod
    def make_tuple(*parts: Tensor) -> TensorTuple:
        return ops.make_tuple(*parts)

    @staticmethod
    def tuple_part(tup: Value, index: int, g: Tensor) -> TensorTuple:
        """``g`` as part ``index`` of a tuple shaped like ``tup``, zeros elsewhere."""
        return ops.make_tuple(*[g if i == index else
                                TENSOR_MATH.zeros(tup, tuple(part.shape), g.dtype)
                                for i, part in enumerate(tup._array)])

    @staticmethod
    def concatenate(parts: Sequence[Tensor], axis: int) -> Tensor:
        return ops.cat(parts, axis)

    @staticmethod
    def where(cond: Tensor, a: Any, b: Any) -> Tensor:
        return ops.where(cond, a, b)

    @staticmethod
    def astype(a: Tensor, dtype: Any) -> Tensor:
        return ops.astype(a, dtype)

    @staticmethod
    def sum(a: Tensor, axes: tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return ops.summation(a, axes, keepdims)

    @staticmethod
    def prod(a: Tensor, axes: tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        return ops.prod(a, axes, keepdims)

    @staticmethod
    def im2col(x: Tensor, kernel: Any, stride: Any, dilation: Any) -> Tensor:
        return ops.Im2Col(kernel, stride, dilation)(x)

    @staticmethod
    def col2im(cols: Tensor, shape: Any, kernel: Any, stride: Any, dilation: Any) -> Tensor:
        return ops.Col2Im(tuple(shape), kernel, stride, dilation)(cols)

    @staticmethod
    def zeros(like: Value, shape: tuple[int, ...], dtype: Any) -> Tensor:
        return Tensor.make_const(like._device.backend.full(shape, 0.0, dtype), device=like._device)

    @staticmethod
    def softmax(z: Tensor, axes: tuple[int, ...] | None) -> Tensor:
        """The max-shifted softmax in Tensor ops (the shift is a constant: softmax(z − c)
        is softmax(z) for every c, so every derivative stays exact)."""
        m = Tensor.make_const(shift_of(z._device.backend, z._array, axes), device=z._device)
        e = ops.exp(z - ops.broadcast_to(m, z.shape))
        return e / ops.broadcast_to(ops.summation(e, axes, keepdims=True), z.shape)

    @staticmethod
    def batch_norm_backward(g: Tensor, x_hat: Tensor, inv_std: Tensor, weight: Tensor
                            ) -> tuple[Tensor, Tensor, Tensor]:
        """The batch-norm kernel's reference: (dx, d weight, d bias) of (N, D) input."""
        n, d = g.shape
        w = ops.broadcast_to(ops.reshape(weight, (1, d)), g.shape)
        g_hat = g * w
        s1 = ops.broadcast_to(ops.summation(g_hat, (0,), keepdims=True), g.shape)
        s2 = ops.broadcast_to(ops.summation(g_hat * x_hat, (0,), keepdims=True), g.shape)
        dx = (g_hat * n - s1 - x_hat * s2) * ops.broadcast_to(
            ops.reshape(inv_std, (1, d)) / n, g.shape)
        return dx, ops.summation(g * x_hat, (0,)), ops.summation(g, (0,))

    @staticmethod
    def sum_to_shape(g: Tensor, shape: tuple[int, ...]) -> Tensor:
        return ops.sum_to_shape(g, shape)


TENSOR_MATH = TensorMath()


def expand(xp: Any, g: Any, shape: tuple[int, ...], axes: tuple[int, ...] | None) -> Any:
    """A reduction's gradient brought back to the input's ``shape`` (a broadcast view)."""
    return xp.broadcast_to(xp.reshape(g, keepdims_shape(shape, axes)), shape)


__all__ = ["TENSOR_MATH", "ArrayMath", "TensorMath", "array_math", "broadcast_axes", "expand",
           "forget"]

from .. import ops  # noqa: E402
from .shape import _is_basic  # noqa: E402
