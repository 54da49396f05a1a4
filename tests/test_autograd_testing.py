"""needle.testing itself: gradcheck must catch wrong gradients, the strategies must
draw what they promise, and the module must import without hypothesis."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
import warnings

import needle as ndl
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from needle.testing import gradcheck, numerical_gradient
from needle.testing import strategies as nst


class _HalfSquare(ndl.TensorOp):
    """x² with a gradient that forgets the factor 2."""

    def compute(self, a):
        return self.backend.multiply(a, a)

    def gradient(self, out_grad, node):
        return out_grad * node.inputs[0]


class _IgnoresUpstream(ndl.TensorOp):
    """2x whose gradient is the constant 2: right only when out_grad is ones."""

    def compute(self, a):
        return self.backend.multiply(a, 2.0)

    def gradient(self, out_grad, node):
        b = self.backend
        return ndl.Tensor.make_const(b.full(out_grad.shape, 2.0, out_grad.dtype),
                                     device=out_grad.device)


class _WrongSecond(ndl.TensorOp):
    """a * b with b's gradient off by a sign."""

    def compute(self, a, b):
        return self.backend.multiply(a, b)

    def gradient(self, out_grad, node):
        a, b = node.inputs
        return out_grad * b, -(out_grad * a)


class _NoSumBack(ndl.TensorOp):
    """Broadcasting add that forgets to sum the gradient back to b's shape."""

    def compute(self, a, b):
        return self.backend.add(a, b)

    def gradient(self, out_grad, node):
        return out_grad, out_grad


class _Float32Grad(ndl.TensorOp):
    def compute(self, a):
        return self.backend.multiply(a, 3.0)

    def gradient(self, out_grad, node):
        return (out_grad * 3.0).astype("float32")


def _x(shape=(3, 4), seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def test_gradcheck_passes_a_correct_gradient(device):
    a = ndl.Tensor(_x((3, 4)), device=device, dtype="float64")
    b = ndl.Tensor(_x((4, 2), 1), device=device, dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # float64 inputs: no warning
        assert gradcheck(lambda u, v: (u @ v).tanh(), a, b) is True


def test_gradcheck_reports_input_index_and_both_values():
    x = _x((3, 4))
    with pytest.raises(AssertionError) as info:
        gradcheck(lambda a: _HalfSquare()(a), x, seed=7)
    msg = str(info.value)
    assert "input 0" in msg and "shape (3, 4)" in msg and "seed=7" in msg
    j = int(msg.split("flat index ")[1].split(",")[0])
    index = np.unravel_index(j, (3, 4))
    assert f"index {tuple(int(i) for i in index)}" in msg
    # the reported values are the analytic (g·x) and numerical (g·2x) ones
    g = np.random.default_rng(7).standard_normal((3, 4))
    assert repr(float(g.flat[j] * x.flat[j])) in msg
    backward, numerical = float(g.flat[j] * x.flat[j]), float(2 * g.flat[j] * x.flat[j])
    reported = float(msg.split("central differences give ")[1].split(" ")[0])
    assert reported == pytest.approx(numerical, rel=1e-6) and backward != pytest.approx(numerical)


def test_gradcheck_names_the_input_that_is_wrong():
    with pytest.raises(AssertionError, match="input 1"):
        gradcheck(lambda a, b: _WrongSecond()(a, b), _x(), _x(seed=1), seed=0)


def test_random_upstream_gradient_catches_what_ones_would_miss():
    x = _x((2, 3))
    assert gradcheck(lambda a: _IgnoresUpstream()(a), x, out_grad=np.ones((2, 3)))
    with pytest.raises(AssertionError, match="differ"):
        gradcheck(lambda a: _IgnoresUpstream()(a), x, seed=3)


def test_misshaped_and_mistyped_gradients_stop_backward_naming_the_op():
    with pytest.raises(ndl.NeedleError, match=r"_NoSumBack.gradient returned a gradient of "
                                              r"shape \(3, 4\) .* input 1, which has shape \(4,\)"):
        gradcheck(lambda a, b: _NoSumBack()(a, b), _x((3, 4)), _x((4,)))
    with pytest.raises(ndl.NeedleError, match=r"_Float32Grad.gradient .* dtype float32 for "
                                              r"input 0, .* dtype float64"):
        gradcheck(lambda a: _Float32Grad()(a), _x((2, 2)))


def test_gradcheck_warns_on_float32_and_checks_in_float64(device):
    x = ndl.Tensor(_x((2, 3)), device=device, dtype="float32")
    with pytest.warns(UserWarning, match="input 0 is float32"):
        assert gradcheck(lambda a: a.exp().sum(), x)


def test_gradcheck_rejects_outputs_it_cannot_trust():
    with pytest.raises(AssertionError, match="not finite"), np.errstate(invalid="ignore"):
        gradcheck(lambda a: a.log(), np.array([-1.0, 2.0]))
    with pytest.raises(AssertionError, match="float32 for float64 inputs"):
        gradcheck(lambda a: a.astype("float32"), _x((2,)))
    with pytest.raises(ValueError, match=r"out_grad 0 has shape \(2,\)"):
        gradcheck(lambda a: a * 2, _x((3,)), out_grad=np.ones(2))
    with pytest.raises(ValueError, match="no input"):
        gradcheck(lambda i: i * 2, np.arange(3))


def test_gradcheck_handles_tuple_outputs_constants_and_integer_inputs(device):
    x = ndl.Tensor(_x((3, 2)), device=device, dtype="float64")
    assert gradcheck(lambda a: ndl.split(a, 0), x)
    frozen = ndl.Tensor(_x((3, 2), 2), device=device, dtype="float64", requires_grad=False)
    assert gradcheck(lambda a, c: a * c, x, frozen)
    idx = np.array([2, 0, 2])
    assert gradcheck(lambda a, i: a[i], x, idx)


def test_gradcheck_is_reproducible_with_a_seed():
    messages = []
    for _ in range(2):
        with pytest.raises(AssertionError) as info:
            gradcheck(lambda a: _HalfSquare()(a), _x(), seed=11)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_numerical_gradient_matches_calculus():
    x = _x((2, 3))
    (g,) = numerical_gradient(lambda a: (a * a).sum(), x)
    np.testing.assert_allclose(g, 2 * x, rtol=1e-7, atol=1e-8)
    up = _x((2, 3), 5)
    (g,) = numerical_gradient(lambda a: a.exp(), x, out_grad=up)
    np.testing.assert_allclose(g, up * np.exp(x), rtol=1e-7, atol=1e-8)


# -- strategies ---------------------------------------------------------------------------

@given(nst.shapes(min_dims=2, max_dims=4, min_side=2, max_side=3))
def test_shapes_respect_bounds(shape):
    assert 2 <= len(shape) <= 4 and all(2 <= s <= 3 for s in shape)


@given(nst.broadcastable_shapes(max_dims=4))
def test_broadcastable_shapes_broadcast(pair):
    a, b = pair
    np.broadcast_shapes(a, b)  # raises if they do not


@given(nst.shapes(min_dims=0, max_dims=4).flatmap(lambda s: st.tuples(st.just(s), nst.axes(s))))
def test_axes_are_valid_for_the_shape(case):
    shape, axes = case
    assert np.sum(np.zeros(shape), axis=axes).ndim <= len(shape)  # NumPy accepts them
    if isinstance(axes, tuple):
        assert len({a % len(shape) for a in axes}) == len(axes)


@given(st.data())
def test_arrays_control_magnitude_and_ties(data):
    shape = data.draw(nst.shapes())
    a = data.draw(nst.arrays(shape, np.float32, min_value=-3, max_value=2, min_magnitude=0.5))
    assert a.shape == shape and a.dtype == np.float32
    assert np.all(np.isfinite(a)) and np.all(np.abs(a) >= 0.5)
    assert a.min() >= -3 and a.max() <= 2
    d = np.sort(data.draw(nst.arrays(shape, min_value=-1, max_value=1, distinct=True)), axis=None)
    assert d.min() >= -1 and d.max() <= 1
    assert np.all(np.diff(d) >= 0.5 * 2 / d.size - 1e-12)  # at least half a step apart


@given(data=st.data())
def test_tensors_live_on_the_device(device, data):
    t = data.draw(nst.tensors(nst.shapes(), device=device, min_value=0, max_value=1))
    assert t.device == device and t.dtype == np.float64 and t.requires_grad
    assert np.all((t.numpy() >= 0) & (t.numpy() <= 1))


def test_strategy_arguments_are_checked():
    with pytest.raises(ValueError, match="magnitude"):
        nst.arrays((2,), min_value=-1, max_value=1, min_magnitude=2)
    with pytest.raises(ValueError, match="min_value"):
        nst.arrays((2,), min_value=1, max_value=0)


def test_needle_testing_imports_without_hypothesis():
    code = ("import sys; sys.modules['hypothesis'] = None\n"
            "import needle.testing as t; assert callable(t.gradcheck)\n"
            "try:\n    t.strategies\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'needle-core[testing]'" in out.stdout


@pytest.mark.parametrize("module", ["needle.testing", "needle.testing.strategies"])
def test_documented_examples_run(module):
    """The first example of each module docstring is real code: run it and its test."""
    block = importlib.import_module(module).__doc__.split("::\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if line.strip() and not line.startswith("    "):
            break
        lines.append(line)
    namespace: dict = {}
    exec(textwrap.dedent("\n".join(lines)), namespace)  # noqa: S102 - our own docstring
    tests = [f for name, f in namespace.items() if name.startswith("test_")]
    assert tests
    for test in tests:
        test()
