"""The backend contract: everything a piece of hardware must offer needle.

A backend is an object whose methods take and return its own *arrays* (NumPy
arrays for ``cpu``, CuPy arrays for ``cuda``). Ops in ``needle.ops`` are written
once against these methods, so adding hardware means implementing this class and
registering it under the ``needle.backends`` entry-point group::

    # pyproject.toml of your package
    [project.entry-points."needle.backends"]
    mydev = "my_package:MyBackend"

The entry point names a class (or any zero-argument callable) returning a
``Backend``. Needle imports it lazily, the first time a device of that name is
asked for, and never lets a failing backend break ``import needle``.

The contract has two parts (``REQUIRED`` and ``OPTIONAL`` list their names):

1. **The array core** (required): creation, random draws, NumPy-named element-wise
   math, reductions, ``matmul``, views and indexing. Names and semantics follow
   NumPy, so for a library with NumPy's API all of it comes from
   ``needle.xp_backend.ArrayModuleBackend``: a new backend is that class plus ``xp``.
2. **Kernels** (optional): fused training kernels (conv, batch norm, softmax loss,
   optimizer updates...) with defaults written in the array core. Override one only
   when the hardware does it better.

``needle.testing.check_backend`` runs every method of both parts against NumPy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Array = Any  # a backend's native array type
Shape = tuple[int, ...]
Axes = tuple[int, ...] | None
DType = np.dtype
Pair = tuple[int, int]  # (height, width)


class BackendUnavailable(RuntimeError):  # noqa: N818 - reads as a state
    """Raised when a backend is installed but cannot run here (no driver, no GPU...)."""


class Backend:
    """Base class of all backends. Subclasses implement the methods that raise."""

    #: The device name users type: ``ndl.device(name)``.
    name: str = "?"
    #: The types of this backend's arrays (data loaders and ``NDArray`` ask "is this
    #: already one of ours?" before converting).
    array_types: tuple[type, ...] = ()

    # -- availability ------------------------------------------------------
    def availability(self) -> str | None:
        """``None`` when usable here, else a sentence saying what is missing."""
        return None

    def device_count(self) -> int:
        return 1

    def synchronize(self) -> None:
        """Wait until queued work is done (benchmarks time with it); default: nothing
        queues."""

    # == part 1, the array core (required) ======================================
    # -- creation and conversion -----------------------------------------
    def array(self, data: Any, dtype: DType) -> Array:
        """A new array holding ``data`` (a NumPy array, list or scalar) as ``dtype``."""
        raise NotImplementedError

    def to_numpy(self, a: Array) -> np.ndarray:
        """A NumPy array with the values of ``a`` (may share memory on the CPU)."""
        raise NotImplementedError

    def full(self, shape: Shape, value: float, dtype: DType) -> Array:
        raise NotImplementedError

    def astype(self, a: Array, dtype: DType) -> Array:
        """``a`` converted to ``dtype``; returns ``a`` itself when it already is."""
        raise NotImplementedError

    def one_hot(self, n: int, indices: Array, dtype: DType) -> Array:
        """Rows of the ``n``×``n`` identity picked by integer ``indices``."""
        raise NotImplementedError

    def arange(self, n: int, dtype: DType) -> Array:
        raise NotImplementedError

    def copy(self, a: Array) -> Array:
        raise NotImplementedError

    # -- random draws (reproducible through ``seed``) -----------------------
    def seed(self, n: int) -> None:
        raise NotImplementedError

    def rand(self, shape: Shape, dtype: DType) -> Array:
        """Uniform on [0, 1)."""
        raise NotImplementedError

    def randn(self, shape: Shape, dtype: DType) -> Array:
        """Standard normal."""
        raise NotImplementedError

    def randb(self, shape: Shape, p: float, dtype: DType) -> Array:
        """Bernoulli(p) as 0/1 values of ``dtype`` (uniform draw ``<= p``)."""
        raise NotImplementedError

    def permutation(self, n: int) -> Array:
        """A random permutation of ``range(n)`` as integers."""
        raise NotImplementedError

    # -- element-wise (NumPy broadcasting; scalars may be Python numbers) ---
    def add(self, a: Array, b: Array | float) -> Array:
        raise NotImplementedError

    def subtract(self, a: Array, b: Array | float) -> Array:
        raise NotImplementedError

    def multiply(self, a: Array, b: Array | float) -> Array:
        raise NotImplementedError

    def divide(self, a: Array, b: Array | float) -> Array:
        raise NotImplementedError

    def power(self, a: Array, b: Array | float) -> Array:
        raise NotImplementedError

    def negative(self, a: Array) -> Array:
        raise NotImplementedError

    def exp(self, a: Array) -> Array:
        raise NotImplementedError

    def log(self, a: Array) -> Array:
        raise NotImplementedError

    def tanh(self, a: Array) -> Array:
        raise NotImplementedError

    def sqrt(self, a: Array) -> Array:
        raise NotImplementedError

    def maximum(self, a: Array, b: Array | float) -> Array:
        raise NotImplementedError

    def where(self, cond: Array, a: Array, b: Array | float) -> Array:
        raise NotImplementedError

    # comparisons return boolean arrays
    def equal(self, a: Array, b: Array | float) -> Array:
        raise NotImplementedError

    def greater(self, a: Array, b: Array | float) -> Array:
        raise NotImplementedError

    def greater_equal(self, a: Array, b: Array | float) -> Array:
        raise NotImplementedError

    def less(self, a: Array, b: Array | float) -> Array:
        raise NotImplementedError

    def less_equal(self, a: Array, b: Array | float) -> Array:
        raise NotImplementedError

    # -- reductions ---------------------------------------------------------
    def sum(self, a: Array, axis: Axes = None, keepdims: bool = False) -> Array:
        raise NotImplementedError

    def max(self, a: Array, axis: Axes = None, keepdims: bool = False) -> Array:
        raise NotImplementedError

    def argmax(self, a: Array, axis: int | None = None) -> Array:
        raise NotImplementedError

    # -- linear algebra -----------------------------------------------------
    def matmul(self, a: Array, b: Array) -> Array:
        """Batched matrix product with NumPy's broadcasting of leading axes."""
        raise NotImplementedError

    # -- shapes and indexing (views where the hardware allows) --------------
    def reshape(self, a: Array, shape: Shape) -> Array:
        raise NotImplementedError

    def transpose(self, a: Array, axes: Sequence[int]) -> Array:
        """Permute axes (a view where possible)."""
        raise NotImplementedError

    def broadcast_to(self, a: Array, shape: Shape) -> Array:
        """A broadcast view: must not materialise the repeated data."""
        raise NotImplementedError

    def getitem(self, a: Array, index: Any) -> Array:
        """NumPy indexing: ints, slices, ``None``, ellipsis, integer arrays."""
        raise NotImplementedError

    def setitem(self, a: Array, index: Any, value: Array | float) -> None:
        """In-place ``a[index] = value``."""
        raise NotImplementedError

    def add_at(self, a: Array, index: Any, value: Array) -> None:
        """In-place unbuffered ``a[index] += value`` (repeated indices accumulate)."""
        raise NotImplementedError

    def concatenate(self, arrays: Sequence[Array], axis: int | None) -> Array:
        """Join along ``axis``; ``None`` flattens every array first (any shapes)."""
        raise NotImplementedError

    def stack(self, arrays: Sequence[Array], axis: int) -> Array:
        raise NotImplementedError

    def flip(self, a: Array, axis: tuple[int, ...]) -> Array:
        raise NotImplementedError

    def pad(self, a: Array, pad_width: Sequence[tuple[int, int]]) -> Array:
        """Zero padding, one ``(before, after)`` pair per axis."""
        raise NotImplementedError

    # == part 2, optional kernels: defaults built from the array core ==========
    # sin, cos and prod have no formula in the required methods, so their defaults go
    # through NumPy on the host: right everywhere, fast only where overridden.
    def from_dlpack(self, x: Any) -> Array:
        """An array sharing the memory of DLPack-capable ``x`` (``needle.from_dlpack``)."""
        raise NotImplementedError(f"the {self.name!r} backend cannot import DLPack arrays")

    def sin(self, a: Array) -> Array:
        return self.array(np.sin(self.to_numpy(a)), a.dtype)

    def cos(self, a: Array) -> Array:
        return self.array(np.cos(self.to_numpy(a)), a.dtype)

    def prod(self, a: Array, axis: Axes = None, keepdims: bool = False) -> Array:
        return self.array(np.prod(self.to_numpy(a), axis=axis, keepdims=keepdims), a.dtype)

    def relu(self, a: Array) -> tuple[Array, Array]:
        """max(a, 0) and its 0/1 mask ``a > 0`` in ``a``'s dtype (the backward multiplies
        by it). relu(−inf) is 0 and relu(NaN) is NaN, as NumPy's ``maximum`` gives."""
        return self.maximum(a, 0), self.astype(self.greater(a, 0), a.dtype)

    def logsumexp(self, a: Array, axis: Axes, keepdims: bool = False) -> Array:
        """Stable log Σ exp over ``axis``: subtract the max first."""
        m = shift_of(self, a, axis)
        s = self.log(self.sum(self.exp(self.subtract(a, m)), axis, keepdims=True))
        out = self.add(s, m)
        return out if keepdims else self.reshape(out, reduced_shape(a.shape, axis))

    def linear(self, x: Array, w: Array, b: Array | None) -> Array:
        """x @ w + b (b broadcast over the leading axes)."""
        out = self.matmul(x, w)
        return out if b is None else self.add(out, b)

    def batch_norm(self, x: Array, weight: Array, bias: Array, eps: float,
                   running_mean: Array | None = None, running_var: Array | None = None,
                   momentum: float = 0.1) -> tuple[Array, Array, Array, Array, Array]:
        """Normalise (N, D) ``x`` over the batch with its biased variance, then scale and
        shift. Returns (y, mean, var, x_hat, inv_std); the last four are (1, D) or (N, D)
        and feed ``batch_norm_backward``. Running statistics (D,), when given, are updated
        in place: r ← (1 − momentum)·r + momentum·(batch mean or biased variance)."""
        n = x.shape[0]
        mean = self.divide(self.sum(x, (0,), keepdims=True), n)
        centred = self.subtract(x, mean)
        var = self.divide(self.sum(self.multiply(centred, centred), (0,), keepdims=True), n)
        inv_std = self.divide(1.0, self.sqrt(self.add(var, eps)))
        x_hat = self.multiply(centred, inv_std)
        y = self.add(self.multiply(x_hat, self.reshape(weight, (1, -1))),
                     self.reshape(bias, (1, -1)))
        for running, observed in ((running_mean, mean), (running_var, var)):
            if running is not None:
                self.setitem(running, ..., self.add(
                    self.multiply(running, 1 - momentum),
                    self.multiply(self.reshape(observed, running.shape), momentum)))
        return y, mean, var, x_hat, inv_std

    def batch_norm_backward(self, g: Array, x_hat: Array, inv_std: Array,
                            weight: Array) -> tuple[Array, Array, Array]:
        """Gradients (dx, dweight, dbias) of ``batch_norm``; dweight/dbias are (1, D).

        dx = w·inv_std/N · (N·g − Σg − x̂·Σ(g·x̂)).
        """
        n = g.shape[0]
        g_bias = self.sum(g, (0,), keepdims=True)
        g_weight = self.sum(self.multiply(g, x_hat), (0,), keepdims=True)
        dx = self.subtract(self.subtract(self.multiply(g, n), g_bias),
                           self.multiply(x_hat, g_weight))
        scale = self.multiply(self.reshape(weight, (1, -1)), self.divide(inv_std, n))
        return self.multiply(dx, scale), g_weight, g_bias

    def softmax_cross_entropy(self, logits: Array, labels: Array,
                              reduction: str = "mean") -> tuple[Array, Array]:
        """Cross-entropy of ``logits`` (N, C) against int64 class ids ``labels`` (N,) in
        [0, C), and its gradient, in one call: ``(loss, dlogits)``.

        loss is logsumexp(z) − z[label] per row (``reduction="none"``) or their mean;
        dlogits is softmax(z) − onehot(label), divided by N for the mean. Why fused: the
        forward pass already has the softmax the gradient needs.
        """
        n = logits.shape[0]
        # max-shifted: large logits keep their digits
        shifted = self.subtract(logits, shift_of(self, logits, (1,)))
        lse = self.logsumexp(shifted, (1,), keepdims=True)
        index = (self.arange(n, np.dtype("int64")), labels)
        losses = self.subtract(self.reshape(lse, (n,)), self.getitem(shifted, index))
        dlogits = self.exp(self.subtract(shifted, lse))
        self.setitem(dlogits, index, self.subtract(self.getitem(dlogits, index), 1.0))
        if reduction == "none":
            return losses, dlogits
        return self.divide(self.sum(losses), n), self.divide(dlogits, n)

    def conv(self, x: Array, w: Array, stride: Pair, dilation: Pair = (1, 1)) -> Array:
        """Valid cross-correlation: x (N,H,W,Cin), w (KH,KW,Cin,Cout) -> (N,H',W',Cout).

        ``stride`` and ``dilation`` are (height, width) pairs. The op calls this when no
        gradient will be needed; training goes through ``im2col``. The default sums
        KH*KW shifted matrix products, so it never holds the columns (inference memory).
        """
        kh, kw, _, cout = w.shape
        (sh, sw), (dh, dw) = stride, dilation
        n, ho, wo = conv_out_shape(x.shape, (kh, kw), stride, dilation)
        out = self.full((n, ho, wo, cout), 0.0, w.dtype)
        for i in range(kh):
            for j in range(kw):
                patch = self.getitem(x, _window(i * dh, j * dw, ho, wo, sh, sw))
                out = self.add(out, self.matmul(patch, self.getitem(w, (i, j))))
        return out

    def im2col(self, x: Array, kernel: Pair, stride: Pair, dilation: Pair = (1, 1)) -> Array:
        """The columns of a valid cross-correlation: x (N,H,W,C) -> (N*H'*W', KH*KW*C).

        Row (n, i, j) holds the window under output pixel (i, j) of image n, ordered
        (kernel row, kernel column, channel), so conv = im2col(x) @ w.reshape(-1, Cout)
        and the weight gradient is im2col(x)^T @ grad. The default stacks KH*KW strided
        slices; backends override it with a strided view and one copy.
        """
        kh, kw = kernel
        (sh, sw), (dh, dw) = stride, dilation
        n, ho, wo = conv_out_shape(x.shape, kernel, stride, dilation)
        patches = [self.getitem(x, _window(i * dh, j * dw, ho, wo, sh, sw))
                   for i in range(kh) for j in range(kw)]
        return self.reshape(self.stack(patches, 3), (n * ho * wo, kh * kw * x.shape[3]))

    def col2im(self, cols: Array, shape: Shape, kernel: Pair, stride: Pair,
               dilation: Pair = (1, 1)) -> Array:
        """The adjoint of ``im2col``: (N*H'*W', KH*KW*C) -> ``shape`` (N,H,W,C), summing
        where windows overlap. The input gradient of a conv is col2im(grad @ w^T).

        KH*KW strided adds (Caffe's loop): the default reads and writes each slice.
        """
        kh, kw = kernel
        (sh, sw), (dh, dw) = stride, dilation
        n, ho, wo = conv_out_shape(shape, kernel, stride, dilation)
        c = shape[3]
        cols = self.reshape(cols, (n, ho, wo, kh, kw, c))
        out = self.full(tuple(shape), 0.0, cols.dtype)
        for i in range(kh):
            for j in range(kw):
                index = _window(i * dh, j * dw, ho, wo, sh, sw)
                part = self.getitem(cols, (slice(None), slice(None), slice(None), i, j))
                self.setitem(out, index, self.add(self.getitem(out, index), part))
        return out

    def sgd_update(self, param: Array, grad: Array, velocity: Array | None,
                   lr: float, momentum: float, weight_decay: float) -> Array | None:
        """One course-style SGD step, in place on ``param`` (and ``velocity``).

        g = grad + wd*param; u = momentum*u + (1-momentum)*g; param -= lr*u.
        Returns the new velocity (``None`` when momentum is 0). Must not touch ``grad``.
        """
        g = grad if weight_decay == 0 else self.add(grad, self.multiply(param, weight_decay))
        if momentum != 0:
            if velocity is None:
                velocity = self.full(param.shape, 0.0, param.dtype)
            u = self.add(self.multiply(velocity, momentum), self.multiply(g, 1 - momentum))
            self.setitem(velocity, ..., u)
            g = velocity
        self.setitem(param, ..., self.subtract(param, self.multiply(g, lr)))
        return velocity

    def adam_update(self, param: Array, grad: Array, m: Array, v: Array, lr: float,
                    beta1: float, beta2: float, eps: float, weight_decay: float,
                    step: int) -> None:
        """One Adam step with bias correction, in place on ``param``, ``m`` and ``v``.

        Must not touch ``grad``. ``step`` counts from 1.
        """
        g = grad if weight_decay == 0 else self.add(grad, self.multiply(param, weight_decay))
        self.setitem(m, ..., self.add(self.multiply(m, beta1), self.multiply(g, 1 - beta1)))
        self.setitem(v, ..., self.add(self.multiply(v, beta2),
                                      self.multiply(self.multiply(g, g), 1 - beta2)))
        m_hat = self.divide(m, 1 - beta1**step)
        v_hat = self.divide(v, 1 - beta2**step)
        update = self.divide(m_hat, self.add(self.sqrt(v_hat), eps))
        self.setitem(param, ..., self.subtract(param, self.multiply(update, lr)))

    def __repr__(self) -> str:
        return f"<needle backend {self.name!r} ({type(self).__module__})>"


#: Part 1, the array core: every backend implements these.
REQUIRED = (
    "array", "to_numpy", "full", "astype", "one_hot", "arange", "copy",
    "seed", "rand", "randn", "randb", "permutation",
    "add", "subtract", "multiply", "divide", "power", "negative", "exp", "log", "tanh",
    "sqrt", "maximum", "where", "equal", "greater", "greater_equal", "less", "less_equal",
    "sum", "max", "argmax", "matmul",
    "reshape", "transpose", "broadcast_to", "getitem", "setitem", "add_at", "concatenate",
    "stack", "flip", "pad",
)
#: Part 2, kernels with defaults written in part 1 (override for speed).
OPTIONAL = (
    "sin", "cos", "prod", "relu", "logsumexp", "linear", "batch_norm", "batch_norm_backward",
    "softmax_cross_entropy", "conv", "im2col", "col2im", "sgd_update", "adam_update",
    "from_dlpack", "synchronize",
)


def shift_of(backend: Backend, a: Array, axis: Axes) -> Array:
    """The shift of a stable logsumexp or softmax: the max over ``axis`` (kept), 0 where that
    max is ±inf (x − inf would be NaN), built from contract methods so every backend has it."""
    m = backend.max(a, axis, keepdims=True)
    return backend.where(backend.equal(backend.subtract(m, m), 0.0), m, 0.0)


def reduced_shape(shape: Shape, axis: Axes) -> Shape:
    if axis is None:
        return ()
    axes = {ax % len(shape) for ax in ((axis,) if isinstance(axis, int) else axis)}
    return tuple(s for i, s in enumerate(shape) if i not in axes)


def conv_out_shape(shape: Shape, kernel: Pair, stride: Pair, dilation: Pair) -> Shape:
    """(N, H', W') of a valid cross-correlation of NHWC ``shape`` with a KH x KW kernel."""
    n, h, w = shape[:3]
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    return n, (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1


def conv_window_strides(strides: Shape, stride: Pair, dilation: Pair) -> Shape:
    """Byte strides of the (N, H', W', KH, KW, C) view of an NHWC array's conv windows
    (for backends whose arrays support ``as_strided``)."""
    sn, sh, sw, sc = strides
    return sn, sh * stride[0], sw * stride[1], sh * dilation[0], sw * dilation[1], sc


def _window(top: int, left: int, ho: int, wo: int, sh: int, sw: int) -> tuple[slice, ...]:
    """The NHWC index of the pixels one kernel tap sees across all H' x W' outputs."""
    return (slice(None), slice(top, top + sh * (ho - 1) + 1, sh),
            slice(left, left + sw * (wo - 1) + 1, sw), slice(None))
