"""The needle backend contract on CuPy arrays (see ``needle.backend``).

``needle.xp_backend.ArrayModuleBackend`` over ``self.xp``, CuPy's NumPy-compatible
namespace (imported on first use rather than at ``import needle`` time), plus the
fused CUDA kernels of ``kernels.py``. Memory comes from CuPy's default pool, matrix
products from cuBLAS (``cupy.matmul``), random draws from CuPy's global generator (so
``cupy.random.seed`` and ``ndl.manual_seed`` both reproduce a run).
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

import numpy as np
from needle.backend import Axes, BackendUnavailable, DType, Shape, reduced_shape
from needle.xp_backend import ArrayModuleBackend

from . import _probe, kernels

_RANDOM_DTYPES = (np.dtype("float32"), np.dtype("float64"))
_UNPROBED = object()


class CUDABackend(ArrayModuleBackend):
    """NVIDIA GPUs through CuPy: one device (the current CUDA device, GPU 0 by default)."""

    name = "cuda"

    def __init__(self) -> None:
        self._xp: ModuleType | None = None
        self._reason: Any = _UNPROBED

    # -- availability and the lazily imported CuPy ------------------------------
    def availability(self) -> str | None:
        if self._reason is _UNPROBED:
            self._reason = _probe.diagnose()
        return self._reason

    @property
    def xp(self) -> ModuleType:
        """CuPy, imported on first use (tests may set ``_xp`` to a stand-in)."""
        xp = self._xp
        if xp is None:
            reason = self.availability()
            if reason is not None:
                raise BackendUnavailable(f"the cuda backend cannot run here: {reason}")
            xp = self._xp = _probe.import_cupy()
        return xp

    @property
    def array_types(self) -> tuple[type, ...]:  # type: ignore[override]  # read-only here
        """CuPy's array type once CuPy is loaded; nothing is imported to answer."""
        xp = self._xp or sys.modules.get("cupy")
        return (xp.ndarray,) if xp is not None else ()

    def device_count(self) -> int:
        return int(self.xp.cuda.runtime.getDeviceCount()) if self.availability() is None else 0

    def synchronize(self) -> None:
        """Wait for every queued kernel (kernels run asynchronously: time after this)."""
        self.xp.cuda.get_current_stream().synchronize()

    def memory_info(self) -> dict[str, int]:
        """Bytes in use and held by CuPy's memory pool, and the GPU's free and total bytes."""
        pool = self.xp.get_default_memory_pool()
        free, total = self.xp.cuda.runtime.memGetInfo()
        return {"pool_used": int(pool.used_bytes()), "pool_held": int(pool.total_bytes()),
                "gpu_free": int(free), "gpu_total": int(total)}

    def empty_cache(self) -> None:
        """Return the pool's unused blocks to the driver."""
        self.xp.get_default_memory_pool().free_all_blocks()

    # -- creation and conversion -------------------------------------------------
    def to_numpy(self, a: Any) -> np.ndarray:
        return self.xp.asnumpy(a)

    def astype(self, a: Any, dtype: DType) -> Any:
        return self.xp.asarray(a).astype(dtype, copy=False)

    # -- random: CuPy's global generator (cuRAND) ------------------------------------
    def rand(self, shape: Shape, dtype: DType) -> Any:
        return self._draw(self.xp.random.random_sample, shape, dtype)

    def randn(self, shape: Shape, dtype: DType) -> Any:
        return self._draw(self.xp.random.standard_normal, shape, dtype)

    def randb(self, shape: Shape, p: float, dtype: DType) -> Any:
        return (self.xp.random.random_sample(shape, dtype=np.float32) <= p).astype(dtype)

    def _draw(self, fn: Any, shape: Shape, dtype: DType) -> Any:
        # cuRAND draws float32 or float64 directly; other dtypes are converted from float32.
        dtype = np.dtype(dtype)
        if dtype in _RANDOM_DTYPES:
            return fn(shape, dtype=dtype)
        return fn(shape, dtype=np.float32).astype(dtype)

    # -- indexing: host index arrays move to the GPU first --------------------------------
    def getitem(self, a: Any, index: Any) -> Any:
        return a[self._device_index(index)]

    def setitem(self, a: Any, index: Any, value: Any) -> None:
        if isinstance(value, np.ndarray):
            value = self.xp.asarray(value)
        a[self._device_index(index)] = value

    def add_at(self, a: Any, index: Any, value: Any) -> None:
        self.xp.add.at(a, self._device_index(index), self.xp.asarray(value))

    def _device_index(self, index: Any) -> Any:
        """Host index arrays (NumPy arrays, lists) moved to the GPU; the rest as is."""
        if isinstance(index, tuple):
            return tuple(self._device_index_item(i) for i in index)
        return self._device_index_item(index)

    def _device_index_item(self, item: Any) -> Any:
        if isinstance(item, (np.ndarray, list)):
            return self.xp.asarray(item)
        return item

    # -- fused kernels ---------------------------------------------------------------------
    def logsumexp(self, a: Any, axis: Axes, keepdims: bool = False) -> Any:
        """One thread block per row of the reduced axes moved last (``kernels.ROW_SOURCE``)."""
        xp = self.xp
        axes = _axes(axis, a.ndim)
        cols = int(np.prod([a.shape[i] for i in axes], dtype=np.int64))
        rows = a.size // cols if cols else 0
        if np.dtype(a.dtype) not in kernels.ROW_DTYPES or cols == 0 or (rows < 32 and cols > 8192):
            # No kernel for this dtype, or few long rows: CuPy's whole-array reductions
            # keep more of the GPU busy. Same rule as the CPU backend for non-finite maxima.
            m = xp.max(a, axis=axis, keepdims=True)
            m = xp.where(xp.isfinite(m), m, 0)
            out = xp.log(xp.sum(xp.exp(a - m), axis=axis, keepdims=True)) + m
            return out if keepdims else out.reshape(reduced_shape(a.shape, axis))
        order = [i for i in range(a.ndim) if i not in axes] + sorted(axes)
        x = xp.ascontiguousarray(xp.transpose(a, order)).reshape(rows, cols)
        out = xp.empty(rows, dtype=a.dtype)
        self._row_kernel("logsumexp", a.dtype, rows, cols, (x, out, rows, cols))
        if keepdims:
            return out.reshape(tuple(1 if i in axes else s for i, s in enumerate(a.shape)))
        return out.reshape(reduced_shape(a.shape, axis))

    def log_softmax(self, a: Any, axis: int = -1) -> Any:
        """``a - logsumexp(a, axis)`` in one kernel (proposed optional contract method)."""
        axis = axis % a.ndim
        if np.dtype(a.dtype) not in kernels.ROW_DTYPES or a.size == 0:
            return self.subtract(a, self.logsumexp(a, (axis,), keepdims=True))
        x = self.xp.ascontiguousarray(self.xp.moveaxis(a, axis, -1))
        cols = x.shape[-1]
        rows = x.size // cols
        y = self.xp.empty_like(x)
        self._row_kernel("log_softmax", a.dtype, rows, cols, (x, y, rows, cols))
        return self.xp.moveaxis(y, -1, axis)

    def log_softmax_grad(self, y: Any, grad: Any, axis: int = -1) -> Any:
        """The gradient of log-softmax given its output ``y``: ``grad - exp(y) * Σ grad``."""
        axis = axis % y.ndim
        if np.dtype(y.dtype) not in kernels.ROW_DTYPES or y.size == 0:
            total = self.sum(grad, (axis,), keepdims=True)
            return self.subtract(grad, self.multiply(self.exp(y), total))
        xp = self.xp
        y2 = xp.ascontiguousarray(xp.moveaxis(y, axis, -1))
        g2 = xp.ascontiguousarray(xp.moveaxis(xp.broadcast_to(grad, y.shape), axis, -1))
        cols = y2.shape[-1]
        rows = y2.size // cols
        dz = xp.empty_like(y2)
        self._row_kernel("log_softmax_grad", y.dtype, rows, cols, (y2, g2, dz, rows, cols))
        return xp.moveaxis(dz, -1, axis)

    def softmax_cross_entropy(self, logits: Any, labels: Any,
                              reduction: str = "mean") -> tuple[Any, Any]:
        """Loss and its gradient w.r.t. ``logits`` (N, C) for integer ``labels`` (N,), fused.

        Returns ``(loss, dlogits)``: the loss per row (``reduction="none"``) or their
        mean, and ``softmax - onehot`` (divided by N for the mean). A label outside
        ``[0, C)`` makes that row's loss and gradient NaN.
        """
        if logits.ndim != 2 or labels.shape != logits.shape[:1]:
            raise ValueError(f"softmax_cross_entropy: expected logits (N, C) and labels (N,), "
                             f"got shapes {logits.shape} and {labels.shape}")
        if reduction not in ("mean", "none"):
            raise ValueError(f"softmax_cross_entropy: reduction must be 'mean' or 'none', "
                             f"not {reduction!r}")
        xp = self.xp
        dtype = np.dtype(logits.dtype)
        if dtype not in kernels.ROW_DTYPES:  # the kernel is float32/float64 only
            return super().softmax_cross_entropy(logits, labels, reduction)
        rows, cols = logits.shape
        z = xp.ascontiguousarray(logits)
        y = xp.ascontiguousarray(xp.asarray(labels).astype(np.int64, copy=False))
        loss = xp.empty(rows, dtype=dtype)
        dz = xp.empty_like(z)
        scale = dtype.type(1.0 / rows if reduction == "mean" and rows else 1.0)
        if rows and cols:
            self._row_kernel("softmax_xent", dtype, rows, cols, (z, y, loss, dz, scale, rows, cols))
        return (loss.mean() if reduction == "mean" else loss), dz

    def batch_norm(self, x, weight, bias, eps, running_mean=None, running_var=None,
                   momentum=0.1):
        """One launch of ``kernels.COLUMN_SOURCE``: statistics, normalisation and the
        running averages together. Other layouts and dtypes take the generic path."""
        xp, dtype = self.xp, np.dtype(x.dtype)
        update = running_mean is not None or running_var is not None
        if (x.ndim != 2 or dtype not in kernels.ROW_DTYPES or x.shape[0] == 0
                or not all(_column_vector(a, x.shape[1], dtype) for a in (weight, bias))
                or (update and not all(_column_vector(r, x.shape[1], dtype, own=True)
                                       for r in (running_mean, running_var)))):
            return super().batch_norm(x, weight, bias, eps, running_mean, running_var, momentum)
        rows, cols = x.shape
        x = xp.ascontiguousarray(x)
        y, x_hat, stats = xp.empty_like(x), xp.empty_like(x), xp.empty((3, cols), dtype)
        # Without running statistics the kernel gets stats in their place and skips them.
        mean_out, var_out = (running_mean, running_var) if update else (stats, stats)
        scalars = (dtype.type(momentum), dtype.type(1.0 - momentum), dtype.type(eps))
        self._column_kernel("batch_norm", dtype, cols, (
            x, xp.ascontiguousarray(weight), xp.ascontiguousarray(bias), y, x_hat, stats,
            mean_out, var_out, int(update), *scalars, rows, cols))
        return y, stats[0:1], stats[1:2], x_hat, stats[2:3]

    def batch_norm_backward(self, g, x_hat, inv_std, weight):
        xp, dtype = self.xp, np.dtype(g.dtype)
        if (g.ndim != 2 or dtype not in kernels.ROW_DTYPES or g.shape[0] == 0
                or x_hat.shape != g.shape or x_hat.dtype != dtype
                or not all(_column_vector(a, g.shape[1], dtype) for a in (inv_std, weight))):
            return super().batch_norm_backward(g, x_hat, inv_std, weight)
        rows, cols = g.shape
        dx, sums = xp.empty(g.shape, dtype), xp.empty((2, cols), dtype)
        self._column_kernel("batch_norm_grad", dtype, cols, (
            xp.ascontiguousarray(g), xp.ascontiguousarray(x_hat), xp.ascontiguousarray(inv_std),
            xp.ascontiguousarray(weight), dx, sums[0], sums[1], rows, cols))
        return dx, sums[0:1], sums[1:2]

    def _column_kernel(self, kind: str, dtype: Any, cols: int, args: tuple) -> None:
        self._launch(kernels.column_kernel, kind, dtype, kernels.column_launch(cols), args)

    def _row_kernel(self, kind: str, dtype: Any, rows: int, cols: int, args: tuple) -> None:
        self._launch(kernels.row_kernel, kind, dtype, kernels.row_launch(cols, rows), args)

    def _launch(self, kernel_of: Any, kind: str, dtype: Any, launch: tuple, args: tuple) -> None:
        name = f"needle_{kind}_{kernels.ROW_DTYPES[np.dtype(dtype)]}"
        # Sizes go as explicit 64-bit integers: they are ``long long`` in the kernels.
        args = tuple(np.int64(v) if type(v) is int else v for v in args)
        grid, block = launch
        kernel_of(self.xp, name)(grid, block, args)

    def sgd_update(self, param: Any, grad: Any, velocity: Any, lr: float, momentum: float,
                   weight_decay: float) -> Any:
        t = np.dtype(param.dtype).type
        if momentum == 0:
            kernels.elementwise(self.xp, "sgd")(grad, t(lr), t(weight_decay), param)
            return velocity
        if velocity is None:
            velocity = self.xp.zeros_like(param)
        kernels.elementwise(self.xp, "sgd_momentum")(
            grad, t(lr), t(momentum), t(1 - momentum), t(weight_decay), param, velocity)
        return velocity

    def adam_update(self, param: Any, grad: Any, m: Any, v: Any, lr: float, beta1: float,
                    beta2: float, eps: float, weight_decay: float, step: int) -> None:
        t = np.dtype(param.dtype).type
        lr_hat = lr / (1 - beta1**step)
        inv_bc2 = 1.0 / (1 - beta2**step)
        kernels.elementwise(self.xp, "adam")(
            grad, t(lr_hat), t(beta1), t(1 - beta1), t(beta2), t(1 - beta2), t(eps),
            t(weight_decay), t(inv_bc2), param, m, v)


def _column_vector(a: Any, cols: int, dtype: Any, own: bool = False) -> bool:
    """Whether ``a`` holds one ``dtype`` value per column ((D,) or (1, D)); ``own``: and
    can be written in place by a kernel (C-contiguous, not a broadcast view)."""
    if a is None or a.ndim not in (1, 2) or a.shape[-1] != cols or a.size != cols \
            or a.dtype != dtype:
        return False
    return a.flags.c_contiguous if own else True


def _axes(axis: Axes, ndim: int) -> set[int]:
    if axis is None:
        return set(range(ndim))
    return {ax % ndim for ax in ((axis,) if isinstance(axis, int) else axis)}
