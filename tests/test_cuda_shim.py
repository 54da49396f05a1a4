"""The cuda backend's code paths without a GPU: NumPy stands in for CuPy.

``CUDABackend`` reaches CuPy only through ``self.xp``, so a stand-in module with
CuPy's names over NumPy runs its real host-side code: argument handling, index
transfers, reshapes around the fused kernels, im2col. The kernels themselves are
replaced honestly:

* the element-wise optimizer kernels run their *actual CUDA body text*, compiled
  as C++ by g++ and called through ctypes (the body is plain C arithmetic);
* the row kernels (logsumexp, log-softmax, softmax loss) are NumPy references that
  also assert the launch contract (dtypes, contiguity, argument order); their
  device code is compiled by nvcc below and checked for values on a real GPU by
  test_cuda_backend.py.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import needle as ndl
import numpy as np
import pytest
from hypothesis import given
from needle_backend_cpu import CPUBackend
from needle_backend_cuda import CUDABackend, kernels

# -- the stand-in ----------------------------------------------------------------------------


class _Random:
    """CuPy's ``cupy.random`` calls (size + dtype) on a NumPy generator."""

    def __init__(self) -> None:
        self.state = np.random.RandomState(0)

    def seed(self, n: int | None = None) -> None:
        self.state.seed(n)

    def random_sample(self, size: Any = None, dtype: Any = float) -> np.ndarray:
        return np.asarray(self.state.random_sample(size)).astype(dtype)

    def standard_normal(self, size: Any = None, dtype: Any = float) -> np.ndarray:
        return np.asarray(self.state.standard_normal(size)).astype(dtype)

    def permutation(self, n: int) -> np.ndarray:
        return self.state.permutation(n)


class _ReferenceKernel:
    """A hand-written kernel's NumPy reference, named as the kernel: needle_KIND_f32/f64."""

    def __init__(self, name: str) -> None:
        match = re.fullmatch(r"needle_(\w+)_(f32|f64)", name)
        assert match, f"unknown kernel {name}"
        self.kind, sfx = match.groups()
        self.dtype = np.dtype("float32" if sfx == "f32" else "float64")


class _ReferenceRowKernel(_ReferenceKernel):
    """A row kernel's reference, checking how the host side launches it."""

    def __call__(self, grid: tuple[int], block: tuple[int], args: tuple) -> None:
        assert len(grid) == 1 and len(block) == 1 and block[0] % 32 == 0 and block[0] <= 1024
        rows, cols = args[-2:]
        assert type(rows) is np.int64 and type(cols) is np.int64, "sizes must be long long"
        for a in args[:-2]:
            if isinstance(a, np.ndarray):
                assert a.flags.c_contiguous, f"{self.kind}: a non-contiguous array reached a kernel"
                assert a.dtype == (np.int64 if a.ndim == 1 and self.kind == "softmax_xent"
                                   and a is args[1] else self.dtype)
        getattr(self, self.kind)(*args[:-2], int(rows), int(cols))

    @staticmethod
    def _lse(x: np.ndarray) -> np.ndarray:
        m = x.max(axis=1, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        with np.errstate(divide="ignore"):
            return (np.log(np.exp(x - m).sum(axis=1, keepdims=True)) + m)[:, 0]

    def logsumexp(self, x, out, rows, cols):
        out[:] = self._lse(x.reshape(rows, cols))

    @staticmethod
    def _shifted(x):
        """x − its row shift, as the kernels subtract it before anything else."""
        m = x.max(axis=1, keepdims=True)
        return x - np.where(np.isfinite(m), m, 0)

    def log_softmax(self, x, y, rows, cols):
        s = self._shifted(x.reshape(rows, cols))
        y.reshape(rows, cols)[:] = s - self._lse(s)[:, None]

    def log_softmax_grad(self, y, g, dz, rows, cols):
        y2, g2 = y.reshape(rows, cols), g.reshape(rows, cols)
        dz.reshape(rows, cols)[:] = g2 - np.exp(y2) * g2.sum(axis=1, keepdims=True)

    def softmax_xent(self, z, labels, loss, dz, scale, rows, cols):
        assert isinstance(scale, self.dtype.type), "scale must have the logits' dtype"
        s = self._shifted(z.reshape(rows, cols))
        lse = self._lse(s)
        valid = (labels >= 0) & (labels < cols)
        safe = np.where(valid, labels, 0)
        loss[:] = np.where(valid, lse - s[np.arange(rows), safe], np.nan)
        onehot = np.eye(cols, dtype=z.dtype)[safe]
        dz[:] = np.where(valid[:, None], (np.exp(s - lse[:, None]) - onehot) * scale, np.nan)


class _ReferenceColumnKernel(_ReferenceKernel):
    """A column kernel's reference (batch norm), checking its launch the same way."""

    def __call__(self, grid: tuple[int], block: tuple[int, int], args: tuple) -> None:
        rows, cols = args[-2:]
        assert type(rows) is np.int64 and type(cols) is np.int64, "sizes must be long long"
        assert block == (32, kernels.COLUMN_WARPS) and grid == ((int(cols) + 31) // 32,)
        for a in args[:-2]:
            if isinstance(a, np.ndarray):
                assert a.flags.c_contiguous, f"{self.kind}: a non-contiguous array reached a kernel"
                assert a.dtype == self.dtype, f"{self.kind}: {a.dtype} array in a {self.dtype} kernel"
            else:
                assert isinstance(a, (self.dtype.type, np.int64)), f"{self.kind}: {type(a)} argument"
        getattr(self, self.kind)(*args[:-2], int(rows), int(cols))

    @staticmethod
    def batch_norm(x, weight, bias, y, x_hat, stats, running_mean, running_var, update,
                   momentum, keep, eps, rows, cols):
        x2 = x.reshape(rows, cols)
        mean = x2.sum(axis=0) / x.dtype.type(rows)
        var = np.square(x2 - mean).sum(axis=0) / x.dtype.type(rows)
        inv_std = 1 / np.sqrt(var + eps)
        x_hat.reshape(rows, cols)[:] = (x2 - mean) * inv_std
        y.reshape(rows, cols)[:] = x_hat.reshape(rows, cols) * weight.reshape(-1) + bias.reshape(-1)
        stats.reshape(3, cols)[:] = mean, var, inv_std
        if update:
            running_mean.reshape(-1)[:] = keep * running_mean.reshape(-1) + momentum * mean
            running_var.reshape(-1)[:] = keep * running_var.reshape(-1) + momentum * var

    @staticmethod
    def batch_norm_grad(g, x_hat, inv_std, weight, dx, g_weight, g_bias, rows, cols):
        g2, h2 = g.reshape(rows, cols), x_hat.reshape(rows, cols)
        sg, sgx = g2.sum(axis=0), (g2 * h2).sum(axis=0)
        scale = weight.reshape(-1) * inv_std.reshape(-1)
        dx.reshape(rows, cols)[:] = (g2 - sg / rows - h2 * (sgx / rows)) * scale
        g_weight[:], g_bias[:] = sgx, sg


class _ReferenceRowModule:
    """``cupy.RawModule`` for the row or the column kernels' source."""

    def __init__(self, code: str) -> None:
        assert code is kernels.ROW_SOURCE or code is kernels.COLUMN_SOURCE
        self.code = code

    def get_function(self, name: str) -> _ReferenceRowKernel | _ReferenceColumnKernel:
        if self.code is kernels.COLUMN_SOURCE:
            assert name in kernels.COLUMN_KERNEL_NAMES, name
            return _ReferenceColumnKernel(name)
        assert name in kernels.ROW_KERNEL_NAMES, name
        return _ReferenceRowKernel(name)


def _cxx_source(in_params: str, out_params: str, body: str, ctype: str, arrays: list[bool],
                device: bool, kname: str = "k") -> str:
    """A CuPy ElementwiseKernel as C++ (host loop) or CUDA (one thread per element).

    As in CuPy, each name in the body is the current element: inputs by value,
    outputs by reference; scalar inputs are passed as values.
    """
    params = [p.split() for p in in_params.split(",")] + [p.split() for p in out_params.split(",")]
    n_in = len(in_params.split(","))
    sig, bind = ["long long n"], []
    for k, ((_, name), is_array) in enumerate(zip(params, arrays)):
        if k >= n_in:
            sig.append(f"T* {name}_")
            bind.append(f"T& {name} = {name}_[i];")
        elif is_array:
            sig.append(f"const T* {name}_")
            bind.append(f"const T {name} = {name}_[i];")
        else:
            sig.append(f"T {name}")
    loop_body = "\n".join(bind) + "\n" + body
    if device:
        return (f"namespace {kname}_ns {{\ntypedef {ctype} T;\n"
                f"extern \"C\" __global__ void {kname}({', '.join(sig)}) {{\n"
                f"long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;\n"
                f"if (i >= n) return;\n{loop_body}\n}}\n}}\n")
    return (f"#include <cmath>\nusing std::sqrt;\ntypedef {ctype} T;\n"
            f"extern \"C\" void k({', '.join(sig)}) {{\n"
            f"for (long long i = 0; i < n; ++i) {{\n{loop_body}\n}}\n}}\n")


_CXX_CACHE: dict[str, Any] = {}


def _compile_cxx(source: str, build_dir: Path) -> Any:
    """g++ the source into a shared library once per distinct source."""
    key = hashlib.sha256(source.encode()).hexdigest()[:16]
    if key not in _CXX_CACHE:
        build = build_dir / key
        build.mkdir(parents=True, exist_ok=True)
        (build / "k.cpp").write_text(source)
        subprocess.run(["g++", "-O0", "-shared", "-fPIC", "-o", str(build / "k.so"),
                        str(build / "k.cpp")], check=True, capture_output=True)
        _CXX_CACHE[key] = ctypes.CDLL(str(build / "k.so"))
    return _CXX_CACHE[key]


class _CxxElementwiseKernel:
    """Runs an ElementwiseKernel's body text on the CPU, compiled by g++."""

    def __init__(self, in_params: str, out_params: str, body: str, name: str, *,
                 build_dir: Path) -> None:
        self.in_params, self.out_params, self.body = in_params, out_params, body
        self.n_in = len(in_params.split(","))
        self.build_dir = build_dir

    def __call__(self, *args: Any) -> None:
        outs = args[self.n_in:]
        dtype = outs[0].dtype
        ctype = {np.dtype("float32"): "float", np.dtype("float64"): "double"}[dtype]
        arrays = [isinstance(a, np.ndarray) for a in args]
        for a in args:
            assert a.dtype == dtype, f"argument of dtype {a.dtype} in a {dtype} kernel"
        lib = _compile_cxx(_cxx_source(self.in_params, self.out_params, self.body, ctype,
                                       arrays, device=False), self.build_dir)
        shape = outs[0].shape
        cargs: list[Any] = [ctypes.c_longlong(outs[0].size)]
        keep = []
        for a, is_array in zip(args, arrays):
            if is_array:
                is_out = any(a is o for o in outs)
                buf = a if is_out else np.ascontiguousarray(np.broadcast_to(a, shape))
                assert buf.flags.c_contiguous
                keep.append(buf)
                cargs.append(buf.ctypes.data_as(ctypes.c_void_p))
            else:
                cargs.append((ctypes.c_float if ctype == "float" else ctypes.c_double)(a))
        lib.k(*cargs)


class NumPyAsCuPy(types.ModuleType):
    """NumPy under CuPy's names, with the kernel classes above."""

    def __init__(self, build_dir: Path) -> None:
        super().__init__("cupy")
        self.random = _Random()
        self.ndarray = np.ndarray
        stream = types.SimpleNamespace(synchronize=lambda: None)
        self.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
                                          get_current_stream=lambda: stream)
        self.RawModule = _ReferenceRowModule
        self.ElementwiseKernel = functools.partial(_CxxElementwiseKernel, build_dir=build_dir)

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)

    @staticmethod
    def asnumpy(a: Any) -> np.ndarray:
        return np.asarray(a)


needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None,
                                reason="nvcc (CUDA toolkit) is not installed")


@pytest.fixture(scope="module")
def shim(tmp_path_factory) -> CUDABackend:
    backend = CUDABackend()
    backend._xp = NumPyAsCuPy(tmp_path_factory.mktemp("cxx"))
    backend._reason = None
    return backend


CPU = CPUBackend()

# -- the whole contract ----------------------------------------------------------------------


@needs_gxx
def test_shim_backend_passes_check_backend(shim):
    testing = pytest.importorskip("needle.testing")
    report = testing.check_backend(shim)
    assert report.ok, str(report)
    assert {"logsumexp", "conv", "sgd_update", "adam_update"} <= report.methods


# -- host-side logic of the fused paths ---------------------------------------------------------


@st.composite
def _array_and_axes(draw):
    shape = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple))
    reduced = draw(st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)))
    axes = tuple(i for i, r in enumerate(reduced) if r) or None
    seed = draw(st.integers(0, 2**31 - 1))
    dtype = draw(st.sampled_from(["float32", "float64"]))
    return np.random.RandomState(seed).randn(*shape).astype(dtype), axes


@given(_array_and_axes(), st.booleans())
def test_logsumexp_moves_axes_and_reshapes_like_cpu(shim, case, keepdims):
    a, axes = case
    got = shim.logsumexp(a, axes, keepdims)
    want = CPU.logsumexp(a, axes, keepdims)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_logsumexp_takes_the_reduction_path_for_few_long_rows_and_other_dtypes(shim):
    rows = np.array([[0.0, -np.inf] + [1.0] * 9000, [-np.inf] * 9002, [np.inf] + [0.0] * 9001])
    with np.errstate(divide="ignore", invalid="ignore"):
        got = shim.logsumexp(rows, (1,))
        want = CPU.logsumexp(rows.copy(), (1,))
    np.testing.assert_array_equal(got[1:], [-np.inf, np.inf])
    np.testing.assert_allclose(got, want)
    half = np.random.RandomState(1).randn(3, 5).astype(np.float16)
    got16 = shim.logsumexp(half, (0,), keepdims=True)
    assert got16.dtype == np.float16 and got16.shape == (1, 5)
    np.testing.assert_allclose(got16, CPU.logsumexp(half, (0,), True), rtol=1e-3)


@given(_array_and_axes())
def test_log_softmax_and_its_gradient_along_any_axis(shim, case):
    a, axes = case
    axis = -1 if axes is None else axes[0]
    y = shim.log_softmax(a, axis)
    want = a - CPU.logsumexp(a, (axis % a.ndim,), keepdims=True)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    g = np.random.RandomState(2).randn(*a.shape).astype(a.dtype)
    dz = shim.log_softmax_grad(y, g, axis)
    np.testing.assert_allclose(dz, g - np.exp(want) * g.sum(axis=axis, keepdims=True),
                               rtol=1e-5, atol=1e-6)


def test_softmax_cross_entropy_mean_and_rows(shim):
    rs = np.random.RandomState(3)
    z, y = rs.randn(6, 4).astype(np.float32), rs.randint(0, 4, 6)
    lse = CPU.logsumexp(z, (1,))
    rows, d_rows = shim.softmax_cross_entropy(z, y, reduction="none")
    np.testing.assert_allclose(rows, lse - z[np.arange(6), y], rtol=1e-6)
    loss, dz = shim.softmax_cross_entropy(z, y)
    np.testing.assert_allclose(loss, rows.mean(), rtol=1e-6)
    np.testing.assert_allclose(dz, d_rows / 6, rtol=1e-6)
    with pytest.raises(ValueError, match=r"\(N, C\).*\(6, 4\) and \(5,\)"):
        shim.softmax_cross_entropy(z, y[:5])
    # other dtypes take the generic path of the backend contract
    half, d_half = shim.softmax_cross_entropy(z.astype(np.float16), y)
    assert half.dtype == d_half.dtype == np.float16
    np.testing.assert_allclose(half, loss, rtol=1e-2)
    np.testing.assert_allclose(d_half, dz, atol=2e-3)


@given(rows=st.integers(1, 70), cols=st.integers(1, 80), dtype=st.sampled_from(["float32", "float64"]),
       running=st.booleans(), transposed=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_batch_norm_column_kernels_match_cpu(shim, rows, cols, dtype, running, transposed, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((cols, rows)).T if transposed  # a non-contiguous input
         else rng.standard_normal((rows, cols))).astype(dtype) * 3 + 1
    w, b = rng.uniform(0.5, 2, cols).astype(dtype), rng.standard_normal(cols).astype(dtype)
    stats = [(np.zeros(cols, dtype), np.ones(cols, dtype)) for _ in range(2)]
    extra = stats[0] if running else (None, None)
    got = shim.batch_norm(x, w, b, 1e-5, *extra, 0.1)
    want = CPU.batch_norm(x, w, b, 1e-5, *(stats[1] if running else (None, None)), 0.1)
    tol = {"rtol": 1e-4, "atol": 1e-4} if dtype == "float32" else {"rtol": 1e-10, "atol": 1e-10}
    for name, g_arr, w_arr in zip(("y", "mean", "var", "x_hat", "inv_std"), got, want):
        assert g_arr.shape == w_arr.shape and g_arr.dtype == dtype, name
        np.testing.assert_allclose(g_arr, w_arr, err_msg=name, **tol)
    if running:
        for g_arr, w_arr in zip(stats[0], stats[1]):
            np.testing.assert_allclose(g_arr, w_arr, **tol)
    g = rng.standard_normal((rows, cols)).astype(dtype)
    got = shim.batch_norm_backward(g, got[3], got[4], w)
    want = CPU.batch_norm_backward(g, want[3], want[4], w)
    for name, g_arr, w_arr in zip(("dx", "dweight", "dbias"), got, want):
        assert g_arr.shape == w_arr.shape and g_arr.dtype == dtype, name
        np.testing.assert_allclose(g_arr, w_arr, err_msg=name, **tol)


def test_batch_norm_takes_the_generic_path_where_the_kernel_does_not_fit(shim, monkeypatch):
    def no_kernel(*args):
        raise AssertionError("the column kernel was launched")

    monkeypatch.setattr(shim, "_column_kernel", no_kernel)
    half = np.ones((4, 3), np.float16)
    assert shim.batch_norm(half, half[0], half[0], 1e-5)[0].dtype == np.float16  # no kernel
    with np.errstate(invalid="ignore", divide="ignore"):
        assert shim.batch_norm(np.ones((0, 3)), np.ones(3), np.ones(3), 1e-5)[0].shape == (0, 3)
    x, w, b = np.arange(12.0).reshape(4, 3), np.ones(3), np.zeros(3)
    mean32, var32 = np.zeros(3, np.float32), np.ones(3, np.float32)  # not x's dtype
    shim.batch_norm(x, w, b, 1e-5, mean32, var32, 0.5)
    np.testing.assert_allclose(mean32, 0.5 * x.mean(0))
    one = np.ones((5, 1))  # a 0-d weight and bias for one column: generic path, no error
    np.testing.assert_allclose(shim.batch_norm(one, np.array(2.0), np.array(1.0), 1e-5)[0], 1.0)
    g = np.ones((4, 3))
    dx, _, _ = shim.batch_norm_backward(g, x, np.ones((4, 3)), w)  # (N, D) inv_std
    np.testing.assert_allclose(dx, CPU.batch_norm_backward(g, x, np.ones((4, 3)), w)[0])


@given(st.tuples(st.integers(1, 3), st.integers(1, 3)), st.tuples(st.integers(1, 3), st.integers(1, 3)),
       st.tuples(st.integers(1, 2), st.integers(1, 2)), st.integers(0, 2**31 - 1))
def test_conv_im2col_col2im_match_cpu(shim, kernel, stride, dilation, seed):
    rs = np.random.RandomState(seed)
    reach = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    x = rs.randn(2, reach[0] + rs.randint(3), reach[1] + rs.randint(3), 3)
    w = rs.randn(*kernel, 3, 2)
    np.testing.assert_allclose(shim.conv(x, w, stride, dilation),
                               CPU.conv(x, w, stride, dilation), rtol=1e-10)
    cols = shim.im2col(x, kernel, stride, dilation)
    np.testing.assert_array_equal(cols, CPU.im2col(x, kernel, stride, dilation))
    g = rs.randn(*cols.shape)
    np.testing.assert_allclose(shim.col2im(g, x.shape, kernel, stride, dilation),
                               CPU.col2im(g, x.shape, kernel, stride, dilation), rtol=1e-12)
    xt = np.transpose(rs.randn(3, 5, 6, 2), (3, 1, 2, 0))  # a non-contiguous input
    w2 = rs.randn(3, 3, 3, 2)
    np.testing.assert_allclose(shim.conv(xt, w2, (1, 1)), CPU.conv(xt, w2, (1, 1)), rtol=1e-10)


# -- optimizer kernels: the CUDA bodies themselves, compiled for the CPU -------------------------


@needs_gxx
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_kernel_body_matches_cpu_backend(shim, dtype, momentum):
    rs = np.random.RandomState(4)
    p0, grad = rs.randn(5, 3).astype(dtype), rs.randn(5, 3).astype(dtype)
    p_gpu, p_cpu, u_gpu, u_cpu = p0.copy(), p0.copy(), None, None
    for _ in range(3):
        u_gpu = shim.sgd_update(p_gpu, grad, u_gpu, 0.1, momentum, 0.01)
        u_cpu = CPU.sgd_update(p_cpu, grad, u_cpu, 0.1, momentum, 0.01)
    np.testing.assert_allclose(p_gpu, p_cpu, rtol=1e-5 if dtype == "float32" else 1e-12)
    assert (u_gpu is None) == (momentum == 0)
    assert not np.array_equal(p_gpu, p0)


@needs_gxx
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adam_kernel_body_matches_cpu_backend(shim, dtype):
    rs = np.random.RandomState(5)
    p0, grad = rs.randn(4, 6).astype(dtype), rs.randn(1, 6).astype(dtype)  # a broadcast grad
    p_gpu, p_cpu = p0.copy(), p0.copy()
    state_gpu = [np.zeros_like(p0), np.zeros_like(p0)]
    state_cpu = [np.zeros_like(p0), np.zeros_like(p0)]
    full, grad_before = np.broadcast_to(grad, p0.shape).copy(), grad.copy()
    for t in range(1, 4):
        shim.adam_update(p_gpu, grad, *state_gpu, 0.01, 0.9, 0.999, 1e-8, 0.1, t)
        CPU.adam_update(p_cpu, full, *state_cpu, 0.01, 0.9, 0.999, 1e-8, 0.1, t)
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(p_gpu, p_cpu, rtol=tol)
    np.testing.assert_allclose(state_gpu[1], state_cpu[1], rtol=tol)
    np.testing.assert_array_equal(grad, grad_before)  # the contract: grad is read only


# -- indexing, conversion and randomness --------------------------------------------------------


def test_host_index_arrays_and_values_are_moved_before_indexing(shim, monkeypatch):
    moved = []
    real = shim.xp.asarray

    def spy(x, *args, **kwargs):
        moved.append(type(x).__name__)
        return real(x, *args, **kwargs)

    monkeypatch.setattr(shim.xp, "asarray", spy, raising=False)
    a = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(shim.getitem(a, (np.array([2, 0]), [1, 3])), a[[2, 0], [1, 3]])
    assert moved == ["ndarray", "list"]
    out = np.zeros(5)
    shim.add_at(out, np.array([1, 1, 4]), np.ones(3))
    np.testing.assert_array_equal(out, [0, 2, 0, 0, 1])
    shim.setitem(out, slice(0, 2), np.array([7.0, 8.0]))
    assert out[:2].tolist() == [7.0, 8.0]


def test_astype_one_hot_and_random_draws(shim):
    assert shim.astype(np.array([1.7, 2.2]), "int64").tolist() == [1, 2]
    np.testing.assert_array_equal(shim.one_hot(3, np.array([2.0, 0.0]), np.dtype("float32")),
                                  [[0, 0, 1], [1, 0, 0]])
    shim.seed(7)
    a = shim.rand((3, 2), np.dtype("float32"))
    shim.seed(7)
    assert np.array_equal(a, shim.rand((3, 2), np.dtype("float32"))) and a.dtype == np.float32
    assert shim.randn((4,), np.dtype("float16")).dtype == np.float16
    b = shim.randb((1000,), 0.3, np.dtype("float32"))
    assert set(np.unique(b)) <= {0.0, 1.0} and 0.2 < b.mean() < 0.4
    assert sorted(shim.permutation(5).tolist()) == [0, 1, 2, 3, 4]


def test_array_types_follow_the_loaded_module(shim, monkeypatch):
    assert shim.array_types == (np.ndarray,)
    fresh = CUDABackend()
    monkeypatch.delitem(sys.modules, "cupy", raising=False)
    assert fresh.array_types == ()


# -- the whole stack: ops and autograd on the shim device --------------------------------------------


def test_ops_and_backward_on_the_shim_device_match_cpu(shim, monkeypatch):
    from needle.device import REGISTRY

    monkeypatch.setitem(REGISTRY._backends, "cuda", shim)
    monkeypatch.setattr(ndl.cuda(), "_backend", shim)
    rs = np.random.RandomState(6)
    x_np, w_np, k_np = rs.randn(4, 5), rs.randn(5, 3), rs.randn(3, 3, 2, 2)
    img_np = rs.randn(2, 5, 5, 2)
    results = {}
    for dev in (ndl.cpu(), ndl.cuda()):
        x, w = (ndl.Tensor(v, device=dev, dtype="float64") for v in (x_np, w_np))
        k, img = (ndl.Tensor(v, device=dev, dtype="float64") for v in (k_np, img_np))
        h = ndl.logsoftmax((x @ w).relu() + 1)[ndl.Tensor([0, 2, 3], device=dev, dtype="int64")]
        y = ndl.conv(img, k, stride=2, padding=1)
        loss = ndl.logsumexp(h, axes=(1,)).sum() + (y * y).sum() + ndl.max(x, 1).sum()
        loss.backward()
        results[dev.name] = [t.numpy() for t in (loss, x.grad, w.grad, k.grad, img.grad)]
    for got, want in zip(results["cuda"], results["cpu"]):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_conv_options_and_pooling_on_the_shim_device_match_cpu(shim, monkeypatch):
    from needle.device import REGISTRY

    monkeypatch.setitem(REGISTRY._backends, "cuda", shim)
    monkeypatch.setattr(ndl.cuda(), "_backend", shim)
    rs = np.random.RandomState(7)
    img_np, k_np = rs.randn(2, 7, 6, 3), rs.randn(3, 2, 3, 2)
    results = {}
    for dev in (ndl.cpu(), ndl.cuda()):
        img, k = (ndl.Tensor(v, device=dev, dtype="float64") for v in (img_np, k_np))
        y = ndl.conv(img, k, stride=(2, 1), padding=(1, 0), dilation=(1, 2))
        nchw = img.permute((0, 3, 1, 2))
        pooled = ndl.max_pool2d(nchw, (2, 3), 1, 1) * ndl.avg_pool2d(nchw, 3, 2, 1).sum()
        loss = (y * y).sum() + pooled.sum()
        loss.backward()
        results[dev.name] = [t.numpy() for t in (loss, k.grad, img.grad)]
    for got, want in zip(results["cuda"], results["cpu"]):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


# -- the device code compiles -------------------------------------------------------------------------


@needs_nvcc
def test_cuda_sources_compile_with_nvcc(tmp_path):
    """Row kernels as NVRTC gets them (no headers), element-wise bodies wrapped as CuPy does."""
    parts = [kernels.ROW_SOURCE, kernels.COLUMN_SOURCE]
    for name, (ins, outs, body, _) in kernels.ELEMENTWISE.items():
        for ctype in ("float", "double"):
            arrays = [True] + [False] * (len(ins.split(",")) - 1) + [True] * len(outs.split(","))
            parts.append(_cxx_source(ins, outs, body, ctype, arrays, True, f"{name}_{ctype}"))
    (tmp_path / "all.cu").write_text("\n".join(parts))
    done = subprocess.run(["nvcc", "--ptx", "-arch=sm_80", "-o", str(tmp_path / "all.ptx"),
                           str(tmp_path / "all.cu")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    ptx = (tmp_path / "all.ptx").read_text()
    for kernel in (*kernels.ROW_KERNEL_NAMES, *kernels.COLUMN_KERNEL_NAMES, "adam_float",
                   "sgd_momentum_double"):
        assert f".entry {kernel}(" in ptx


def test_pytorch_habit_ops_on_the_shim_device_match_cpu(shim, monkeypatch):
    """Masks, integer arrays, comparisons, where, cat, sin/cos, prod and argmax through the
    CUDA backend's host code (index arrays travel to the device, sin/cos/prod are CuPy's)."""
    from needle.device import REGISTRY

    monkeypatch.setitem(REGISTRY._backends, "cuda", shim)
    monkeypatch.setattr(ndl.cuda(), "_backend", shim)
    x_np = np.random.RandomState(7).uniform(-2, 2, (4, 5))
    results = {}
    for dev in (ndl.cpu(), ndl.cuda()):
        x = ndl.Tensor(x_np, device=dev)
        picked = x[x > 0].sum() + x[[0, 0, 3]].sum() + x[:, np.array([True, False] * 2 + [True])]
        mixed = ndl.where(x < 0, x.sin(), x.cos()) * ndl.cat([x[:2], x[2:]], dim=0)
        loss = picked.sum() + mixed.sum() + x.prod(1).sum() + x.clamp(-1, 1).abs().mean()
        loss.backward()
        results[dev.name] = [loss.numpy(), x.grad.numpy(), x.argmax(1).numpy(),
                             (x > 0).any(0).numpy(), (x != x[0]).numpy()]
    for got, want in zip(results["cuda"], results["cpu"]):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
