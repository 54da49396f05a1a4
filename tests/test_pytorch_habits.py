"""PyTorch habits give right answers (issue 14): indexing, comparisons, the everyday
Tensor API and NumPy operands, each compared with NumPy (values) and with a NumPy
reference or finite differences (gradients, in float64), on every usable backend."""

from __future__ import annotations

import needle as ndl
import numpy as np
import pytest
from conftest import t64
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as npst
from needle.testing import gradcheck
from needle.testing import strategies as nst

seeds = st.integers(0, 2**32 - 1)



def upstream(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


def backward_of(fn, x, g):
    """Value of fn(x) and d(sum(fn(x) * g))/dx, by needle."""
    out = fn(x)
    out.backward(ndl.Tensor(g, device=x.device, dtype=out.dtype))
    return out.numpy(), x.grad.numpy()


# -- 1. indexing ----------------------------------------------------------------------------

@given(shape=nst.shapes(min_dims=1, max_dims=3, max_side=4), lead=st.integers(1, 3),
       data=st.data(), seed=seeds, as_tensor=st.booleans())
def test_boolean_masks_select_and_scatter_their_gradient(device, shape, lead, data, seed,
                                                         as_tensor):
    lead = min(lead, len(shape))
    x = np.random.default_rng(seed).standard_normal(shape)
    mask = data.draw(npst.arrays(np.bool_, shape[:lead], elements=st.booleans()))
    xt = t64(x, device)
    index = ndl.Tensor(mask, device=device) if as_tensor else mask
    want = x[mask]
    g = upstream(want.shape, seed)
    got, grad = backward_of(lambda t: t[index], xt, g)
    np.testing.assert_array_equal(got, want)
    ref = np.zeros_like(x)
    ref[mask] = g
    np.testing.assert_allclose(grad, ref)


@given(shape=nst.shapes(min_dims=1, max_dims=3, max_side=4), data=st.data(), seed=seeds)
def test_integer_arrays_with_repeats_add_up_their_gradient(device, shape, data, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    idx = np.array(data.draw(st.lists(st.integers(-shape[0], shape[0] - 1), min_size=0,
                                      max_size=6)), dtype=np.int64)
    want = x[idx]
    g = upstream(want.shape, seed)
    got, grad = backward_of(lambda t: t[idx], t64(x, device), g)
    np.testing.assert_array_equal(got, want)
    ref = np.zeros_like(x)
    np.add.at(ref, idx, g)
    np.testing.assert_allclose(grad, ref)


INDEXES = [
    (1, slice(None, None, -1)), (-1,), (Ellipsis, 0), (None, slice(1, None)), (slice(None), None),
    (Ellipsis, None, slice(0, 2)), ([0, 0, -1], slice(1, 3)), (slice(None), [2, 0, 2]),
    ([0, 1], [1, 0]), (np.array([[0], [1]]), np.array([1, 2])), (-2, Ellipsis, [1, 1]),
]


@pytest.mark.parametrize("index", INDEXES, ids=repr)
def test_basic_and_mixed_indexes_match_numpy(device, index):
    x = np.arange(3 * 4 * 3, dtype=np.float64).reshape(3, 4, 3) / 7
    want = x[index]
    g = upstream(want.shape, 1)
    got, grad = backward_of(lambda t: t[index], t64(x, device), g)
    np.testing.assert_array_equal(got, want)
    ref = np.zeros_like(x)
    np.add.at(ref, index, g)
    np.testing.assert_allclose(grad, ref)


def test_the_filed_examples(device):
    x = ndl.Tensor([-1.0, 2.0, -3.0, 4.0], device=device)
    np.testing.assert_array_equal(x[x > 0].numpy(), [2, 4])
    np.testing.assert_array_equal(x[np.array([True, False, True, False])].numpy(), [-1, -3])
    m = ndl.Tensor(np.arange(12.0).reshape(3, 4), device=device)
    np.testing.assert_array_equal(m[m.sum(1) > 10].numpy(), np.arange(4.0, 12.0).reshape(2, 4))


@pytest.mark.parametrize("bad", [1.5, np.float64(1.0), [0.5], np.array([0.0, 1.0]), "a"],
                         ids=repr)
def test_float_and_other_indexes_are_index_errors(device, bad):
    x = ndl.Tensor([1.0, 2.0], device=device)
    with pytest.raises(IndexError):
        x[bad]


def test_out_of_range_indexes_are_index_errors_so_iteration_works(device):
    x = ndl.Tensor(np.arange(6.0).reshape(3, 2), device=device)
    for index in (3, -4, (0, 2), [0, 3], (slice(None), [2]), (0, 0, 0)):
        with pytest.raises(IndexError):
            x[index]
    with pytest.raises(IndexError, match="mask of shape"):
        x[np.array([True, False])]
    rows = list(x)
    assert len(rows) == 3 and all(isinstance(r, ndl.Tensor) for r in rows)
    np.testing.assert_array_equal(np.stack([r.numpy() for r in x]), x.numpy())
    with pytest.raises(TypeError, match="0-d"):
        iter(ndl.Tensor(1.0, device=device))
    with pytest.raises(TypeError, match="0-d"):
        len(ndl.Tensor(1.0, device=device))


# -- 2. comparisons -------------------------------------------------------------------------

COMPARISONS = [("==", np.equal), ("!=", np.not_equal), ("<", np.less), ("<=", np.less_equal),
               (">", np.greater), (">=", np.greater_equal)]


@pytest.mark.parametrize("op", COMPARISONS, ids=[c[0] for c in COMPARISONS])
@given(shapes=st.data())
def test_comparisons_are_element_wise_bool_tensors(device, shapes, op):
    symbol, ref = op
    sa, sb = shapes.draw(nst.broadcastable_shapes())
    values = st.sampled_from([-1.0, 0.0, 1.0, 2.0])
    a = shapes.draw(npst.arrays(np.float64, sa, elements=values))
    b = shapes.draw(npst.arrays(np.float64, sb, elements=values))
    ta, tb = t64(a, device), t64(b, device)
    fn = eval(f"lambda p, q: p {symbol} q")  # noqa: S307 - the six operator symbols above
    out = fn(ta, tb)
    assert isinstance(out, ndl.Tensor) and out.dtype == np.bool_ and not out.requires_grad
    np.testing.assert_array_equal(out.numpy(), ref(a, b))
    np.testing.assert_array_equal(fn(ta, 1.0).numpy(), ref(a, 1.0))
    np.testing.assert_array_equal(fn(ta, b).numpy(), ref(a, b))  # a NumPy operand


def test_logic_any_all_and_identity_hashing(device):
    x = ndl.Tensor([-1.0, 0.0, 2.0], device=device, requires_grad=True)
    pos, small = x > 0, x < 1
    np.testing.assert_array_equal((pos & small).numpy(), [False, False, False])
    np.testing.assert_array_equal((pos | small).numpy(), [True, True, True])
    np.testing.assert_array_equal((pos ^ small).numpy(), [True, True, True])
    np.testing.assert_array_equal((~pos).numpy(), [True, True, False])
    assert pos.any().item() is True and pos.all().item() is False
    np.testing.assert_array_equal(ndl.Tensor(np.eye(2), device=device).any(dim=1).numpy(),
                                  [True, True])
    assert not ndl.Tensor(np.zeros((0, 2)), device=device).any().item()
    assert ndl.Tensor(np.zeros((0, 2)), device=device).all().item()
    with pytest.raises(TypeError, match="bool tensors"):
        x & pos
    assert (x == None) is False and (x != None) is True  # noqa: E711 - the course's idiom
    assert {x: 1}[x] == 1 and len({x, x + 0}) == 2
    assert x != "a" and not (x == "a")


# -- 3. dtypes --------------------------------------------------------------------------------

def test_integer_and_bool_tensors_never_require_grad(device):
    i = ndl.Tensor(np.array([1, 2, 3]), device=device)
    assert i.dtype == np.int64 and not i.requires_grad
    assert not ndl.Tensor(np.array([True]), device=device).requires_grad
    with pytest.raises(ndl.NeedleError, match="floating-point"):
        ndl.Tensor(np.array([1, 2]), device=device, requires_grad=True)
    with pytest.raises(ndl.NeedleError, match="floating-point"):
        i.requires_grad_()
    assert ndl.Tensor([1, 2], device=device).dtype == np.float32  # lists: float32 (the course)
    assert ndl.Tensor([1, 2], device=device).requires_grad


def test_integer_to_float_ops_give_float32_and_bool_never_float16(device):
    i = ndl.Tensor(np.array([1, 2, 4]), device=device)
    b = ndl.Tensor(np.array([True, False]), device=device)
    for out in (i / 2, 2 / i, i.log(), i.exp(), i.sqrt(), i.mean(), i * 0.5, i + 0.5, i ** 0.5,
                i.sin(), b.exp(), b.mean(), i.softmax(), i / i):
        assert out.dtype == np.float32, out
    assert (i * 2).dtype == np.int64 and (i + i).dtype == np.int64
    assert (i + ndl.Tensor([1.0], device=device)).dtype == np.float32  # PyTorch's rule


def test_float64_stays_and_mixed_floats_promote_with_gradients_in_their_own_dtype(device):
    x64 = ndl.Tensor(np.array([1.0, 2.0]), device=device)
    x32 = ndl.Tensor([3.0, 4.0], device=device)
    assert x64.dtype == np.float64 and x32.dtype == np.float32
    out = (x64 * x32).sum()
    assert out.dtype == np.float64
    out.backward()
    assert x64.grad.dtype == np.float64 and x32.grad.dtype == np.float32
    np.testing.assert_allclose(x32.grad.numpy(), [1.0, 2.0])
    assert (x32 * 2.5).dtype == np.float32  # Python scalars are weak
    assert (x32 * np.float64(2.5)).dtype == np.float32


def test_tensor_rejects_unknown_keywords():
    with pytest.raises(TypeError, match="'requries_grad' \\(did you mean 'requires_grad'\\?\\)"):
        ndl.Tensor([1.0], requries_grad=False)


# -- 4. the everyday methods --------------------------------------------------------------------

def _axis_spellings(axes):
    """The same reduction asked for as the course, NumPy and PyTorch spell it."""
    return [((axes,), {}), ((), {"axes": axes}), ((), {"axis": axes}), ((), {"dim": axes})]


REDUCTIONS = {
    "sum": (lambda t, *a, **k: t.sum(*a, **k), np.sum),
    "mean": (lambda t, *a, **k: t.mean(*a, **k), np.mean),
    "var": (lambda t, *a, **k: t.var(*a, **k), lambda x, axis, keepdims: np.var(
        x, axis=axis, keepdims=keepdims, ddof=1)),
    "std": (lambda t, *a, **k: t.std(*a, **k), lambda x, axis, keepdims: np.std(
        x, axis=axis, keepdims=keepdims, ddof=1)),
    "max": (lambda t, *a, **k: t.max(*a, **k), np.max),
    "min": (lambda t, *a, **k: t.min(*a, **k), np.min),
    "prod": (lambda t, *a, **k: t.prod(*a, **k), np.prod),
    "ndl.mean": (lambda t, *a, **k: ndl.mean(t, *a, **k), np.mean),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@given(shape=nst.shapes(min_dims=1, max_dims=3, min_side=2, max_side=4),
       data=st.data(), keep=st.sampled_from([None, ("keepdims", True), ("keepdim", True),
                                             ("keepdims", False)]), seed=seeds)
def test_reductions_in_every_spelling_match_numpy_with_gradients(device, name, shape, data,
                                                                keep, seed):
    fn, ref = REDUCTIONS[name]
    axes = data.draw(st.none() | st.integers(-len(shape), len(shape) - 1)
                     | st.sets(st.integers(0, len(shape) - 1), min_size=1).map(
                         lambda s: tuple(sorted(s))))
    x = np.random.default_rng(seed).uniform(0.5, 2.0, shape)  # distinct, away from zero
    kw = dict([keep]) if keep else {}
    want = ref(x, axis=axes, keepdims=bool(kw and list(kw.values())[0]))
    for args, spelled in _axis_spellings(axes):
        got = fn(t64(x, device), *args, **spelled, **kw)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)
    assert gradcheck(lambda t: fn(t, axes, **kw), t64(x, device), seed=seed)


def test_prod_gradient_with_zeros(device):
    x = np.array([[0.0, 2.0, 3.0], [0.0, 0.0, 5.0], [1.0, 2.0, 4.0]])
    g = upstream((3,), 0)
    _, grad = backward_of(lambda t: t.prod(1), t64(x, device), g)
    others = np.array([[np.prod(np.delete(row, j)) for j in range(3)] for row in x])
    np.testing.assert_allclose(grad, others * g[:, None])


@given(shape=nst.shapes(min_dims=1, max_dims=3, max_side=4), data=st.data(), seed=seeds)
def test_argmax_and_argmin_take_the_first_extreme(device, shape, data, seed):
    x = data.draw(npst.arrays(np.float64, shape, elements=st.sampled_from([-1.0, 0.0, 3.0])))
    axis = data.draw(st.none() | st.integers(-len(shape), len(shape) - 1))
    for method, ref in (("argmax", np.argmax), ("argmin", np.argmin)):
        out = getattr(t64(x, device), method)(dim=axis)
        assert out.dtype == np.int64 and not out.requires_grad
        np.testing.assert_array_equal(out.numpy(), ref(x, axis=axis))
        kept = getattr(t64(x, device), method)(axis=axis, keepdims=True)
        np.testing.assert_array_equal(kept.numpy(), ref(x, axis=axis, keepdims=True))


ELEMENTWISE = {
    "abs": (lambda t: t.abs(), np.abs, (-2, 2)),
    "builtin abs": (lambda t: abs(t), np.abs, (-2, 2)),
    "sqrt": (lambda t: t.sqrt(), np.sqrt, (0.2, 3)),
    "sin": (lambda t: t.sin(), np.sin, (-4, 4)),
    "cos": (lambda t: ndl.cos(t), np.cos, (-4, 4)),
    "clamp": (lambda t: t.clamp(-0.5, 1.0), lambda x: np.clip(x, -0.5, 1.0), (-2, 2)),
    "clip min": (lambda t: ndl.clip(t, min=0.25), lambda x: np.clip(x, 0.25, None), (-2, 2)),
    "maximum": (lambda t: ndl.maximum(t, 0.3), lambda x: np.maximum(x, 0.3), (-2, 2)),
    "minimum": (lambda t: t.minimum(t * 0.5 + 0.2), lambda x: np.minimum(x, x * 0.5 + 0.2),
                (-2, 2)),
    "where": (lambda t: ndl.where(t > 0, t * 2, -t), lambda x: np.where(x > 0, x * 2, -x),
              (-2, 2)),
    "softmax": (lambda t: t.softmax(dim=-1),
                lambda x: np.exp(x - x.max(-1, keepdims=True))
                / np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True), (-3, 3)),
    "clone": (lambda t: t.clone() * 3, lambda x: x * 3, (-2, 2)),
    "rpow": (lambda t: 2.0 ** t, lambda x: 2.0 ** x, (-2, 2)),
    "relu": (lambda t: t.relu(), lambda x: np.maximum(x, 0), (-2, 2)),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
@given(shape=nst.shapes(min_dims=1, max_dims=3, max_side=4), seed=seeds)
def test_element_wise_methods_match_numpy_with_gradients(device, name, shape, seed):
    fn, ref, (low, high) = ELEMENTWISE[name]
    x = np.random.default_rng(seed).uniform(low, high, shape)
    # keep away from the kinks, where finite differences straddle two slopes
    assume(np.all(np.abs(x) > 1e-3) and np.all(np.abs(x - 1.0) > 1e-3)
           and np.all(np.abs(x + 0.5) > 1e-3) and np.all(np.abs(x - 0.25) > 1e-3)
           and np.all(np.abs(x - 0.3) > 1e-3) and np.all(np.abs(x - 0.4) > 1e-3))
    np.testing.assert_allclose(fn(t64(x, device)).numpy(), ref(x), rtol=1e-10, atol=1e-12)
    assert gradcheck(fn, t64(x, device), seed=seed)


def test_kink_gradients_follow_pytorch(device):
    x = t64([-1.0, 0.0, 2.0], device)
    x.abs().sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [-1, 0, 1])
    a, b = t64([1.0, 2.0], device), t64([1.0, 3.0], device)
    ndl.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0.5, 0]), np.testing.assert_array_equal(
        b.grad.numpy(), [0.5, 1])
    c = t64([-1.0, 0.0, 1.0, 2.0], device)
    c.clamp(0.0, 1.0).sum().backward()
    np.testing.assert_array_equal(c.grad.numpy(), [0, 1, 1, 0])


@given(shape=nst.shapes(min_dims=1, max_dims=3, max_side=3), data=st.data(), seed=seeds)
def test_shape_methods_match_numpy_with_gradients(device, shape, data, seed):
    x = np.random.default_rng(seed).standard_normal(shape)
    nd = len(shape)
    d = data.draw(st.integers(-nd, nd - 1))
    cases = [
        (lambda t: ndl.cat([t, t * 2], dim=d), np.concatenate([x, x * 2], axis=d)),
        (lambda t: ndl.concatenate((t, t), axis=d), np.concatenate([x, x], axis=d)),
        (lambda t: t.view(-1), x.reshape(-1)),
        (lambda t: t.view(*reversed(shape)), x.reshape(tuple(reversed(shape)))),
        (lambda t: t.unsqueeze(d), np.expand_dims(x, d)),
        (lambda t: t.unsqueeze(-1).squeeze(-1), x),
        (lambda t: t.squeeze(), np.squeeze(x)),
        (lambda t: t.flatten(), x.reshape(-1)),
        (lambda t: t.flatten(d % nd), x.reshape(shape[:d % nd] + (-1,))),
        (lambda t: t.permute(*reversed(range(nd))), x.transpose(tuple(reversed(range(nd))))),
    ]
    if nd >= 2:
        cases += [(lambda t: t.transpose(0, 1), np.swapaxes(x, 0, 1)),
                  (lambda t: ndl.transpose(t, 1, 0), np.swapaxes(x, 0, 1)),
                  (lambda t: t.transpose((0, -1)), np.swapaxes(x, 0, -1)),
                  (lambda t: t.T, np.swapaxes(x, -1, -2))]
    for fn, want in cases:
        np.testing.assert_array_equal(fn(t64(x, device)).numpy(), want)
        assert gradcheck(fn, t64(x, device), seed=seed)


def test_python_values_copies_and_new_tensors(device):
    x = t64([[1.0, 2.0], [3.0, 4.0]], device)
    assert x[1, 0].item() == 3.0 and x.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(ndl.NeedleError, match="one element"):
        x.item()
    with pytest.raises(ndl.NeedleError, match="ambiguous"):
        bool(x > 0)
    c = x.clone()
    assert c.requires_grad and c.cached_data is not x.cached_data
    for like in (ndl.zeros_like(x), ndl.ones_like(x), ndl.rand_like(x)):
        assert like.shape == x.shape and like.dtype == x.dtype and like.device == device
    assert ndl.zeros_like(x).numpy().sum() == 0 and ndl.ones_like(x).numpy().sum() == 4
    r = ndl.rand_like(x).numpy()
    assert np.all((0 <= r) & (r < 1))
    np.testing.assert_array_equal(ndl.arange(5, device=device).numpy(), np.arange(5))
    assert ndl.arange(5, device=device).dtype == np.int64
    np.testing.assert_allclose(ndl.arange(1, 2, 0.25, device=device).numpy(),
                               np.arange(1, 2, 0.25, dtype=np.float32))
    full = ndl.full((2, 3), 7.0, device=device)
    assert full.dtype == np.float32 and full.numpy().tolist() == [[7.0] * 3] * 2


# -- 5. NumPy operands ------------------------------------------------------------------------

def test_numpy_operands_on_either_side_keep_autograd(device):
    x = t64([1.0, 2.0, 3.0], device, requires_grad=True)
    a = np.array([2.0, 0.5, -1.0])
    outs = [a + x, a * x, a - x, a / x, x + a, x * a, a ** x, np.exp(x), np.maximum(a, x),
            a.reshape(1, 3) @ x.reshape((3, 1)), a < x]
    for out in outs[:-1]:
        assert isinstance(out, ndl.Tensor) and out.requires_grad, type(out)
    assert isinstance(outs[-1], ndl.Tensor) and outs[-1].dtype == np.bool_
    (a * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), a)
    np.testing.assert_array_equal(np.asarray(x), [1.0, 2.0, 3.0])
    np.testing.assert_allclose((a - x).numpy(), a - x.numpy())
    np.testing.assert_allclose((a / x).numpy(), a / x.numpy())


# -- 6. edge numerics ------------------------------------------------------------------------

def test_edge_numerics_match_numpy(device):
    x = ndl.Tensor([-np.inf, -1.0, 0.0, 2.0, np.inf], device=device)
    np.testing.assert_array_equal(ndl.relu(x).numpy(), [0, 0, 0, 2, np.inf])
    e = ndl.Tensor([0.0, 1.0, 2.0, 3.0], device=device)
    np.testing.assert_allclose(((-2) ** e).numpy(), [1, -2, 4, -8])
    np.testing.assert_allclose((0 ** e).numpy(), [1, 0, 0, 0])
    assert (0 ** ndl.Tensor([0.0], device=device)).item() == 1.0
    z = t64(3.0, device, requires_grad=True)
    out = ndl.logsumexp(z)
    assert out.shape == () and out.item() == pytest.approx(3.0)
    out.backward()
    assert z.grad.item() == pytest.approx(1.0)
    p = t64([0.0, 2.0], device, requires_grad=True)
    (0.0 ** p).sum().backward()  # the gradient of 0 ** p in p is taken as 0, not NaN
    assert np.all(np.isfinite(p.grad.numpy()))


def test_batch_norm_needs_more_than_one_value_per_channel_in_training(device):
    nn = ndl.nn
    for layer, shape in ((nn.BatchNorm1d(3, device=device), (1, 3)),
                         (nn.BatchNorm2d(3, device=device), (1, 3, 1, 1))):
        with pytest.raises(ndl.NeedleError, match="more than one value per channel"):
            layer(ndl.Tensor(np.ones(shape), device=device, dtype="float32"))
        layer.eval()
        assert layer(ndl.Tensor(np.ones(shape), device=device, dtype="float32")).shape == shape
        with pytest.raises(ndl.NeedleError, match="empty"):
            layer(ndl.Tensor(np.ones((0,) + shape[1:]), device=device, dtype="float32"))


# -- 7. labels --------------------------------------------------------------------------------

def test_softmax_loss_takes_integral_float_labels_and_refuses_fractional_ones(device):
    logits = ndl.Tensor(np.random.default_rng(0).standard_normal((3, 4)), device=device)
    loss = ndl.nn.SoftmaxLoss()
    want = loss(logits, ndl.Tensor(np.array([1, 2, 3]), device=device)).item()
    assert loss(logits, ndl.Tensor([1.0, 2.0, 3.0], device=device)).item() == want
    assert loss(logits, np.array([1.0, 2.0, 3.0])).item() == want
    with pytest.raises(ndl.NeedleError, match="label 1.9 at position 0"):
        loss(logits, ndl.Tensor([1.9, 2.0, 2.7], device=device))
    with pytest.raises(ndl.NeedleError, match="label 2.7 at position 2"):
        loss(logits, np.array([1.0, 2.0, 2.7]))


# -- 8. custom ops are checked ------------------------------------------------------------------

class _Double(ndl.TensorOp):
    def __init__(self, mistake):
        self.mistake = mistake

    def compute(self, a):
        return self.backend.multiply(a, 2.0)

    def gradient(self, out_grad, node):
        if self.mistake == "shape":  # a forgotten sum_to_shape
            return out_grad.broadcast_to((2,) + out_grad.shape)
        if self.mistake == "numpy":
            return out_grad.numpy() * 2
        if self.mistake == "dtype":
            return (out_grad * 2).astype("float32")
        return out_grad * 2


@pytest.mark.parametrize("mistake, message", [
    ("shape", r"_Double.gradient returned a gradient of shape \(2, 3\) .* input 0, which has "
              r"shape \(3,\).*sum_to_shape"),
    ("numpy", r"_Double.gradient returned a numpy.ndarray for input 0"),
    ("dtype", r"_Double.gradient returned .* dtype float32 .* dtype float64"),
])
@pytest.mark.parametrize("create_graph", [False, True])
def test_custom_op_gradients_are_checked_and_the_op_named(device, mistake, message,
                                                          create_graph):
    x = t64([1.0, 2.0, 3.0], device, requires_grad=True)
    with pytest.raises(ndl.NeedleError, match=message):
        _Double(mistake)(x).sum().backward(create_graph=create_graph)
    y = t64([1.0, 2.0, 3.0], device, requires_grad=True)
    _Double(None)(y).sum().backward(create_graph=create_graph)
    np.testing.assert_array_equal(y.grad.numpy(), [2, 2, 2])


class _DoubleXp(ndl.TensorOp):
    """A user's op in needle's own style (``backward(xp, ...)``) with a forgotten
    sum_to_shape: shape-exact in form, so only the check can catch it."""

    def compute(self, a):
        return self.backend.multiply(a, 2.0)

    def backward(self, xp, g, node):
        return (xp.broadcast_to(g, (2, *g.shape)),)


@pytest.mark.parametrize("check_all", [False, True])
def test_users_ops_are_checked_whether_or_not_needles_own_are(device, monkeypatch, check_all):
    monkeypatch.setattr(ndl.autograd, "CHECK_ALL_GRADIENTS", check_all)
    assert not _DoubleXp._exact and not _Double._exact
    x = t64([1.0, 2.0, 3.0], device, requires_grad=True)
    with pytest.raises(ndl.NeedleError, match=r"_DoubleXp.gradient returned a gradient of shape"):
        _DoubleXp()(x).sum().backward()
    with pytest.raises(ndl.NeedleError, match=r"_Double.gradient returned a gradient of shape"):
        _Double("shape")(x).sum().backward()


class _FaultyNeedleOp(_DoubleXp):
    __module__ = "needle.ops.faulty"  # as if needle shipped it: trusted to be shape-exact


@pytest.mark.parametrize("check_all", [False, True])
def test_needles_shape_exact_ops_are_checked_only_when_every_gradient_is(device, monkeypatch,
                                                                         check_all):
    assert _FaultyNeedleOp._exact
    assert all(getattr(ndl.ops, name)._exact for name in ("Exp", "ReLU", "BatchNorm", "Linear"))
    assert not ndl.ops.EWiseAdd._exact, "a broadcasting op's gradients are always fitted"
    monkeypatch.setattr(ndl.autograd, "CHECK_ALL_GRADIENTS", check_all)
    x = t64([1.0, 2.0, 3.0], device, requires_grad=True)
    if check_all:  # what the test suite runs with, so a faulty needle op cannot pass it
        with pytest.raises(ndl.NeedleError, match=r"_FaultyNeedleOp.gradient returned a "
                                                  r"gradient of shape \(2, 3\)"):
            _FaultyNeedleOp()(x).sum().backward()
    else:  # the speed it buys: the walk takes needle's word for it
        _FaultyNeedleOp()(x).sum().backward()
        assert x.grad.shape == (2, 3)
