"""The needle backend contract on NumPy arrays: ``needle.xp_backend`` over NumPy, plus
BLAS tricks and in-place kernels (see ``needle.backend``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from needle.backend import Axes, reduced_shape
from needle.xp_backend import ArrayModuleBackend

# Typed loosely: NumPy's overloads do not cover positional (axis, dtype, out, keepdims).
_add_reduce: Callable[..., np.ndarray] = np.add.reduce
_max_reduce: Callable[..., np.ndarray] = np.maximum.reduce
_BLAS_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# The widest last axis whose row maxima are faster from a transposed copy (see _row_max).
_NARROW_ROWS = 32
_FIRST_AXIS = (0, -2, (0,), (-2,))  # the axis arguments that mean axis 0 of a 2-D array
_LAST_AXIS = (1, -1, (1,), (-1,))
_BLAS_ROW = 4096  # the longest row summed by BLAS (see _blas_sum)
_CACHED_ZEROS = 1 << 17  # the largest relu whose zeros are kept between calls (see relu)
_CONSTANT_BYTES = 8 << 20  # what the cache of constant arrays holds at most (see _constant)


def _as_row(a: np.ndarray) -> np.ndarray:
    """A per-feature parameter of D elements as a (1, D) row (a no-op for the usual (D,))."""
    return a if a.ndim == 1 else a.reshape(1, -1)


class CPUBackend(ArrayModuleBackend):
    """The contract over NumPy (``ArrayModuleBackend``), plus what NumPy alone does slowly
    on a model's shapes: sums and row maxima through BLAS, broadcast operands made
    contiguous for matmul, in-place fused kernels and optimizer updates."""

    name = "cpu"
    xp = np  # the NumPy-named methods are NumPy's functions, bound one call deep
    array_types = (np.ndarray, np.generic)

    def __init__(self) -> None:
        self._buffers: dict[tuple[Any, ...], np.ndarray] = {}
        self._constants: dict[tuple[tuple[int, ...], np.dtype, float], np.ndarray] = {}
        self._constant_bytes = 0

    # -- reductions: NumPy returns scalars for full reductions; keep arrays ---
    # ufunc.reduce directly: np.sum's Python wrappers cost more than the work on small arrays
    def sum(self, a: np.ndarray, axis: Axes = None, keepdims: bool = False) -> np.ndarray:
        return self._sum(a, axis, keepdims)

    def _sum(self, a: np.ndarray, axis: Axes, keepdims: bool) -> np.ndarray:
        if axis is not None and a.dtype in _BLAS_DTYPES and a.size:
            if a.ndim == 2 and a.flags.c_contiguous:  # the usual (N, D) case, kept short
                n, d = a.shape
                if axis in _FIRST_AXIS:
                    out = self._ones(n, a.dtype) @ a  # (1, D)
                    return out if keepdims else out.reshape(d)
                if axis in _LAST_AXIS and d <= _BLAS_ROW:
                    out = a @ self._ones(d, a.dtype).T  # (N, 1)
                    return out if keepdims else out.reshape(n)
            out = self._blas_sum(a, axis, keepdims)
            if out is not None:
                return out
        out = _add_reduce(a, axis, None, None, keepdims)
        return out if type(out) is np.ndarray else np.asarray(out)

    # Sums over leading (or trailing) axes of a float array as one BLAS matrix-vector
    # product with a row of ones. Why: np.add.reduce over the batch axis of an (N, D)
    # array is 3-4x slower than gemv (32 us against 9 us at 1024 x 100 on a Haswell
    # OpenBLAS), and batch norm, bias gradients and the softmax loss all sum that way.
    # Accuracy: down leading axes NumPy adds row after row while BLAS keeps several
    # partial sums, so BLAS is the more accurate (2**25 float32 ones: 2**25, not 2**24).
    # Along a row NumPy sums pairwise, more accurately than BLAS for long rows, so
    # trailing sums take BLAS only for rows of at most _BLAS_ROW elements.
    def _blas_sum(self, a: np.ndarray, axis: int | tuple[int, ...], keepdims: bool
                  ) -> np.ndarray | None:
        nd = a.ndim
        axes = (axis % nd,) if isinstance(axis, int) else tuple(sorted({ax % nd for ax in axis}))
        k = len(axes)
        if k == 0 or k == nd or not a.flags.c_contiguous:
            return None
        shape = a.shape
        if axes[-1] == k - 1:  # leading axes
            lead = math.prod(shape[:k])
            out = self._ones(lead, a.dtype) @ a.reshape(lead, a.size // lead)
            kept = (1,) * k + shape[k:] if keepdims else shape[k:]
        elif axes[0] == nd - k:  # trailing axes
            trail = math.prod(shape[nd - k:])
            if trail > _BLAS_ROW:
                return None
            out = a.reshape(a.size // trail, trail) @ self._ones(trail, a.dtype).T
            kept = shape[:nd - k] + (1,) * k if keepdims else shape[:nd - k]
        else:
            return None
        return out.reshape(kept)

    def _ones(self, n: int, dtype: np.dtype, value: float = 1.0) -> np.ndarray:
        """A cached read-only (1, n) row of ``value`` (the ones of ``_blas_sum``)."""
        row = self._constants.get(((1, n), dtype, value))
        return row if row is not None else self._constant((1, n), dtype, value)

    def _constant(self, shape: tuple[int, ...], dtype: np.dtype, value: float) -> np.ndarray:
        """A read-only array of ``value``, kept for later calls with the same shape: the rows
        of ones of BLAS sums, relu's zeros. The cache holds at most ``_CONSTANT_BYTES``, the
        oldest arrays going first, so a run through many batch sizes cannot grow it."""
        a = np.full(shape, value, dtype)
        a.flags.writeable = False
        while self._constants and self._constant_bytes + a.nbytes > _CONSTANT_BYTES:
            self._constant_bytes -= self._constants.pop(next(iter(self._constants))).nbytes
        self._constants[shape, dtype, value] = a
        self._constant_bytes += a.nbytes
        return a

    def max(self, a: np.ndarray, axis: Axes = None, keepdims: bool = False) -> np.ndarray:
        if a.ndim == 2 and axis in _LAST_AXIS and a.size:
            out = self._row_max(a)  # picks the faster route for the row width
            return out if keepdims else out.reshape(-1)
        out = _max_reduce(a, axis, None, None, keepdims)
        return out if type(out) is np.ndarray else np.asarray(out)

    def argmax(self, a: np.ndarray, axis: int | None = None) -> np.ndarray:
        return np.asarray(np.argmax(a, axis=axis))

    def matmul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        # BLAS cannot read zero-stride (broadcast) operands; NumPy then falls back to a slow
        # loop, so materialise those first (gradients of sums arrive as broadcast views).
        if 0 in a.strides:
            a = np.ascontiguousarray(a)
        if 0 in b.strides:
            b = np.ascontiguousarray(b)
        return np.matmul(a, b)

    # -- fused kernels ----------------------------------------------------------
    def relu(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # max(a, 0) against an array of +0.0, not the scalar 0: NumPy vectorises maximum only
        # between two arrays (3x faster at 128 x 100), and it is exact where x·[x > 0] is
        # not: relu(−inf) = 0, relu(NaN) = NaN, +0.0 (never −0.0) for negatives and −0.0.
        mask = np.greater(a, 0).astype(a.dtype)
        zeros = self._constants.get((a.shape, a.dtype, 0.0))  # inline: runs for every relu
        if zeros is None:
            if a.dtype not in _BLAS_DTYPES:
                out = np.maximum(a, 0)
                if out.dtype.kind == "f":
                    out += 0.0  # float16's maximum keeps −0.0
                return out, mask
            if a.size > _CACHED_ZEROS:
                out = np.zeros_like(a)
                return np.maximum(a, out, out=out), mask
            zeros = self._constant(a.shape, a.dtype, 0.0)
        return np.maximum(a, zeros), mask

    def logsumexp(self, a: np.ndarray, axis: Axes, keepdims: bool = False) -> np.ndarray:
        if a.ndim == 2 and axis in _LAST_AXIS and a.size:
            m = self._row_max(a)  # (N, 1)
        else:
            m = np.max(a, axis=axis, keepdims=True)
        m[~np.isfinite(m)] = 0.0  # all -inf (or inf) slices: keep NaN out of a - m
        shifted = a - m
        shifted = np.exp(shifted, out=shifted) if shifted.dtype.kind == "f" else np.exp(shifted)
        with np.errstate(divide="ignore"):  # an all -inf slice is log(0) = -inf, as it should be
            s = np.log(self._sum(shifted, axis, True))
        s += m
        return s if keepdims else np.asarray(s.reshape(reduced_shape(a.shape, axis)))

    def softmax_cross_entropy(self, logits: np.ndarray, labels: np.ndarray,
                              reduction: str = "mean") -> tuple[Any, np.ndarray]:
        n, k = logits.shape if logits.ndim == 2 else (0, 0)
        if not k or not n or logits.dtype not in _BLAS_DTYPES or not logits.flags.c_contiguous:
            return super().softmax_cross_entropy(logits, labels, reduction)
        m = self._row_max(logits)  # (N, 1)
        if np.isfinite(m).all():
            return self._softmax_xent(logits, labels, m, reduction)
        m[~np.isfinite(m)] = 0.0  # as in logsumexp: no inf - inf
        with np.errstate(divide="ignore", invalid="ignore"):  # all -inf rows: NaN, as maths says
            return self._softmax_xent(logits, labels, m, reduction)

    def _softmax_xent(self, logits: np.ndarray, labels: np.ndarray, m: np.ndarray,
                      reduction: str) -> tuple[Any, np.ndarray]:
        """The fused loss given finite row maxima ``m`` (N, 1)."""
        n, k = logits.shape
        dlogits = logits - m
        flat = dlogits.reshape(-1)
        at_label = np.arange(0, n * k, k) + labels  # flat positions: 1-D indexing is faster
        picked = flat.take(at_label)  # z[label] - max
        np.exp(dlogits, out=dlogits)
        total = dlogits @ self._ones(k, dlogits.dtype).T  # (N, 1) row sums as in _blas_sum
        dlogits /= total
        losses = np.log(total.reshape(n))
        losses -= picked
        flat[at_label] -= 1.0  # one label per row: no repeated index
        if reduction == "none":
            return losses, dlogits
        dlogits *= 1.0 / n
        return np.divide(_add_reduce(losses), n), dlogits

    @staticmethod
    def _row_max(a: np.ndarray) -> np.ndarray:
        """Row maxima of a 2-D array, kept as (N, 1). NumPy reduces a narrow last axis
        (a classifier's 10 logits) row by row, 5x slower than reducing the transposed copy
        down its columns; wide rows are faster in place."""
        if a.shape[1] <= _NARROW_ROWS:
            return _max_reduce(np.ascontiguousarray(a.T), 0).reshape(-1, 1)
        return _max_reduce(a, 1, None, None, True)

    # In-place versions of the contract's composite kernels: the arrays they write are
    # their own fresh results, and each saved pass over (N, D) data shows at large batches.
    def linear(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
        out = self.matmul(x, w)
        if b is None:
            return out
        try:
            out += b  # out is our own fresh array
        except ValueError:  # b would broadcast out to a larger shape
            out = out + b
        return out

    def batch_norm(self, x, weight, bias, eps, running_mean=None, running_var=None,
                   momentum=0.1):
        if x.ndim != 2 or x.dtype not in _BLAS_DTYPES:
            return super().batch_norm(x, weight, bias, eps, running_mean, running_var, momentum)
        # Batch statistics as products with a (1, N) row of 1/N (see _blas_sum): (1, D).
        mean_row = self._ones(x.shape[0], x.dtype, 1.0 / x.shape[0])
        mean = mean_row @ x
        x_hat = x - mean
        var = mean_row @ np.square(x_hat)
        for running, observed in ((running_mean, mean), (running_var, var)):
            if running is not None:
                running *= 1 - momentum
                running += momentum * observed.reshape(running.shape)
        inv_std = var + eps
        np.sqrt(inv_std, out=inv_std)
        np.divide(1.0, inv_std, out=inv_std)
        x_hat *= inv_std
        y = x_hat * _as_row(weight)
        y += _as_row(bias)
        return y, mean, var, x_hat, inv_std

    def batch_norm_backward(self, g, x_hat, inv_std, weight):
        n = g.shape[0]
        if g.ndim != 2 or g.dtype not in _BLAS_DTYPES:
            return super().batch_norm_backward(g, x_hat, inv_std, weight)
        ones = self._ones(n, g.dtype)
        g_bias = ones @ g
        dx = g * x_hat
        g_weight = ones @ dx
        # dx = w·inv_std · (g − Σg/N − x̂·Σ(g·x̂)/N), reusing the product's buffer
        np.multiply(x_hat, g_weight * (-1.0 / n), out=dx)
        dx += g
        dx -= g_bias * (1.0 / n)
        dx *= _as_row(weight) * inv_std
        return dx, g_weight, g_bias

    # -- the course's hw3 tiled matmul, on the buffers behind course NDArrays ----
    __tile_size__ = 8

    def matmul_tiled(self, a: Any, b: Any, out: Any, m: int, n: int, p: int) -> None:
        """out = a @ b for (m, n) and (n, p) matrices stored tile by tile: each buffer holds
        (rows/t, cols/t, t, t) blocks of t = ``__tile_size__`` (``a``, ``b``, ``out`` are the
        arrays' ``_handle``s, as the course passes them)."""
        t = self.__tile_size__
        if m % t or n % t or p % t:
            raise ValueError(f"matmul_tiled: sizes {m}, {n}, {p} must be multiples of the "
                             f"tile size {t}")
        tiles = lambda h, r, c: h.array.reshape(-1)[:r * c].reshape(r // t, c // t, t, t)
        product = np.einsum("ikab,kjbc->ijac", tiles(a, m, n), tiles(b, n, p))
        out.array.reshape(-1)[:m * p] = product.reshape(-1)

    def sgd_update(self, param, grad, velocity, lr, momentum, weight_decay):
        tmp = self._scratch(param)
        if weight_decay != 0:
            grad = self._decayed(param, grad, weight_decay)
        if momentum != 0:
            if velocity is None:
                velocity = np.zeros_like(param)
            velocity *= momentum
            np.multiply(grad, 1 - momentum, out=tmp)
            velocity += tmp
            grad = velocity
        np.multiply(grad, lr, out=tmp)
        param -= tmp
        return velocity

    def adam_update(self, param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step):
        # In place and allocation-free: this loop runs for every parameter at every step.
        # lr·m̂/(√v̂ + ε) is rewritten as (lr·√c2/c1)·m/(√v + ε·√c2), c = 1 − β^step.
        tmp = self._scratch(param)
        if weight_decay != 0:
            grad = self._decayed(param, grad, weight_decay)
        np.multiply(grad, 1 - beta1, out=tmp)
        m *= beta1
        m += tmp
        np.multiply(grad, grad, out=tmp)
        tmp *= 1 - beta2
        v *= beta2
        v += tmp
        c1, c2_sqrt = 1 - beta1**step, (1 - beta2**step) ** 0.5
        np.sqrt(v, out=tmp)
        tmp += eps * c2_sqrt
        np.divide(m, tmp, out=tmp)
        tmp *= lr * c2_sqrt / c1
        param -= tmp

    def _decayed(self, param: np.ndarray, grad: np.ndarray, weight_decay: float) -> np.ndarray:
        """grad + weight_decay·param in a scratch buffer (grad itself is never written)."""
        out = self._scratch(param, "decayed")
        np.multiply(param, weight_decay, out=out)
        out += grad
        return out

    def _scratch(self, like: np.ndarray, role: str = "tmp") -> np.ndarray:
        """A reusable buffer shaped like ``like`` (fresh large allocations cost page faults)."""
        key = (role, like.shape, like.dtype)
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = np.empty_like(like)
        return buf
