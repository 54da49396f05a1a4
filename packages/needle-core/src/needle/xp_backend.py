"""The backend contract over any NumPy-compatible array namespace (``numpy``, ``cupy``).

Libraries that copy NumPy's API already have the contract's names and semantics, so
one class implements the array core (and im2col/col2im through strided views) over
``xp``, the library's module. A backend for such a library is this, plus whatever
its hardware does better::

    import numpy
    from needle.xp_backend import ArrayModuleBackend

    class HostBackend(ArrayModuleBackend):
        name = "host"
        xp = numpy
        array_types = (numpy.ndarray,)

``needle_backend_cpu`` is this over NumPy plus its BLAS tricks, ``needle_backend_cuda``
this over CuPy plus its CUDA kernels. When ``xp`` is a module given on the class (not
a property that imports it lazily), the functions that NumPy spells like the contract
are bound as static methods, so an op's call reaches the library in one step.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from .backend import Array, Axes, Backend, DType, Pair, Shape, conv_out_shape, conv_window_strides

# Contract methods that are the namespace's function of the same name and signature.
SAME_NAME = (
    "add", "subtract", "multiply", "divide", "power", "negative", "exp", "log", "tanh",
    "sqrt", "sin", "cos", "maximum", "where", "equal", "greater", "greater_equal", "less",
    "less_equal", "broadcast_to", "concatenate", "stack", "flip", "copy",
)


class ArrayModuleBackend(Backend):
    """Every required method over ``self.xp``, a NumPy-compatible module."""

    xp: Any  # the namespace: a module on the class, or a property that imports it

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        xp = cls.__dict__.get("xp")
        if not isinstance(xp, ModuleType):
            return
        for name in SAME_NAME:  # bind what the subclass did not write itself
            if getattr(cls, name) is getattr(ArrayModuleBackend, name):
                setattr(cls, name, staticmethod(getattr(xp, name)))

    # -- creation and conversion ---------------------------------------------------
    def array(self, data: Any, dtype: DType) -> Array:
        return self.xp.array(data, dtype=dtype)

    def to_numpy(self, a: Array) -> np.ndarray:
        return np.asarray(a)

    def full(self, shape: Shape, value: float, dtype: DType) -> Array:
        return self.xp.full(shape, value, dtype=dtype)

    def astype(self, a: Array, dtype: DType) -> Array:
        return a.astype(dtype, copy=False)

    def one_hot(self, n: int, indices: Array, dtype: DType) -> Array:
        xp = self.xp
        return xp.eye(n, dtype=dtype)[xp.asarray(indices).astype(np.int64)]

    def arange(self, n: int, dtype: DType) -> Array:
        return self.xp.arange(n, dtype=dtype)

    def from_dlpack(self, x: Any) -> Array:
        return self.xp.from_dlpack(x)

    # -- random: the namespace's global generator ----------------------------------
    def seed(self, n: int) -> None:
        self.xp.random.seed(n)

    def rand(self, shape: Shape, dtype: DType) -> Array:
        return self.xp.random.rand(*shape).astype(dtype, copy=False)

    def randn(self, shape: Shape, dtype: DType) -> Array:
        return self.xp.random.randn(*shape).astype(dtype, copy=False)

    def randb(self, shape: Shape, p: float, dtype: DType) -> Array:
        return (self.xp.random.rand(*shape) <= p).astype(dtype)

    def permutation(self, n: int) -> Array:
        return self.xp.random.permutation(n)

    # -- the functions NumPy names like the contract (bound directly when possible) ---
    def add(self, a: Array, b: Array | float) -> Array:
        return self.xp.add(a, b)

    def subtract(self, a: Array, b: Array | float) -> Array:
        return self.xp.subtract(a, b)

    def multiply(self, a: Array, b: Array | float) -> Array:
        return self.xp.multiply(a, b)

    def divide(self, a: Array, b: Array | float) -> Array:
        return self.xp.divide(a, b)

    def power(self, a: Array, b: Array | float) -> Array:
        return self.xp.power(a, b)

    def negative(self, a: Array) -> Array:
        return self.xp.negative(a)

    def exp(self, a: Array) -> Array:
        return self.xp.exp(a)

    def log(self, a: Array) -> Array:
        return self.xp.log(a)

    def tanh(self, a: Array) -> Array:
        return self.xp.tanh(a)

    def sqrt(self, a: Array) -> Array:
        return self.xp.sqrt(a)

    def sin(self, a: Array) -> Array:
        return self.xp.sin(a)

    def cos(self, a: Array) -> Array:
        return self.xp.cos(a)

    def maximum(self, a: Array, b: Array | float) -> Array:
        return self.xp.maximum(a, b)

    def where(self, cond: Array, a: Array, b: Array | float) -> Array:
        return self.xp.where(cond, a, b)

    def equal(self, a: Array, b: Array | float) -> Array:
        return self.xp.equal(a, b)

    def greater(self, a: Array, b: Array | float) -> Array:
        return self.xp.greater(a, b)

    def greater_equal(self, a: Array, b: Array | float) -> Array:
        return self.xp.greater_equal(a, b)

    def less(self, a: Array, b: Array | float) -> Array:
        return self.xp.less(a, b)

    def less_equal(self, a: Array, b: Array | float) -> Array:
        return self.xp.less_equal(a, b)

    def broadcast_to(self, a: Array, shape: Shape) -> Array:
        return self.xp.broadcast_to(a, shape)

    def concatenate(self, arrays: Sequence[Array], axis: int | None) -> Array:
        return self.xp.concatenate(arrays, axis)

    def stack(self, arrays: Sequence[Array], axis: int) -> Array:
        return self.xp.stack(arrays, axis)

    def flip(self, a: Array, axis: tuple[int, ...]) -> Array:
        return self.xp.flip(a, axis)

    def copy(self, a: Array) -> Array:
        return self.xp.copy(a)

    # -- reductions and products ---------------------------------------------------
    def sum(self, a: Array, axis: Axes = None, keepdims: bool = False) -> Array:
        return self.xp.sum(a, axis=axis, keepdims=keepdims)

    def max(self, a: Array, axis: Axes = None, keepdims: bool = False) -> Array:
        return self.xp.max(a, axis=axis, keepdims=keepdims)

    def argmax(self, a: Array, axis: int | None = None) -> Array:
        return self.xp.argmax(a, axis=axis)

    def prod(self, a: Array, axis: Axes = None, keepdims: bool = False) -> Array:
        return self.xp.prod(a, axis=axis, keepdims=keepdims)

    def matmul(self, a: Array, b: Array) -> Array:
        return self.xp.matmul(a, b)

    # -- views and indexing: the arrays' own methods (no wrapper functions) ----------
    def reshape(self, a: Array, shape: Shape) -> Array:
        return a.reshape(shape)

    def transpose(self, a: Array, axes: Sequence[int]) -> Array:
        return a.transpose(axes)

    def getitem(self, a: Array, index: Any) -> Array:
        return a[index]

    def setitem(self, a: Array, index: Any, value: Array | float) -> None:
        a[index] = value

    def add_at(self, a: Array, index: Any, value: Array) -> None:
        self.xp.add.at(a, index, value)

    def pad(self, a: Array, pad_width: Sequence[tuple[int, int]]) -> Array:
        # zeros and one slice assignment: np.pad's generic machinery costs 5-20x more on the
        # small images of a conv layer (every padded conv pads its input once a step)
        out = self.xp.zeros([s + lo + hi for s, (lo, hi) in zip(a.shape, pad_width)], a.dtype)
        out[tuple(slice(lo, lo + s) for s, (lo, _) in zip(a.shape, pad_width))] = a
        return out

    # -- convolution through strided views ------------------------------------------
    def conv(self, x: Array, w: Array, stride: Pair, dilation: Pair = (1, 1)) -> Array:
        """im2col through a strided view, then one matrix product."""
        kh, kw, _, cout = w.shape
        n, ho, wo = conv_out_shape(x.shape, (kh, kw), stride, dilation)
        out = self.matmul(self.im2col(x, (kh, kw), stride, dilation), w.reshape(-1, cout))
        return out.reshape(n, ho, wo, cout)

    def im2col(self, x: Array, kernel: Pair, stride: Pair, dilation: Pair = (1, 1)) -> Array:
        """A (N, H', W', KH, KW, C) strided view of the windows, then the one copy."""
        n, ho, wo = conv_out_shape(x.shape, kernel, stride, dilation)
        windows = self.xp.lib.stride_tricks.as_strided(
            x, (n, ho, wo, *kernel, x.shape[3]), conv_window_strides(x.strides, stride, dilation))
        return windows.reshape(n * ho * wo, -1)

    def col2im(self, cols: Array, shape: Shape, kernel: Pair, stride: Pair,
               dilation: Pair = (1, 1)) -> Array:
        """KH·KW strided in-place adds (Caffe's loop); one strided copy when windows
        cannot overlap."""
        (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
        n, ho, wo = conv_out_shape(shape, kernel, stride, dilation)
        cols = cols.reshape(n, ho, wo, kh, kw, shape[3])
        out = self.xp.zeros(tuple(shape), cols.dtype)
        if sh >= dh * (kh - 1) + 1 and sw >= dw * (kw - 1) + 1:
            out_windows = self.xp.lib.stride_tricks.as_strided(
                out, cols.shape, conv_window_strides(out.strides, stride, dilation))
            out_windows[...] = cols
            return out
        for i in range(kh):
            for j in range(kw):
                out[:, i * dh:i * dh + sh * (ho - 1) + 1:sh,
                    j * dw:j * dw + sw * (wo - 1) + 1:sw] += cols[:, :, :, i, j]
        return out
