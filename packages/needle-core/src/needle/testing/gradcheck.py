"""Finite-difference gradient checking.

``backward`` is checked against the central difference (f(x + eps) - f(x - eps)) / 2eps
of the scalar J(x) = Σ fn(x) · g, where g is a *random* upstream gradient: with
g = ones, a gradient that forgets to multiply by ``out_grad`` (or transposes it
wrongly) would still pass. Everything runs in float64, where the truncation and
rounding errors of central differences (~eps², ~1e-16/eps) sit far below ``atol``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..autograd import Tensor, TensorTuple
from ..device import Device, default_device

__all__ = ["gradcheck", "numerical_gradient"]


@dataclass
class _Input:
    """One argument of ``fn``: its float64 values and how to rebuild it as a Tensor."""

    array: np.ndarray
    device: Device
    requires_grad: bool
    checked: bool  # a floating input that requires a gradient

    def tensor(self, array: np.ndarray | None = None) -> Tensor:
        data = self.array if array is None else array
        return Tensor(data, device=self.device, dtype=data.dtype, requires_grad=self.requires_grad)


def _prepare(inputs: Sequence[Any], warn: bool) -> list[_Input]:
    if not inputs:
        raise ValueError("gradcheck needs at least one input")
    dev = next((x.device for x in inputs if isinstance(x, Tensor)), None) or default_device()
    prepared = []
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor):
            array, device, requires_grad = np.array(x.numpy()), x.device, x.requires_grad
        else:
            array, device = np.array(x), dev
            requires_grad = bool(np.issubdtype(array.dtype, np.floating))
        floating = np.issubdtype(array.dtype, np.floating)
        if floating and array.dtype != np.float64:
            if warn:
                warnings.warn(
                    f"gradcheck: input {i} is {array.dtype}; it is checked in float64 "
                    f"(finite differences in {array.dtype} are too coarse to trust)",
                    stacklevel=3,
                )
            array = array.astype(np.float64)
        prepared.append(_Input(array, device, requires_grad, floating and requires_grad))
    if not any(p.checked for p in prepared):
        raise ValueError("gradcheck: no input is a floating tensor that requires a gradient")
    return prepared


def _outputs(out: Any) -> list[Tensor]:
    """``fn``'s result as a list of Tensors (a TensorTuple gives one per element)."""
    if isinstance(out, TensorTuple):
        return list(out.tuple())
    if isinstance(out, Tensor):
        return [out]
    raise TypeError(f"gradcheck: fn must return a Tensor or TensorTuple, not {type(out).__name__}")


def _objective(fn: Callable[..., Any], tensors: list[Tensor], grads: list[np.ndarray]) -> float:
    """J = Σ fn(tensors) · out_grad, in float64 NumPy."""
    outs = _outputs(fn(*tensors))
    return float(sum(np.sum(o.numpy().astype(np.float64) * g) for o, g in zip(outs, grads)))


def numerical_gradient(fn: Callable[..., Any], *inputs: Any, out_grad: Any = None,
                       eps: float = 1e-6) -> list[np.ndarray | None]:
    """Central-difference gradient of Σ fn(*inputs) · out_grad with respect to each input.

    ``out_grad`` defaults to ones (a list of arrays when ``fn`` returns a TensorTuple).
    Inputs that are not floating or do not require a gradient get ``None``.
    """
    prepared = _prepare(inputs, warn=False)
    if out_grad is None:
        shapes = [o.shape for o in _outputs(fn(*[p.tensor() for p in prepared]))]
        grads = [np.ones(s) for s in shapes]
    else:
        grads = [np.asarray(g, dtype=np.float64) for g in _as_list(out_grad)]
    return _numerical(fn, prepared, grads, eps)


def _numerical(fn: Callable[..., Any], prepared: list[_Input], grads: list[np.ndarray],
               eps: float) -> list[np.ndarray | None]:
    result: list[np.ndarray | None] = []
    for i, p in enumerate(prepared):
        if not p.checked:
            result.append(None)
            continue
        others = [q.tensor() for q in prepared]
        numerical = np.zeros_like(p.array)
        shifted = p.array.copy()
        for j in range(p.array.size):
            centre = shifted.flat[j]
            values = []
            for delta in (eps, -eps):
                shifted.flat[j] = centre + delta
                others[i] = p.tensor(shifted.copy())
                values.append(_objective(fn, others, grads))
            shifted.flat[j] = centre
            numerical.flat[j] = (values[0] - values[1]) / (2 * eps)
        result.append(numerical)
    return result


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return [v.numpy() if isinstance(v, Tensor) else v for v in value]
    return [value.numpy() if isinstance(value, Tensor) else value]


def _backward(outs: list[Tensor], grads: list[np.ndarray]) -> None:
    if len(outs) == 1:
        up = Tensor(grads[0], device=outs[0].device, dtype=np.float64, requires_grad=False)
        outs[0].backward(up)
        return
    total: Tensor | None = None
    for o, g in zip(outs, grads):
        term = (o * Tensor(g, device=o.device, dtype=o.dtype, requires_grad=False)).sum()
        total = term if total is None else total + term
    assert total is not None  # _outputs never returns an empty list
    total.backward()


def _check_grad_type(i: int, leaf: Tensor) -> np.ndarray:
    grad = leaf.grad
    if grad is None:  # the output does not depend on this input
        return np.zeros_like(leaf.numpy())
    if not isinstance(grad, Tensor):
        raise AssertionError(f"gradcheck: the gradient of input {i} is a "
                             f"{type(grad).__name__}, not a Tensor")
    problems = [f"{what} {got} (the input's is {want})" for what, got, want in (
        ("shape", grad.shape, leaf.shape), ("dtype", grad.dtype, leaf.dtype),
        ("device", grad.device, leaf.device)) if got != want]
    if problems:
        raise AssertionError(f"gradcheck: the gradient of input {i} has " + "; ".join(problems))
    return grad.numpy()


def gradcheck(fn: Callable[..., Any], *inputs: Any, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, out_grad: Any = None, seed: int | None = None) -> bool:
    """Check ``backward`` of ``fn(*inputs)`` against central finite differences.

    Inputs (Tensors, arrays or numbers) are copied to float64 leaves (a float32
    input triggers a warning: check in float64). Integer inputs and Tensors with
    ``requires_grad=False`` are passed through unchecked. ``fn`` may return a
    Tensor or a TensorTuple. The upstream gradient is ``out_grad`` or a standard
    normal draw seeded by ``seed`` (the seed is printed on failure). An element
    fails when |backward - numerical| > atol + rtol·|numerical|.

    Returns True, or raises AssertionError naming the input, the flat and
    multi-dimensional index of the worst element, and both values.
    """
    prepared = _prepare(inputs, warn=True)
    leaves = [p.tensor() for p in prepared]
    outs = _outputs(fn(*leaves))
    for k, o in enumerate(outs):
        if o.dtype != np.float64:
            raise AssertionError(f"gradcheck: output {k} of fn is {o.dtype} for float64 inputs: "
                                 f"something in fn casts, so finite differences are unreliable")
        if not np.all(np.isfinite(o.numpy())):
            raise AssertionError(f"gradcheck: output {k} of fn is not finite: {o.numpy()!r}")
    if out_grad is None:
        if seed is None:
            seed = int(np.random.default_rng().integers(2**32))
        rng = np.random.default_rng(seed)
        grads = [rng.standard_normal(o.shape) for o in outs]
    else:
        grads = [np.asarray(g, dtype=np.float64) for g in _as_list(out_grad)]
        for k, (o, g) in enumerate(zip(outs, grads)):
            if g.shape != o.shape:
                raise ValueError(f"gradcheck: out_grad {k} has shape {g.shape}, "
                                 f"but fn's output has shape {o.shape}")
    for leaf in leaves:  # fn may itself have called backward (higher-order checks)
        leaf.grad = None
    _backward(outs, grads)
    analytic = [_check_grad_type(i, leaf) if p.checked else None
                for i, (p, leaf) in enumerate(zip(prepared, leaves))]
    numerical = _numerical(fn, prepared, grads, eps)
    origin = "out_grad given" if out_grad is not None else f"seed={seed}"
    for i, (a, n) in enumerate(zip(analytic, numerical)):
        if a is not None and n is not None:
            _compare(i, a, n, atol, rtol, origin)
    return True


def _compare(i: int, analytic: np.ndarray, numerical: np.ndarray, atol: float, rtol: float,
             origin: str) -> None:
    allowed = atol + rtol * np.abs(numerical)
    excess = np.abs(analytic - numerical) - allowed
    excess = np.where(np.isfinite(analytic), excess, np.inf)
    bad = excess > 0
    if not bad.any():
        return
    j = int(np.argmax(excess))
    index = np.unravel_index(j, analytic.shape) if analytic.ndim else ()
    a, n = float(analytic.flat[j]), float(numerical.flat[j])
    raise AssertionError(
        f"gradcheck failed for input {i} (shape {analytic.shape}) at flat index {j}, "
        f"index {tuple(int(k) for k in index)}: backward gives {a!r}, central differences "
        f"give {n!r} (|difference| {abs(a - n):.3g} > atol + rtol*|numerical| = "
        f"{allowed.flat[j]:.3g}); {int(bad.sum())} of {bad.size} elements differ "
        f"(upstream gradient: {origin})"
    )
