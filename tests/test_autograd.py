"""Autograd semantics: broadcasting, reuse, accumulation, higher order, no_grad, depth."""

from __future__ import annotations

import sys

import needle as ndl
import numpy as np
import pytest
from needle.testing import gradcheck


def t64(a, device, requires_grad=True):
    return ndl.Tensor(a, device=device, dtype="float64", requires_grad=requires_grad)


def test_broadcast_gradients_are_summed_back_to_input_shapes(device):
    a = t64(np.arange(3.0).reshape(3, 1), device)
    b = t64(np.arange(4.0), device)
    c = t64(np.array(2.0), device)
    ((a + b) * c).backward(t64(np.ones((3, 4)), device, False))
    assert a.grad.shape == (3, 1) and b.grad.shape == (4,) and c.grad.shape == ()
    np.testing.assert_allclose(a.grad.numpy(), np.full((3, 1), 8.0))
    np.testing.assert_allclose(b.grad.numpy(), np.full(4, 6.0))
    np.testing.assert_allclose(c.grad.numpy(), np.sum(np.arange(3.0)[:, None] + np.arange(4.0)))


def test_a_tensor_used_several_times_accumulates_its_gradient(device):
    x = t64(np.array([1.0, -2.0, 3.0]), device)
    y = x * x + x  # x feeds three edges
    z = (y + y).sum()  # and y two
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (2 * x.numpy() + 1))
    assert gradcheck(lambda a: (a * a + a) * (a + 1), x)


def test_grad_accumulates_across_backward_calls_pytorch_rule(device):
    """Documented rule (needle.autograd): .grad accumulates, as in PyTorch; reset it yourself."""
    x = t64(np.array([1.0, 2.0]), device)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [6.0, 6.0])
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_only_leaves_keep_grad_and_gradients_carry_no_graph(device):
    x = t64(np.array([1.0, 2.0]), device)
    y = x.exp()
    y.sum().backward()
    assert y.grad is None
    assert x.grad.op is None and x.grad.inputs == () and not x.grad.requires_grad
    np.testing.assert_allclose(x.grad.numpy(), np.exp([1.0, 2.0]))


def test_constants_get_no_gradient(device):
    x = t64(np.array([1.0, 2.0]), device)
    c = t64(np.array([5.0, 7.0]), device, requires_grad=False)
    (x * c).sum().backward()
    assert c.grad is None
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 7.0])


def test_second_order_gradient_with_create_graph(device):
    x = t64(np.array([0.5, -1.0, 2.0]), device)
    (x ** 3).sum().backward(create_graph=True)
    g = x.grad
    assert g.requires_grad and g.op is not None  # the gradient is itself differentiable
    np.testing.assert_allclose(g.numpy(), 3 * x.numpy() ** 2)
    x.grad = None
    g.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * x.numpy())


def _grad_of(f):
    """x -> d(sum f(x))/dx as a differentiable function (for checking second derivatives)."""
    def grad(x):
        f(x).sum().backward(create_graph=True)
        g, x.grad = x.grad, None
        return g
    return grad


@pytest.mark.parametrize("f", [
    lambda x: x.tanh() * x,
    lambda x: ndl.logsumexp(x.reshape((2, 3)), (1,)),
    lambda x: ndl.sigmoid(x) / (x * x + 1),
    lambda x: ndl.logsoftmax(x.reshape((3, 2))),
    lambda x: (x.reshape((2, 3)) @ x.reshape((3, 2))).exp(),
    lambda x: ndl.ops.softmax_cross_entropy(x.reshape((3, 2)), ndl.Tensor(
        [1, 0, 1], device=x.device, dtype="int64", requires_grad=False)),
], ids=["tanh", "logsumexp", "sigmoid-divide", "logsoftmax", "matmul-exp", "softmax_loss"])
def test_second_order_gradients_pass_gradcheck(device, f):
    x = t64(np.random.default_rng(0).uniform(-1, 1, 6), device)
    assert gradcheck(_grad_of(f), x)


_RNG = np.random.default_rng(7)
_W, _B = _RNG.uniform(-1, 1, (4, 3)), _RNG.uniform(-1, 1, (1, 3))
_LABELS = np.array([2, 0, 1, 2, 1])


@pytest.mark.parametrize("f", [
    lambda x, d: ndl.ops.linear(x, t64(_W, d), t64(_B, d)) * x[:, :3],
    lambda x, d: ndl.ops.linear(x.reshape((1, 5, 4)), t64(_W, d)).exp(),
    lambda x, d: ndl.ops.batch_norm(x, t64(np.arange(1.0, 5.0), d), t64(np.ones(4), d)) ** 2,
    lambda x, d: ndl.ops.softmax_cross_entropy(x, ndl.Tensor(_LABELS, device=d, dtype="int64",
                                                              requires_grad=False)) * 3,
    lambda x, d: ndl.relu(x) * x,
    lambda x, d: (x + x * 2) * (x - 1),
    lambda x, d: (x + 1.5) * 0.5 * x,
], ids=["linear", "linear-3d", "batch_norm", "softmax_loss", "relu", "add-mul", "scalars"])
def test_array_and_tensor_worlds_give_the_same_gradients(device, f):
    """backward() runs each op's one ``backward`` on arrays (fused kernels included),
    backward(create_graph=True) on Tensor ops (their reference decompositions): the
    same numbers."""
    x = t64(_RNG.uniform(-1, 1, (5, 4)), device)
    f(x, device).sum().backward()
    fast, x.grad = x.grad.numpy(), None
    f(x, device).sum().backward(create_graph=True)
    assert x.grad.op is not None  # really the recorded (Tensor-op) path
    np.testing.assert_allclose(fast, x.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_no_grad_builds_no_graph(device):
    x = t64(np.array([1.0, 2.0]), device)
    with ndl.no_grad():
        y = (x * 2).exp()
        with ndl.enable_grad():
            z = x * 2
    assert y.op is None and y.inputs == () and not y.requires_grad
    assert z.op is not None and z.requires_grad
    assert ndl.is_grad_enabled()

    @ndl.no_grad()
    def step(t):
        return t * 3

    w = step(x)
    assert w.op is None and not w.requires_grad
    with pytest.raises(ndl.NeedleError, match="does not require grad"):
        y.sum().backward()


def test_no_grad_restores_state_after_an_exception():
    with pytest.raises(RuntimeError), ndl.no_grad():
        raise RuntimeError("boom")
    assert ndl.is_grad_enabled()


def test_ten_thousand_op_chain_backpropagates_without_recursion_error(device):
    limit = sys.getrecursionlimit()
    assert limit < 10_000  # the chain is deeper than Python's recursion limit
    x = t64(np.array([1.0, 2.0]), device)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 10_000] * 2, rtol=1e-9)
    del y  # freeing the chain must not recurse either


def test_detach_and_data_share_values_but_not_the_graph(device):
    x = t64(np.array([1.0, 2.0]), device)
    y = x * 2
    for d in (y.detach(), y.data):
        assert d.op is None and d.inputs == () and not d.requires_grad
        np.testing.assert_array_equal(d.numpy(), y.numpy())
    if device.name == "cpu":
        assert np.shares_memory(y.detach().cached_data, y.cached_data)


def test_backward_argument_checks(device):
    x = t64(np.ones((2, 3)), device)
    y = x * 2
    with pytest.raises(ndl.NeedleError, match=r"out_grad has shape \(3,\).*\(2, 3\)"):
        y.backward(t64(np.ones(3), device))
    y.sum().backward()  # single-element outputs default to ones
    np.testing.assert_allclose(x.grad.numpy(), np.full((2, 3), 2.0))


def test_backward_without_out_grad_seeds_ones_of_the_output_shape(device):
    """The course's Tensor.backward: y.backward() on a non-scalar y is y.sum().backward()."""
    w = t64(np.arange(6.0).reshape(2, 3), device)
    x = t64(np.ones((4, 2)), device)
    (x @ w).backward()
    np.testing.assert_allclose(w.grad.numpy(), np.full((2, 3), 4.0))
    np.testing.assert_allclose(x.grad.numpy(), np.tile(w.numpy().sum(1), (4, 1)))


class _Softplus(ndl.autograd.TensorOp):
    """A user's op written the built-in way: one ``backward`` for both worlds, and a
    broadcasting second input whose gradient the walk sums back."""

    broadcasts = True

    def compute(self, a, b):
        bk = self.backend
        return bk.log(bk.add(bk.exp(bk.add(a, b)), 1.0))

    def backward(self, xp, g, node):
        a, b = node.inputs
        s = xp.exp(xp.negative(xp.add(xp.value(a), xp.value(b))))
        d = xp.divide(g, xp.add(s, 1.0))
        return d, d


def test_a_users_backward_serves_both_worlds_and_broadcasts(device):
    a = t64(np.array([[0.5, -1.0, 2.0], [0.0, 1.0, -2.0]]), device)
    b = t64(np.array([0.25, 0.5, -0.5]), device)
    want = 1 / (1 + np.exp(-(a.numpy() + b.numpy())))
    _Softplus()(a, b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), want, rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), want.sum(0), rtol=1e-12)
    a.grad = b.grad = None
    _Softplus()(a, b).sum().backward(create_graph=True)
    assert b.grad.op is not None and b.grad.shape == (3,)
    np.testing.assert_allclose(b.grad.numpy(), want.sum(0), rtol=1e-12)
    # the course's API: gradient() gives each input's shape too
    out = _Softplus()(a, b)
    ga, gb = out.op.gradient_as_tuple(ndl.Tensor(np.ones((2, 3)), device=device), out)
    assert ga.shape == (2, 3) and gb.shape == (3,)


def test_a_subclass_gradient_wins_over_the_inherited_backward(device):
    class Doubled(ndl.ops.Exp):  # a user's override of a built-in op's derivative
        def gradient(self, out_grad, node):
            return out_grad * 2

    x = t64(np.array([1.0, 2.0]), device)
    Doubled()(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0])
