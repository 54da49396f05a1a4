"""Every usable backend computes what the cpu backend computes: forward values and
gradients of every op, in float64 and float32. With cpu alone, the tests skip visibly."""

from __future__ import annotations

import needle as ndl
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from needle.testing import assert_backends_agree
from needle.testing import strategies as nst

OTHERS = [info.name for info in ndl.backends() if info.usable and info.name != "cpu"]
BACKENDS = OTHERS or [pytest.param("none", marks=pytest.mark.skip(
    reason="only cpu is usable here: cross-backend agreement needs a second usable backend"))]

IDX = np.array([2, 0, 2])

# name -> (function of tensors, input shapes, "pos" for positive inputs else signed)
CASES = {
    "add": (lambda a, b: a + b, [(2, 3, 4), (3, 1)], ""),
    "multiply": (lambda a, b: a * b, [(2, 3, 4), (4,)], ""),
    "divide": (lambda a, b: a / b, [(2, 3), (2, 3)], "pos"),
    "power": (lambda a, b: a ** b, [(2, 3), (1, 3)], "pos"),
    "scalar ops": (lambda a: ((a + 1.5) * -2.0 / 3.0) ** 2, [(3, 4)], ""),
    "power_scalar": (lambda a: ndl.power_scalar(a, 0.5), [(3, 4)], "pos"),
    "exp-log-sqrt": (lambda a: a.exp() + a.log() + ndl.sqrt(a), [(3, 4)], "pos"),
    "relu-tanh-sigmoid": (lambda a: a.relu() * a.tanh() + ndl.sigmoid(a), [(3, 4)], ""),
    "transpose-permute": (lambda a: a.transpose().permute((2, 0, 1)) * 1.0, [(2, 3, 4)], ""),
    "reshape-broadcast": (lambda a: a.reshape((3, 1, 2)).broadcast_to((3, 4, 2)) * 1.0,
                          [(2, 3)], ""),
    "summation": (lambda a: a.sum((0, 2), keepdims=True) + a.sum(), [(2, 3, 4)], ""),
    "max": (lambda a: ndl.max(a, (1,)) + ndl.max(a), [(2, 5, 3)], ""),
    "matmul": (lambda a, b: a @ b, [(2, 1, 3, 4), (5, 4, 2)], ""),
    "logsumexp": (lambda a: ndl.logsumexp(a * 100.0, (1,)), [(3, 5)], ""),
    "logsoftmax": (lambda a: ndl.logsoftmax(a * 100.0), [(3, 5)], ""),
    "stack-split": (lambda a, b: ndl.stack(list(ndl.split(ndl.stack([a, b], 1), 2)), 0) * 1.0,
                    [(2, 3), (2, 3)], ""),
    "flip-pad": (lambda a: ndl.pad(ndl.flip(a, (0, 2)), ((0, 0), (1, 2), (2, 0))) * 1.0,
                 [(2, 3, 4)], ""),
    "dilate-undilate": (lambda a: ndl.undilate(ndl.dilate(a, (0, 1), 2) * 2.0, (1,), 1) * 1.0,
                        [(2, 3)], ""),
    "conv": (lambda x, w: ndl.conv(x, w, stride=2, padding=1), [(2, 7, 6, 3), (3, 3, 3, 4)], ""),
    "conv-options": (lambda x, w, b: ndl.conv(x, w, (2, 1), (1, 0), (1, 2), bias=b),
                     [(2, 7, 6, 3), (3, 2, 3, 4), (4,)], ""),
    "pooling": (lambda a: ndl.max_pool2d(a, (3, 1), 1, (1, 0)) + ndl.avg_pool2d(a, 3, 1, 1),
                [(2, 3, 5, 6)], ""),
    "getitem": (lambda a: a[1:, ::-2] * a[:, IDX].sum() + a[-1, 0], [(3, 4)], ""),
    "mask-index": (lambda a: a[a > 0].sum() + a[a.numpy() < 0.5] * 2.0, [(3, 4)], ""),
    "sin-cos-abs-clamp": (lambda a: a.sin() * a.cos() + abs(a) + a.clamp(-0.5, 0.5), [(3, 4)],
                          ""),
    "maximum-where": (lambda a, b: ndl.maximum(a, b) + ndl.where(a > b, a * 2.0, b), [(2, 3),
                                                                                      (3,)], ""),
    "statistics": (lambda a: a.mean(1) + a.var(dim=1) + a.std(axis=1) + a.min(1) + a.prod(1),
                   [(3, 4)], "pos"),
    "softmax-cat-views": (lambda a: ndl.cat([a.softmax(dim=0), a], dim=1).unsqueeze(0)
                          .flatten(0, 1).view(3, -1) * 1.0, [(3, 4)], ""),
    "causal attention": (lambda q, k, v: ndl.nn.MultiHeadAttention(causal=True)(q, k, v)[0],
                         [(2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 3)], ""),
}


def _run(fn, arrays, up, device, dtype):
    ts = [ndl.Tensor(a, device=device, dtype=dtype) for a in arrays]
    out = fn(*ts)
    out.backward(ndl.Tensor(up, device=device, dtype=dtype, requires_grad=False))
    return [out.numpy()] + [t.grad.numpy() for t in ts]


def _agree(other, case, dtype, rtol):
    fn, shapes, kind = CASES[case]
    rng = np.random.default_rng(0)
    arrays = [rng.uniform(0.5, 2.0, s) if kind == "pos" else rng.standard_normal(s)
              for s in shapes]
    out_shape = fn(*[ndl.Tensor(a, dtype="float64") for a in arrays]).shape
    up = rng.standard_normal(out_shape)
    want = _run(fn, arrays, up, ndl.cpu(), dtype)
    got = _run(fn, arrays, up, ndl.device(other), dtype)
    for what, g, w in zip(["forward"] + [f"grad {i}" for i in range(len(arrays))], got, want):
        assert g.dtype == w.dtype, f"{case} {what}: dtype {g.dtype} on {other}, {w.dtype} on cpu"
        assert np.all(np.isfinite(w)), f"{case} {what}: the case itself is not finite"
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol, err_msg=f"{case} {what} on {other}")


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-9), ("float32", 1e-4)])
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("other", BACKENDS)
def test_backend_agrees_with_cpu(other, case, dtype, rtol):
    _agree(other, case, dtype, rtol)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_case_runs_on_cpu_deterministically(dtype):
    """Keeps the table valid while cpu is alone: each case runs, is finite, and repeats exactly."""
    for case in CASES:
        _agree("cpu", case, dtype, 0.0)


@given(nst.broadcastable_shapes(max_dims=3), st.data())
def test_broadcasting_ops_agree_on_every_backend(shapes, data):
    """needle.testing.assert_backends_agree: the same check users run on their own ops."""
    a, b = (data.draw(nst.arrays(s, min_value=0.5, max_value=2.0)) for s in shapes)
    ran = assert_backends_agree(lambda x, y: (x * y + x / y).exp().log() ** 2, a, b)
    assert ran[0] == "cpu" and len(ran) == 1 + len(OTHERS)
