"""Cross-backend agreement: one function, its values and its gradients, on every backend.

``assert_backends_agree(fn, *arrays)`` runs ``fn`` forward and backward on the CPU
(the reference) and on every other usable backend, with the same inputs and the same
random upstream gradient, and compares the outputs and the input gradients within
float tolerances. A user's test of their own op then covers every backend installed
where it runs, without naming one::

    import numpy as np
    import needle as ndl
    from needle.testing import assert_backends_agree

    def test_softplus_agrees_everywhere():
        x = np.linspace(-3, 3, 12).reshape(3, 4)
        assert_backends_agree(lambda t: ndl.log(ndl.exp(t) + 1), x)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..autograd import Tensor, TensorTuple
from ..device import Device, backends
from ..device import device as _device

__all__ = ["assert_backends_agree", "usable_devices"]

# (rtol, atol) by dtype: float64 leaves room for reductions summed in another order only.
_TOLERANCES = {
    np.dtype("float64"): (1e-7, 1e-9),
    np.dtype("float32"): (1e-4, 1e-5),
    np.dtype("float16"): (1e-2, 1e-3),
}


def usable_devices() -> list[Device]:
    """Every installed backend that is usable here, ``cpu`` first."""
    names = sorted((info.name for info in backends() if info.usable),
                   key=lambda name: (name != "cpu", name))
    return [_device(name) for name in names]


def _run(fn: Callable[..., Any], arrays: list[np.ndarray], grads_in: list[bool],
         up_seed: int, device: Device) -> list[np.ndarray]:
    """fn's outputs, then the gradient of each input that takes one, as NumPy arrays."""
    inputs = [Tensor(a, device=device, dtype=a.dtype, requires_grad=g)
              for a, g in zip(arrays, grads_in)]
    out = fn(*inputs)
    if isinstance(out, TensorTuple):
        outs = list(out.tuple())
    elif isinstance(out, Tensor):
        outs = [out]
    else:
        raise TypeError(f"assert_backends_agree: fn must return a Tensor or TensorTuple, "
                        f"not {type(out).__name__}")
    results = [o.numpy() for o in outs]
    if not any(grads_in) or not any(o.requires_grad for o in outs):
        return results
    rng = np.random.default_rng(up_seed)  # the same upstream gradient on every backend
    total: Tensor | None = None
    for o in outs:
        if not o.requires_grad:
            continue
        up = Tensor(rng.standard_normal(o.shape).astype(o.dtype), device=device,
                    dtype=o.dtype, requires_grad=False)
        term = (o * up).sum()
        total = term if total is None else total + term
    assert total is not None
    total.backward()
    for t, g in zip(inputs, grads_in):
        if g:
            grad = t.grad
            results.append(np.zeros(t.shape, t.dtype) if grad is None else grad.numpy())
    return results


def _compare(name: str, got: np.ndarray, want: np.ndarray, rtol: float | None,
             atol: float | None) -> str | None:
    """None when ``got`` matches the CPU's ``want``, else what differs."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or got.dtype != want.dtype:
        return (f"{name}: shape {got.shape} dtype {got.dtype}, "
                f"the cpu's is shape {want.shape} dtype {want.dtype}")
    if not np.issubdtype(want.dtype, np.inexact):
        rtol_, atol_ = 0.0, 0.0
    else:
        default = _TOLERANCES.get(want.dtype, (1e-4, 1e-5))
        rtol_ = default[0] if rtol is None else rtol
        atol_ = default[1] if atol is None else atol
    g64, w64 = got.astype(np.float64), want.astype(np.float64)
    close = np.isclose(g64, w64, rtol=rtol_, atol=atol_, equal_nan=True)
    if close.all():
        return None
    excess = np.where(close, -np.inf, np.abs(g64 - w64) - rtol_ * np.abs(w64))
    j = int(np.argmax(excess))
    index = tuple(int(k) for k in np.unravel_index(j, want.shape)) if want.ndim else ()
    return (f"{name}: {int((~close).sum())} of {close.size} elements differ; worst at index "
            f"{index}: {g64.flat[j]!r} against the cpu's {w64.flat[j]!r} "
            f"(rtol {rtol_:g}, atol {atol_:g})")


def assert_backends_agree(fn: Callable[..., Any], *arrays: Any, dtype: Any = None,
                          rtol: float | None = None, atol: float | None = None,
                          seed: int = 0,
                          devices: Sequence[Device | str] | None = None) -> list[str]:
    """Check that ``fn`` and its gradient give the CPU's numbers on every usable backend.

    Args:
        fn: a function of Tensors returning a Tensor or a TensorTuple.
        *arrays: its inputs (NumPy arrays, numbers or Tensors). Floating inputs get a
            gradient; integer ones (indices) are passed through as constants.
        dtype: cast the floating inputs to this dtype first (default: their own).
        rtol: relative tolerance (default by dtype: float64 1e-7, float32 1e-4).
        atol: absolute tolerance (default by dtype: float64 1e-9, float32 1e-5).
        seed: seeds the random upstream gradient, the same on every backend.
        devices: the backends to compare with the CPU (default: every usable one).

    Returns the names of the devices that ran, ``"cpu"`` first; with the CPU alone
    it still runs ``fn`` there, so a broken ``fn`` fails everywhere. Raises
    AssertionError listing every output or gradient that differs, by backend.
    """
    if not arrays:
        raise ValueError("assert_backends_agree needs at least one input array")
    prepared = []
    for x in arrays:
        a = np.array(x.numpy() if isinstance(x, Tensor) else x)
        if dtype is not None and np.issubdtype(a.dtype, np.floating):
            a = a.astype(dtype)
        prepared.append(a)
    grads_in = [bool(np.issubdtype(a.dtype, np.floating)) for a in prepared]
    others = ([_device(d) for d in devices] if devices is not None
              else usable_devices()[1:])
    others = [d for d in others if d.name != "cpu"]
    want = _run(fn, prepared, grads_in, seed, _device("cpu"))
    labels = [f"output {k}" for k in range(len(want) - sum(grads_in))]
    labels += [f"gradient of input {i}" for i, g in enumerate(grads_in) if g]
    problems = []
    for dev in others:
        try:
            got = _run(fn, prepared, grads_in, seed, dev)
        except Exception as exc:  # report it beside the other backends' results
            problems.append(f"{dev.name}: fn raised {type(exc).__name__}: {exc}")
            continue
        if len(got) != len(want):
            problems.append(f"{dev.name}: {len(got)} outputs and gradients, the cpu gave "
                            f"{len(want)}")
            continue
        for label, g, w in zip(labels, got, want):
            problem = _compare(label, g, w, rtol, atol)
            if problem:
                problems.append(f"{dev.name}: {problem}")
    if problems:
        raise AssertionError("backends disagree with the cpu:\n  " + "\n  ".join(problems))
    return ["cpu", *(d.name for d in others)]
