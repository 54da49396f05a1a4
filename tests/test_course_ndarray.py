"""The course's NDArray face (hw3, hw4): ``needle.backend_ndarray`` on the CPU.

Each behaviour the course's code relies on, checked against NumPy: element strides,
views that share one buffer (``_handle.ptr()``), compaction, in-place ``__setitem__``,
the element-wise methods, padding, flipping, the tiled matmul, and tensors' ``cached_data``
showing it while still going straight into NumPy (hw2 style).
"""

from __future__ import annotations

import needle as ndl
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from needle import backend_ndarray as nd


def element_strides(a: np.ndarray) -> tuple[int, ...]:
    return tuple(s // a.itemsize for s in a.strides)


def row_major_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(np.prod(shape[i + 1:])) for i in range(len(shape)))


def test_array_and_constructor_make_float32_copies_on_the_cpu():
    src = np.arange(6.0).reshape(2, 3)
    for a in (nd.array(src), nd.array(src, device=nd.cpu()), nd.NDArray(src, device=nd.cpu())):
        assert type(a) is nd.NDArray and a.dtype == np.float32 and a.device == nd.cpu()
        assert a.shape == (2, 3) and a.size == 6 and a.ndim == 2 and a.strides == (3, 1)
        assert not np.shares_memory(a, src)
        np.testing.assert_array_equal(a.numpy(), src)
        assert type(a.numpy()) is np.ndarray
    assert nd.array(src, dtype="float64").dtype == np.float64
    copy = nd.NDArray(nd.array(src))
    assert copy._handle.ptr() != nd.array(src)._handle.ptr()


def test_make_gives_zeros_or_a_view_of_a_buffer():
    z = nd.NDArray.make((2, 4), device=nd.cpu())
    assert z.shape == (2, 4) and z.dtype == np.float32 and not z.any()
    base = nd.array(np.arange(12.0))
    view = nd.NDArray.make((3, 2), strides=(4, 1), handle=base._handle, offset=1)
    np.testing.assert_array_equal(view.numpy(), [[1, 2], [5, 6], [9, 10]])
    assert view._handle.ptr() == base._handle.ptr() and view.strides == (4, 1)
    with pytest.raises(ValueError, match="outside a buffer of 12 elements"):
        nd.NDArray.make((4, 4), handle=base._handle)


@given(a=hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=4, max_side=5),
                    elements=st.floats(-9, 9, width=32)), data=st.data())
def test_views_share_the_buffer_and_count_strides_in_elements(a, data):
    x = nd.array(a)
    axes = tuple(data.draw(st.permutations(range(a.ndim))))
    lo = data.draw(st.integers(0, a.shape[0] - 1))
    views = {
        "permute": (x.permute(axes), np.transpose(a, axes)),
        "reshape": (x.reshape((a.size,)), a.reshape(a.size)),
        "broadcast_to": (x[:1].broadcast_to((3,) + a.shape[1:]),
                         np.broadcast_to(a[:1], (3,) + a.shape[1:])),
        "slice": (x[lo:, ::2], a[lo:, ::2]),
        "flip": (x.flip((0,)), np.flip(a, 0)),
    }
    for name, (got, want) in views.items():
        assert got._handle.ptr() == x._handle.ptr(), name
        assert got.strides == element_strides(want), name
        np.testing.assert_array_equal(got.numpy(), want, err_msg=name)
        c = got.compact()
        assert c.is_compact() and c.strides == row_major_strides(want.shape)
        np.testing.assert_array_equal(c.numpy(), want, err_msg=name)
    assert x.is_compact() and x.compact() is x
    if a.shape[0] > 1:
        assert not x[1:].is_compact()  # contiguous but only part of its buffer


def test_setitem_is_in_place_from_arrays_and_scalars():
    ref = np.random.default_rng(0).standard_normal((4, 5, 6)).astype(np.float32)
    a = nd.array(ref)
    ptr = a._handle.ptr()
    src = nd.array(np.ones((7, 7, 7)))
    a[1:3, 2:5, 2:6] = src[:2, :3, :4] * 3
    ref[1:3, 2:5, 2:6] = 3
    a[1::2, 2:5, ::2] = 4.0
    ref[1::2, 2:5, ::2] = 4.0
    assert a._handle.ptr() == ptr and a.strides == element_strides(ref)
    np.testing.assert_array_equal(a.numpy(), ref)


def test_element_wise_methods_reductions_and_matmul_match_numpy():
    rng = np.random.default_rng(1)
    an, bn = rng.standard_normal((2, 4, 5)).astype(np.float32)
    a, b = nd.array(an), nd.array(bn)
    cases = {
        "add": (a + b, an + bn), "sub": (a - b, an - bn), "mul": (a * b, an * bn),
        "div": (a / b, an / bn), "scalar": (a * 5.0 - 1, an * 5.0 - 1), "pow": (a ** 2, an ** 2),
        "maximum": (a.maximum(b), np.maximum(an, bn)),
        "maximum-scalar": (a.maximum(0.1), np.maximum(an, 0.1)),
        "exp": (a.exp(), np.exp(an)), "log": (abs(a).log(), np.log(abs(an))),
        "tanh": (a.tanh(), np.tanh(an)),
        "eq": (a == a[0, 1], an == an[0, 1]), "ge": (a >= b, an >= bn),
        "matmul": (a @ b.permute((1, 0)), an @ bn.T),
        "sum": (a.sum(axis=1, keepdims=True), an.sum(1, keepdims=True)),
        "max": (a.max(axis=0, keepdims=True), an.max(0, keepdims=True)),
    }
    for name, (got, want) in cases.items():
        np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, rtol=1e-6, atol=1e-6,
                                   err_msg=name)


def test_pad_flip_fill_and_to():
    a = nd.array(np.arange(6.0).reshape(2, 3))
    padded = a.pad(((1, 0), (0, 2)))
    np.testing.assert_array_equal(padded.numpy(), np.pad(np.arange(6.0).reshape(2, 3), ((1, 0), (0, 2))))
    assert type(padded) is nd.NDArray and a.shape == (2, 3)
    np.testing.assert_array_equal(a.flip((0, 1)).numpy(), np.arange(6.0)[::-1].reshape(2, 3))
    assert a.to(nd.cpu()) is a
    b = nd.NDArray.make((2, 2))
    b.fill(7.0)
    np.testing.assert_array_equal(b.numpy(), np.full((2, 2), 7.0))


def test_process_slice_makes_every_part_explicit():
    x = nd.array(np.zeros((5, 8)))
    assert x.process_slice(slice(None), 1) == slice(0, 8, 1)
    assert x.process_slice(slice(-3, None, 2), 0) == slice(2, 5, 2)


class _Recorder(nd.NDArray):
    """Course tests subclass NDArray and build it from a NumPy array."""

    def __getitem__(self, idxs):
        return self.shape, tuple(self.process_slice(s, i) for i, s in enumerate(idxs))


def test_subclasses_construct_from_numpy_like_the_course():
    shape, slices = _Recorder(np.ones((4, 5)))[1:3, ::2]
    assert shape == (4, 5) and slices == (slice(1, 3, 1), slice(0, 5, 2))


@pytest.mark.parametrize("m,n,p", [(1, 1, 1), (2, 2, 3), (3, 1, 2)])
def test_matmul_tiled_multiplies_tile_major_buffers(m, n, p):
    dev = nd.cpu()
    t = dev.__tile_size__
    rng = np.random.default_rng(2)
    a = nd.array(rng.standard_normal((m, n, t, t)))
    b = nd.array(rng.standard_normal((n, p, t, t)))
    c = nd.NDArray.make((m, p, t, t), device=dev)
    dev.matmul_tiled(a._handle, b._handle, c._handle, m * t, n * t, p * t)
    as_matrix = lambda x, r, k: x.numpy().transpose(0, 2, 1, 3).reshape(r * t, k * t)
    np.testing.assert_allclose(as_matrix(c, m, p), as_matrix(a, m, n) @ as_matrix(b, n, p),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="multiples of the tile size"):
        dev.matmul_tiled(a._handle, b._handle, c._handle, t + 1, t, t)


def test_device_forwards_course_kernels_but_not_private_names():
    assert callable(nd.cpu().matmul_tiled)
    with pytest.raises(AttributeError, match="no attribute 'no_such_kernel'"):
        nd.cpu().no_such_kernel  # noqa: B018
    assert not hasattr(nd.cpu(), "__deepcopy__") or callable(nd.cpu().__deepcopy__)


def test_cached_data_shows_the_ndarray_face_and_still_goes_to_numpy():
    x = ndl.Tensor([[1.0, -2.0], [3.0, 4.0]])
    assert isinstance(x.cached_data, nd.NDArray) and type(x._array) is np.ndarray
    np.testing.assert_array_equal(x.cached_data.numpy(), [[1, -2], [3, 4]])
    assert np.linalg.norm(x.cached_data - np.ones((2, 2))) == pytest.approx(np.sqrt(0 + 9 + 4 + 9))
    x.realize_cached_data().flat[3] += 0.5  # the course's finite differences write through
    assert x.numpy()[1, 1] == 4.5
    y = (x * 2).sum()
    y.backward()
    assert isinstance(x.grad.cached_data, nd.NDArray)
    # a course NDArray goes into a tensor and comes out plain for the ops
    t = ndl.Tensor(nd.array(np.eye(2)))
    assert type(t._array) is np.ndarray and t.dtype == np.float32
    t.cached_data = nd.array(np.ones((2, 2)))
    assert type(t._array) is np.ndarray
