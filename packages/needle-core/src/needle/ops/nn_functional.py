"""What layers need beyond arithmetic, as functions on Tensors (PyTorch's
``torch.nn.functional``): dropout, batch norm with running statistics, lookup by ids and
one-hot rows. ``needle.nn``'s layers are written in these and the other ops only, so
the backend arrays stay on this side of the Tensor.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..autograd import NeedleError, Tensor
from ..device import Device, default_device
from ..device import device as _as_device
from .fused import BatchNorm
from .shape import GetItem


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """``x · mask / (1 - p)`` with ``mask ~ Bernoulli(1 - p)`` in training, ``x`` otherwise.

    The mask is the course's draw (``randb`` with ``1 - p``, so a seeded generator gives
    its numbers), scaled before it meets ``x``: a constant, so the graph gets one multiply.
    """
    if not 0.0 <= p <= 1.0:
        raise NeedleError(f"dropout: p is a probability in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    dev, keep = x._device, 1.0 - p
    backend = dev.backend
    mask = backend.randb(x._array.shape, keep, x._array.dtype)  # the training hot path
    return x * Tensor.make_const(backend.multiply(mask, 1 / keep), device=dev)


def batch_norm(x: Tensor, weight: Tensor, bias: Tensor, running_mean: Tensor | None = None,
               running_var: Tensor | None = None, *, training: bool = True,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each feature of ``x`` (N, D), then scale by ``weight`` and shift by ``bias``.

    ``y = weight · (x - mean) / √(var + eps) + bias``. In training ``mean`` and ``var`` are
    the batch's (biased variance) and the running statistics, when given, are updated in
    place as ``running = (1 - momentum) · running + momentum · observed`` by the same
    fused kernel (no graph). Out of training the running statistics replace the batch's.
    """
    shape = x._array.shape
    stat_shape = shape[-1:] or (0,)  # (D,)
    for stat in (running_mean, running_var):  # inline checks, identity first: the hot path
        if stat is not None and (stat._array.shape != stat_shape or (
                stat._device is not x._device and stat._device != x._device)):
            name = "running_mean" if stat is running_mean else "running_var"
            raise NeedleError(f"batch_norm: {name} must have shape {stat_shape} and device "
                              f"{x.device} for the input of shape {x.shape}, got "
                              f"{stat.shape} on {stat.device}")
    if training:
        # the fused op writes the running statistics' arrays in place (core's business)
        mean = running_mean._array if running_mean is not None else None
        var = running_var._array if running_var is not None else None
        return BatchNorm(eps, mean, var, momentum)(x, weight, bias)
    if running_mean is None or running_var is None:
        raise NeedleError("batch_norm: out of training it needs running_mean and running_var")
    row = (1, stat_shape[0])
    centred = x - running_mean.reshape(row).broadcast_to(x.shape)
    std = ((running_var + eps) ** 0.5).reshape(row).broadcast_to(x.shape)
    return weight.broadcast_to(x.shape) * (centred / std) + bias.broadcast_to(x.shape)


def embedding(ids: Any, weight: Tensor) -> Tensor:
    """The rows of ``weight`` (V, D) picked by integer ``ids`` of any shape S: (*S, D).

    Its gradient adds each output row's gradient into the row it came from (repeats
    summed: a scatter-add), never a product with a (ids × V) one-hot matrix. ``ids``
    may be a Tensor, a NumPy array or a list of whole numbers in ``[0, V)``.
    """
    if weight.ndim != 2:
        raise NeedleError(f"embedding: weight must be a (num_embeddings, dim) matrix, got "
                          f"shape {weight.shape}")
    idx = class_ids(ids, weight.shape[0], "embedding")
    index = weight.device.backend.array(idx.reshape(-1), idx.dtype)
    return GetItem(index)(weight).reshape((*idx.shape, weight.shape[1]))


def one_hot(ids: Any, num_classes: int, *, dtype: Any = "float32",
            device: Device | str | None = None) -> Tensor:
    """Rows of the ``num_classes``-square identity picked by ``ids``: shape (*S, num_classes).

    A constant. ``ids`` may be a Tensor (integer, or float holding whole numbers), a NumPy
    array or a list; ids outside ``[0, num_classes)`` or with a fractional part are an
    error, not garbage.
    """
    dev = default_device() if device is None else _as_device(device)
    idx = class_ids(ids, num_classes, "one_hot")
    return Tensor.make_const(dev.one_hot(num_classes, idx, dtype=dtype), device=dev)


def class_ids(labels: Any, n: int, who: str) -> np.ndarray:
    """``labels`` as an int64 NumPy array, checked to be whole numbers in ``[0, n)``;
    ``who`` names the caller in the error."""
    raw = labels.numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    if raw.dtype.kind not in "iub":
        if raw.dtype.kind != "f":
            raise NeedleError(f"{who}: class ids must be numbers, got dtype {raw.dtype}")
        if raw.size and not np.all(raw == np.floor(raw)):
            raise NeedleError(f"{who}: class ids must be whole numbers, got {raw.ravel()[:5]}...")
    ids = raw.astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise NeedleError(f"{who}: class ids must lie in [0, {n}), "
                          f"got values from {ids.min()} to {ids.max()}")
    return ids
