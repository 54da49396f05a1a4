"""The Tensor-level entry points that layers are written in: random constants, dropout,
functional batch norm with running statistics, embedding lookup (its gradient a
scatter-add), one-hot rows and ``Tensor.set_`` (the one in-place move)."""

from __future__ import annotations

import needle as ndl
import numpy as np
import pytest
from needle import ops
from needle.testing import gradcheck


def test_random_constants_have_their_shape_dtype_and_range(device):
    u = ndl.rand((3, 4), device=device)
    z = ndl.randn(5, dtype="float64", device=device)
    b = ndl.randb((2, 50), 0.3, device=device)
    assert (u.shape, u.dtype, u.device) == ((3, 4), np.float32, device)
    assert (z.shape, z.dtype) == ((5,), np.float64)
    assert 0.0 <= u.numpy().min() and u.numpy().max() < 1.0
    assert set(np.unique(b.numpy())) <= {0.0, 1.0} and not b.requires_grad
    assert ndl.rand(2, requires_grad=True, device=device).requires_grad
    with pytest.raises(ndl.NeedleError, match=r"randb: p is a probability in \[0, 1\], got 1.5"):
        ndl.randb((2,), 1.5, device=device)


def test_random_constants_are_the_courses_numpy_draws_on_cpu():
    np.random.seed(3)
    want_u, want_b = np.random.rand(2, 3), np.random.rand(4) <= 0.25
    np.random.seed(3)
    np.testing.assert_array_equal(ndl.rand((2, 3), dtype="float64").numpy(), want_u)
    np.testing.assert_array_equal(ndl.randb(4, 0.25).numpy(), want_b.astype(np.float32))


def test_dropout_scales_the_courses_mask_and_is_identity_out_of_training():
    x = np.random.default_rng(0).standard_normal((6, 7)).astype(np.float32)
    np.random.seed(11)
    keep = np.float32(1 / 0.6)
    want = x * ((np.random.rand(6, 7) <= 0.6).astype(np.float32) * keep)
    np.random.seed(11)
    np.testing.assert_array_equal(ops.dropout(ndl.Tensor(x), 0.4).numpy(), want)
    t = ndl.Tensor(x)
    assert ops.dropout(t, 0.4, training=False) is t and ops.dropout(t, 0.0) is t
    assert not ops.dropout(t, 1.0).numpy().any()
    with pytest.raises(ndl.NeedleError, match=r"dropout: p is a probability"):
        ops.dropout(t, -0.1)


def test_dropout_gradient_is_the_mask(device):
    x = ndl.Tensor(np.ones((4, 30)), device=device, dtype="float64")
    y = ops.dropout(x, 0.5)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.numpy())  # x is ones: y is the mask


def _bn_reference(x, w, b, eps):
    mean, var = x.mean(0), x.var(0)
    return w * (x - mean) / np.sqrt(var + eps) + b, mean, var


def test_batch_norm_trains_on_the_batch_and_updates_the_running_statistics(device):
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((8, 3)), rng.standard_normal(3), rng.standard_normal(3)
    mean = ndl.Tensor(np.zeros(3), device=device, dtype="float64")
    var = ndl.Tensor(np.ones(3), device=device, dtype="float64")
    args = [ndl.Tensor(a, device=device, dtype="float64") for a in (x, w, b)]
    y = ops.batch_norm(*args, mean, var, momentum=0.25, eps=1e-3)
    want, m, v = _bn_reference(x, w, b, 1e-3)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mean.numpy(), 0.25 * m, rtol=1e-12)
    np.testing.assert_allclose(var.numpy(), 0.75 + 0.25 * v, rtol=1e-12)
    y_eval = ops.batch_norm(*args, mean, var, training=False, eps=1e-3)
    np.testing.assert_allclose(y_eval.numpy(), w * (x - mean.numpy()) / np.sqrt(var.numpy() + 1e-3)
                               + b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mean.numpy(), 0.25 * m, rtol=1e-12)  # eval leaves them alone


def test_batch_norm_in_eval_is_differentiable(device):
    rng = np.random.default_rng(2)
    mean = ndl.Tensor(rng.standard_normal(3), device=device, dtype="float64")
    var = ndl.Tensor(rng.uniform(0.5, 2.0, 3), device=device, dtype="float64")
    x, w, b = (ndl.Tensor(rng.standard_normal(s), device=device, dtype="float64")
               for s in ((5, 3), (3,), (3,)))
    assert gradcheck(lambda x, w, b: ops.batch_norm(x, w, b, mean, var, training=False),
                     x, w, b, seed=0)


def test_batch_norm_names_bad_running_statistics(device):
    x, w = ndl.Tensor(np.ones((4, 3)), device=device), ndl.Tensor(np.ones(3), device=device)
    with pytest.raises(ndl.NeedleError, match=r"running_var must have shape \(3,\).*got \(4,\)"):
        ops.batch_norm(x, w, w, w, ndl.Tensor(np.ones(4), device=device))
    with pytest.raises(ndl.NeedleError, match="out of training it needs running_mean"):
        ops.batch_norm(x, w, w, training=False)


def test_embedding_picks_rows_and_scatters_the_gradient_back(device):
    weight = ndl.Tensor(np.arange(12.0).reshape(4, 3), device=device, dtype="float64")
    ids = np.array([[1, 3], [1, 1]])
    out = ops.embedding(ids, weight)
    np.testing.assert_array_equal(out.numpy(), weight.numpy()[ids])
    g = np.random.default_rng(3).standard_normal((2, 2, 3))
    out.backward(ndl.Tensor(g, device=device, dtype="float64"))
    want = np.zeros((4, 3))
    np.add.at(want, ids, g)  # repeats summed
    np.testing.assert_allclose(weight.grad.numpy(), want, rtol=1e-12)


def test_embedding_gradient_is_a_scatter_add_not_a_one_hot_product(device):
    weight = ndl.Tensor(np.ones((1000, 2)), device=device, dtype="float64")
    out = ops.embedding([5, 5, 7], weight)
    lookup = out.inputs[0]  # under the reshape: the row lookup
    assert isinstance(lookup.op, ops.GetItem) and lookup.inputs == (weight,)
    (grad,) = lookup.op.gradient_as_tuple(
        ndl.Tensor(np.ones((3, 2)), device=device, dtype="float64"), lookup)
    assert isinstance(grad.op, ops.ScatterAdd)


def test_embedding_and_one_hot_check_their_ids(device):
    weight = ndl.Tensor(np.ones((4, 2)), device=device)
    with pytest.raises(ndl.NeedleError, match=r"embedding: class ids must lie in \[0, 4\)"):
        ops.embedding([0, 4], weight)
    with pytest.raises(ndl.NeedleError, match="whole numbers"):
        ops.embedding(np.array([0.5]), weight)
    with pytest.raises(ndl.NeedleError, match=r"weight must be a \(num_embeddings, dim\) matrix"):
        ops.embedding([0], ndl.Tensor(np.ones(4), device=device))
    rows = ops.one_hot(ndl.Tensor([2.0, 0.0], device=device), 3, device=device)
    np.testing.assert_array_equal(rows.numpy(), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ndl.NeedleError, match=r"one_hot: class ids must lie in \[0, 3\)"):
        ops.one_hot([-1], 3, device=device)


def test_set_moves_a_tensor_in_place_and_checks_shape_and_dtype(second_cpu):
    w = ndl.Tensor([1.0, 2.0])
    moved = w.to(second_cpu)
    assert w.set_(moved) is w
    assert w.device == second_cpu and w.numpy().tolist() == [1.0, 2.0]
    assert np.shares_memory(w.numpy(), moved.numpy())  # shared, as .data = shares
    with pytest.raises(ndl.NeedleError, match=r"set_: source of shape \(3,\).*\(2,\)"):
        w.set_(ndl.Tensor([1.0, 2.0, 3.0]))
    with pytest.raises(ndl.NeedleError, match="dtype float64 does not match"):
        w.set_(ndl.Tensor([1.0, 2.0], dtype="float64"))
    with pytest.raises(TypeError, match="takes a Tensor, not ndarray"):
        w.set_(np.ones(2))


def test_as_tensor_shares_a_native_array_and_copies_otherwise(device):
    a = np.arange(6.0).reshape(2, 3)
    t = ndl.as_tensor(a, device=device)
    assert (t.shape, t.dtype, t.requires_grad) == ((2, 3), np.float64, False)
    np.testing.assert_array_equal(t.numpy(), a)
    converted = ndl.as_tensor(a, dtype="float32", device=device)
    assert converted.dtype == np.float32 and not np.shares_memory(converted.numpy(), a)
    assert ndl.as_tensor([1, 2], device=device).dtype == np.float32  # lists: float32, as Tensor()


def test_as_tensor_shares_memory_on_cpu():
    a = np.zeros(3, dtype=np.float32)
    t = ndl.as_tensor(a, device="cpu")
    a[0] = 5.0
    assert t.numpy()[0] == 5.0
