"""needle.init: seeded draws equal NumPy's formulas (the course's numbers), dtypes,
devices, shape overrides, and clear errors."""

from __future__ import annotations

import math

import needle as ndl
import needle.init as init
import numpy as np
import pytest


def test_rand_and_randn_are_numpy_draws_cast_then_scaled_in_their_dtype(device):
    # The course's NDArray devices: a float32 draw, then float32 multiply and add (each
    # rounded). Scaling in float64 before the cast differs in the last bit for most values.
    np.random.seed(7)
    u = np.random.rand(3, 4).astype(np.float32)
    z = np.random.randn(2, 5).astype(np.float32)
    ndl.manual_seed(7)
    a = init.rand(3, 4, low=-2.0, high=3.0, device=device)
    b = init.randn(2, 5, mean=1.5, std=0.3, device=device)
    assert a.dtype == b.dtype == np.float32 and a.device == device and not a.requires_grad
    if device.name == "cpu":  # other backends have their own generators
        np.testing.assert_array_equal(a.numpy(), (u * np.float32(5.0)) + np.float32(-2.0))
        np.testing.assert_array_equal(b.numpy(), (z * np.float32(0.3)) + np.float32(1.5))
    assert a.numpy().min() >= -2.0 and a.numpy().max() < 3.0


def test_float32_scaling_is_not_float64_scaling_rounded():
    """The two orders really differ (else the test above proves nothing), by at most two
    float32 steps of the range."""
    np.random.seed(3)
    u = np.random.rand(1000)
    np.random.seed(3)
    a = init.rand(1000, low=-0.3, high=0.3).numpy()
    hw2_order = (u * 0.6 - 0.3).astype(np.float32)
    assert (a != hw2_order).mean() > 0.3
    assert np.abs(a.astype(np.float64) - hw2_order).max() <= 2 * np.spacing(np.float32(0.3))


def test_float64_and_integer_draws_are_scaled_in_float64():
    np.random.seed(5)
    u = np.random.rand(4, 3)
    z = np.random.randn(6)
    np.random.seed(5)
    a = init.rand(4, 3, low=-2.0, high=3.0, dtype="float64")
    b = init.randn(6, mean=1.5, std=0.3, dtype="float64")
    np.testing.assert_array_equal(a.numpy(), u * 5.0 - 2.0)
    np.testing.assert_array_equal(b.numpy(), z * 0.3 + 1.5)
    np.random.seed(5)
    ints = init.rand(4, 3, low=0.0, high=10.0, dtype="int64").numpy()
    np.testing.assert_array_equal(ints, (u * 10.0).astype(np.int64))
    assert ints.max() > 0  # scaled before the cast, not truncated to 0 first


def test_shape_as_tuple_dtype_and_requires_grad(device):
    t = init.rand((2, 3), device=device, dtype="float64", requires_grad=True)
    assert t.shape == (2, 3) and t.dtype == np.float64 and t.requires_grad
    assert init.randn(4, device=device).shape == (4,)


def test_constants_ones_zeros_and_likes(device):
    c = init.constant(2, 3, c=-1.25, device=device, dtype="float64")
    np.testing.assert_array_equal(c.numpy(), np.full((2, 3), -1.25))
    np.testing.assert_array_equal(init.ones(2, device=device).numpy(), [1.0, 1.0])
    np.testing.assert_array_equal(init.zeros(1, 2, device=device).numpy(), [[0.0, 0.0]])
    ref = init.rand(3, 2, device=device, dtype="float64")
    z, o = init.zeros_like(ref), init.ones_like(ref, requires_grad=True)
    assert z.shape == o.shape == (3, 2) and z.dtype == o.dtype == np.float64
    assert z.device == device and o.requires_grad
    np.testing.assert_array_equal(o.numpy(), np.ones((3, 2)))


def test_randb_is_uniform_draw_at_most_p(device):
    np.random.seed(3)
    expected = (np.random.rand(50, 40) <= 0.3).astype(np.float32)
    ndl.manual_seed(3)
    mask = init.randb(50, 40, p=0.3, device=device)
    if device.name == "cpu":
        np.testing.assert_array_equal(mask.numpy(), expected)
    values = mask.numpy()
    assert set(np.unique(values)) <= {0.0, 1.0}
    assert abs(values.mean() - 0.3) < 0.05  # 2000 draws: sd of the mean ~0.01
    assert init.randb(3, p=1.0, device=device).numpy().sum() == 3


def test_randb_rejects_a_probability_outside_0_1():
    with pytest.raises(ndl.NeedleError, match=r"p must be in \[0, 1\]"):
        init.randb(2, p=1.5)


def test_negative_shape_is_an_error():
    with pytest.raises(ndl.NeedleError, match="init.rand: shape"):
        init.rand(2, -1)


@pytest.mark.parametrize("labels", [[0, 2, 1, 2], np.array([0.0, 2.0, 1.0, 2.0])])
def test_one_hot_from_int_or_float_ids(device, labels):
    out = init.one_hot(3, ndl.Tensor(labels, device=device, dtype=np.asarray(labels).dtype),
                       device=device, dtype="float64")
    np.testing.assert_array_equal(out.numpy(), np.eye(3)[[0, 2, 1, 2]])
    assert out.dtype == np.float64


@pytest.mark.parametrize("labels, message", [
    ([0, 3], r"class ids must lie in \[0, 3\)"),
    ([-1, 0], r"class ids must lie in \[0, 3\)"),
    ([0.5, 1.0], "whole numbers"),
])
def test_one_hot_rejects_bad_ids(labels, message):
    with pytest.raises(ndl.NeedleError, match=message):
        init.one_hot(3, np.array(labels))


def _draw(fn, *args, **kwargs) -> np.ndarray:
    np.random.seed(11)
    return fn(*args, **kwargs).numpy()


def test_initializer_formulas_against_numpy():
    # The bounds and deviations of each initializer, applied to the float32 draw in float32
    # (init.rand/randn's order), so the comparison is exact.
    f32 = np.float32
    fan_in, fan_out, gain = 6, 10, 1.7
    np.random.seed(11)
    u = np.random.rand(fan_in, fan_out).astype(f32)
    a = gain * math.sqrt(6 / (fan_in + fan_out))
    np.testing.assert_array_equal(_draw(init.xavier_uniform, fan_in, fan_out, gain=gain),
                                  u * f32(2 * a) + f32(-a))
    bound = math.sqrt(2) * math.sqrt(3 / fan_in)
    np.testing.assert_array_equal(_draw(init.kaiming_uniform, fan_in, fan_out),
                                  u * f32(2 * bound) + f32(-bound))
    np.random.seed(11)
    z = np.random.randn(fan_in, fan_out).astype(f32)
    np.testing.assert_array_equal(_draw(init.xavier_normal, fan_in, fan_out, gain=gain),
                                  z * f32(gain * math.sqrt(2 / (fan_in + fan_out))))
    np.testing.assert_array_equal(_draw(init.kaiming_normal, fan_in, fan_out),
                                  z * f32(math.sqrt(2) / math.sqrt(fan_in)))


def test_initializer_statistics_on_a_large_draw():
    w = init.kaiming_uniform(400, 300).numpy()
    bound = math.sqrt(2) * math.sqrt(3 / 400)
    assert w.min() >= -bound and w.max() <= bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound  # uniform: sd = bound/√3
    n = init.kaiming_normal(400, 300).numpy()
    assert abs(n.std() - math.sqrt(2 / 400)) < 0.02 * math.sqrt(2 / 400)
    x = init.xavier_normal(400, 300).numpy()
    assert abs(x.std() - math.sqrt(2 / 700)) < 0.02 * math.sqrt(2 / 700)


def test_shape_override_for_conv_kernels(device):
    k, cin, cout = 3, 4, 5
    w = init.kaiming_uniform(cin * k * k, cout * k * k, shape=(k, k, cin, cout), device=device,
                             dtype="float64", requires_grad=True)
    assert w.shape == (k, k, cin, cout) and w.dtype == np.float64 and w.requires_grad
    assert np.abs(w.numpy()).max() <= math.sqrt(2) * math.sqrt(3 / (cin * k * k))
    for fn in (init.xavier_uniform, init.xavier_normal, init.kaiming_normal):
        assert fn(cin * k * k, cout * k * k, shape=(k, k, cin, cout)).shape == (k, k, cin, cout)
    # The course's hw4 passed ``shape`` as the third positional argument.
    assert init.kaiming_uniform(4, 5, (2, 2, 1, 5)).shape == (2, 2, 1, 5)


def test_gains_and_unsupported_nonlinearity():
    np.random.seed(0)
    tanh = init.kaiming_uniform(9, 2, nonlinearity="tanh").numpy()
    np.random.seed(0)
    relu = init.kaiming_uniform(9, 2).numpy()
    np.testing.assert_allclose(tanh / relu, (5 / 3) / math.sqrt(2), rtol=1e-5)
    with pytest.raises(ndl.NeedleError, match="unsupported nonlinearity 'gelu'.*relu"):
        init.kaiming_uniform(3, 3, nonlinearity="gelu")
    with pytest.raises(ndl.NeedleError, match="fan_in and fan_out must be positive"):
        init.xavier_uniform(0, 3)
