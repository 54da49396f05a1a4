"""The cuda device: unusable here with the right reason, and equal to cpu on a GPU.

Without a GPU (CI) the first half runs: each reason the backend gives (CuPy
missing, broken, no driver, old driver, no GPU) is produced for real or through a
stand-in ``cupy`` module, and needle keeps working. With a GPU the second half
runs the same hypothesis-drawn inputs through cpu and cuda, for every op, the
fused kernels and a few training steps; without one it skips with the reason.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import types

import hypothesis.strategies as st
import needle as ndl
import numpy as np
import pytest
from hypothesis import given
from hypothesis.extra import numpy as npst
from needle.device import REGISTRY
from needle_backend_cpu import CPUBackend
from needle_backend_cuda import CUDABackend, _probe

# -- without a usable GPU --------------------------------------------------------------------


class CUDARuntimeError(RuntimeError):
    """Named like CuPy's, whose text starts with the CUDA error name."""


def fake_cupy(driver: int = 12040, runtime: int = 12040, count: int = 1,
              count_error: str | None = None, nvrtc: bool = True) -> types.ModuleType:
    """A ``cupy`` module whose runtime answers as a given machine would."""

    def get_device_count() -> int:
        if count_error is not None:
            raise CUDARuntimeError(count_error)
        return count

    def nvrtc_version() -> tuple[int, int]:
        if not nvrtc:
            raise RuntimeError('Failure finding "libnvrtc.so.12": No such file')
        return (12, 4)

    mod = types.ModuleType("cupy")
    mod.ndarray = type("ndarray", (), {})
    mod.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(
        driverGetVersion=lambda: driver, runtimeGetVersion=lambda: runtime,
        getDeviceCount=get_device_count), nvrtc=types.SimpleNamespace(getVersion=nvrtc_version))
    return mod


@pytest.fixture
def fresh_cuda(monkeypatch):
    """A new CUDABackend in the registry as 'cuda' (restored afterwards)."""
    backend = CUDABackend()
    monkeypatch.setitem(REGISTRY._backends, "cuda", backend)
    monkeypatch.setattr(ndl.cuda(), "_backend", None)
    return backend


CUPY_INSTALLED = importlib.util.find_spec("cupy") is not None


def test_importing_needle_and_the_backend_never_imports_cupy():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, *args):\n"
        "        if name.split('.')[0] == 'cupy':\n"
        "            raise AssertionError('cupy imported at import time')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import needle as ndl, needle_backend_cuda, needle.backend_ndarray as nd\n"
        "d = ndl.cuda()\n"
        "x = ndl.Tensor([1.0, 2.0])\n"
        "assert (x * 2).sum().numpy() == 6 and not isinstance(x.numpy(), type(None))\n"
        "assert isinstance(x.cached_data, nd.NDArray)\n"
        "print('ok', needle_backend_cuda.CUDABackend().array_types)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok ()"


@pytest.mark.skipif(CUPY_INSTALLED, reason="CuPy is installed here")
def test_without_cupy_the_reason_names_what_to_install():
    reason = CUDABackend().availability()
    assert reason.startswith("CuPy is not installed")
    assert "needle-backend-cuda[cuda12]" in reason and "[cuda13]" in reason


@pytest.mark.skipif(CUPY_INSTALLED, reason="CuPy is installed here")
def test_cuda_device_is_disabled_and_says_why_through_needle():
    dev = ndl.cuda()
    assert isinstance(dev, ndl.Device) and not dev.enabled()
    with pytest.raises(ndl.DeviceError, match=r"'cuda' is installed but not usable here: "
                                              r"CuPy is not installed"):
        ndl.Tensor([1.0, 2.0], device=dev)
    with pytest.raises(ndl.DeviceError, match="CuPy is not installed"):
        ndl.Tensor([1.0]).to("cuda")
    row = {info.name: info for info in ndl.backends()}["cuda"]
    assert not row.usable and row.distribution.startswith("needle-backend-cuda")
    assert "CuPy is not installed" in row.reason and "unusable" in str(row)
    assert ndl.cuda() not in ndl.all_devices() and ndl.cpu() in ndl.all_devices()
    ndl.manual_seed(0)  # seeds the usable backends only


@pytest.mark.parametrize("machine, expected", [
    (dict(driver=0), "no NVIDIA CUDA driver was found"),
    (dict(count_error="cudaErrorNoDevice: no CUDA-capable device is detected"),
     "no GPU is visible (device count 0"),
    (dict(count=0), "no GPU is visible (device count 0"),
    (dict(driver=12020, runtime=13000,
          count_error="cudaErrorInsufficientDriver: CUDA driver version is insufficient"),
     "supports CUDA 12.2 only, older than the CUDA 13.0"),
    (dict(count_error="cudaErrorUnknown: unknown error"),
     "failed to start (CUDARuntimeError: cudaErrorUnknown"),
    (dict(nvrtc=False), "cannot load NVRTC, the CUDA run-time compiler"),
], ids=["no-driver", "no-device-error", "zero-devices", "old-driver", "other-error", "no-nvrtc"])
def test_each_machine_state_gets_its_own_reason(monkeypatch, fresh_cuda, machine, expected):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(**machine))
    reason = fresh_cuda.availability()
    assert expected in reason
    if "older" in reason or "NVRTC" in reason:
        assert "needle-backend-cuda[cuda12]" in reason
    assert not ndl.cuda().enabled()
    with pytest.raises(ndl.DeviceError, match="installed but not usable here"):
        ndl.Tensor([1.0], device="cuda")
    row = {info.name: info for info in ndl.backends()}["cuda"]
    assert not row.usable and expected in row.reason
    assert fresh_cuda.device_count() == 0


def test_a_usable_machine_has_no_reason(monkeypatch):
    fake = fake_cupy(count=2)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    backend = CUDABackend()
    assert backend.availability() is None and backend.device_count() == 2
    assert backend.array_types == (fake.ndarray,)


@pytest.mark.parametrize("error, expected", [
    (ModuleNotFoundError("No module named 'cupy'", name="cupy"), "CuPy is not installed"),
    (ModuleNotFoundError("No module named 'fastrlock'", name="fastrlock"),
     "CuPy is installed but fails to import (ModuleNotFoundError: No module named 'fastrlock')"),
    (ImportError("libnvrtc.so.12: cannot open shared object file"),
     "fails to import (ImportError: libnvrtc.so.12: cannot open shared object file)"),
])
def test_import_failures_are_told_apart(monkeypatch, fresh_cuda, error, expected):
    def broken():
        raise error

    monkeypatch.setattr(_probe, "import_cupy", broken)
    assert expected in fresh_cuda.availability()
    assert "cuda12" in fresh_cuda.availability()
    with pytest.raises(ndl.DeviceError, match="not usable here"):
        ndl.cuda().backend  # noqa: B018


def test_the_backend_reports_the_reason_when_used_directly(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(driver=0))
    with pytest.raises(ndl.BackendUnavailable, match="cannot run here: .*no NVIDIA CUDA driver"):
        CUDABackend().full((2,), 0.0, np.dtype("float32"))


# -- with a GPU: cpu and cuda agree ----------------------------------------------------------

_CUDA_ROW = {info.name: info for info in ndl.backends()}.get("cuda")
GPU_REASON = "needle-backend-cuda is not installed" if _CUDA_ROW is None else _CUDA_ROW.reason
gpu = pytest.mark.skipif(GPU_REASON is not None, reason=f"cuda: {GPU_REASON}")

F32 = dict(rtol=2e-4, atol=2e-5)


def _run_both(fn, arrays, grad: bool = True):
    """fn on cpu and cuda tensors made from the same arrays: outputs and input gradients."""
    results = []
    for dev in (ndl.cpu(), ndl.cuda()):
        xs = [ndl.Tensor(a, device=dev, dtype=a.dtype) for a in arrays]
        out = fn(*xs)
        grads = []
        if grad and out.dtype.kind == "f":
            g = np.asarray(np.random.RandomState(99).randn(*out.shape)).astype(out.dtype)
            out.backward(ndl.Tensor(g, device=dev, dtype=out.dtype))
            grads = [x.grad.numpy() for x in xs]
        assert out.device == dev
        results.append((out.numpy(), grads))
    return results


def _assert_agree(fn, arrays, grad: bool = True, tol=None):
    (want, want_grads), (got, got_grads) = _run_both(fn, arrays, grad)
    tol = tol or F32
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, **tol)
    for g_cuda, g_cpu in zip(got_grads, want_grads):
        np.testing.assert_allclose(g_cuda, g_cpu, **tol)


def _arr(data, shape, low=-2.0, high=2.0):
    seed = data.draw(st.integers(0, 2**31 - 1), label="seed")
    return np.asarray(np.random.RandomState(seed).uniform(low, high, shape)).astype(np.float32)


SHAPES = npst.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5)
MATRIX_SHAPES = npst.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=5)


def _unary(fn, low=-2.0, high=2.0, shapes=SHAPES):
    def case(data):
        shape = data.draw(shapes, label="shape")
        _assert_agree(fn, [_arr(data, shape, low, high)])
    return case


def _binary(fn, low_b=-2.0, high_b=2.0, low_a=-2.0):
    def case(data):
        sa, sb = data.draw(npst.mutually_broadcastable_shapes(num_shapes=2, max_dims=3,
                                                               max_side=4)).input_shapes
        _assert_agree(fn, [_arr(data, sa, low_a), _arr(data, sb, low_b, high_b)])
    return case


def _reduction(fn):
    def case(data):
        shape = data.draw(SHAPES, label="shape")
        axes = data.draw(st.none() | st.sets(st.integers(0, len(shape) - 1), min_size=1)
                         .map(lambda s: tuple(sorted(s))), label="axes")
        _assert_agree(lambda x: fn(x, axes), [_arr(data, shape)])
    return case


def _matmul(data):
    batch = data.draw(st.sampled_from([(), (2,), (3, 1)]), label="batch")
    m, k, n = (data.draw(st.integers(1, 6)) for _ in range(3))
    a, b = _arr(data, batch + (m, k)), _arr(data, (k, n) if len(batch) != 1 else batch + (k, n))
    _assert_agree(ndl.matmul, [a, b])


def _conv(data):
    stride, padding = data.draw(st.integers(1, 3)), data.draw(st.integers(0, 2))
    k = data.draw(st.integers(1, 3))
    h = data.draw(st.integers(k, 7))
    x, w = _arr(data, (2, h, h + 1, 3)), _arr(data, (k, k, 3, 4))
    _assert_agree(lambda a, b: ndl.conv(a, b, stride, padding), [x, w])


def _getitem(data):
    shape = data.draw(MATRIX_SHAPES, label="shape")
    idx = np.random.RandomState(0).randint(0, shape[0], 5)
    _assert_agree(lambda x: x[1:, ::2] * 2 + x[idx][:1].sum(), [_arr(data, shape)])


def _split_stack(data):
    shape = data.draw(MATRIX_SHAPES, label="shape")
    axis = data.draw(st.integers(0, len(shape) - 1))
    _assert_agree(lambda x: ndl.stack([p * (i + 1) for i, p in enumerate(ndl.split(x, axis))],
                                      axis), [_arr(data, shape)])


OP_CASES = {
    "negate": _unary(lambda x: -x),
    "exp": _unary(ndl.exp),
    "log": _unary(ndl.log, 0.1, 3.0),
    "sqrt": _unary(ndl.sqrt, 0.1, 3.0),
    "relu": _unary(ndl.relu),
    "tanh": _unary(ndl.tanh),
    "sigmoid": _unary(ndl.sigmoid, -8.0, 8.0),
    "scalars": _unary(lambda x: ((x + 1.5) * -2 / 3) ** 2 - 1 / (x * x + 1)),
    "power_scalar": _unary(lambda x: x ** 0.5, 0.1, 3.0),
    "astype": _unary(lambda x: x.astype("float64").exp().astype("float32")),
    "compare": _unary(lambda x: (x < 0.5) + (x >= 0.0) * 2 + x.eq(x) + (x > 1) - (x <= 1)),
    "add": _binary(lambda a, b: a + b),
    "subtract": _binary(lambda a, b: a - b),
    "multiply": _binary(lambda a, b: a * b),
    "divide": _binary(lambda a, b: a / b, 0.5, 2.0),
    "power": _binary(lambda a, b: a ** b, -1.5, 1.5, low_a=0.2),
    "summation": _reduction(lambda x, axes: ndl.summation(x, axes)),
    "max": _reduction(lambda x, axes: ndl.max(x, axes)),
    "logsumexp": _reduction(lambda x, axes: ndl.logsumexp(x, axes)),
    "logsoftmax": _unary(lambda x: ndl.logsoftmax(x * 4, axis=0)),
    "reshape": _unary(lambda x: x.reshape((-1,)) * 2),
    "transpose": _unary(lambda x: x.transpose() * 2, shapes=MATRIX_SHAPES),
    "permute": _unary(lambda x: x.permute(tuple(reversed(range(x.ndim)))) * 2),
    "broadcast_to": _unary(lambda x: x.broadcast_to((2,) + x.shape) * 2),
    "flip": _unary(lambda x: ndl.flip(x, (0,)) * 2),
    "pad": _unary(lambda x: ndl.pad(x, tuple((1, 2) for _ in x.shape)) * 2),
    "dilate": _unary(lambda x: ndl.undilate(ndl.dilate(x, (0,), 2) * 3, (0,), 2)
                     + ndl.dilate(x, (0,), 1).sum()),
    "getitem": _getitem,
    "mask_index": _unary(lambda x: x[x > 0] * 2 + x[x.numpy() < 0].sum()),
    "sin_cos_abs": _unary(lambda x: ndl.sin(x) * ndl.cos(x) + abs(x)),
    "maximum_minimum": _binary(lambda a, b: ndl.maximum(a, b) * 2 + ndl.minimum(a, b)),
    "where_clamp": _binary(lambda a, b: ndl.where(a > b, a, b * 3) + a.clamp(-1, 1)),
    "statistics": _unary(lambda x: x.mean(0) + x.var(dim=0) + x.std(axis=0, keepdim=True).sum()
                         + x.min() + x.prod(0)),
    "argmax_any": _unary(lambda x: x.argmax(0) + x.argmin(-1).sum() + (x > 0).any(0)),
    "softmax": _unary(lambda x: x.softmax(-1) * 3),
    "cat_views": _unary(lambda x: ndl.cat([x, x * 2], dim=-1).unsqueeze(0).flatten()
                        .view(2, -1).squeeze() * 2),
    "split_stack": _split_stack,
    "matmul": _matmul,
    "conv": _conv,
}


@gpu
@pytest.mark.parametrize("op", sorted(OP_CASES))
@given(data=st.data())
def test_every_op_agrees_with_cpu(op, data):
    OP_CASES[op](data)


@gpu
def test_cuda_backend_passes_check_backend():
    from needle.testing import check_backend

    report = check_backend("cuda")
    assert report.ok, str(report)


@gpu
@given(st.data())
def test_fused_logsumexp_kernel_matches_cpu_including_inf_and_nan(data):
    b, cpu = ndl.cuda().backend, CPUBackend()
    dtype = data.draw(st.sampled_from(["float32", "float64"]))
    shape = data.draw(npst.array_shapes(min_dims=1, max_dims=4, max_side=40))
    a = _arr(data, shape, -30, 30).astype(dtype)
    flat = a.reshape(-1)
    for special in data.draw(st.lists(st.sampled_from([np.inf, -np.inf, np.nan]), max_size=3)):
        flat[data.draw(st.integers(0, flat.size - 1))] = special
    reduced = data.draw(st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)))
    axes = tuple(i for i, r in enumerate(reduced) if r) or None
    keepdims = data.draw(st.booleans())
    with np.errstate(all="ignore"):
        want = cpu.logsumexp(a.copy(), axes, keepdims)
    got = b.to_numpy(b.logsumexp(b.array(a, a.dtype), axes, keepdims))
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == "float32" else 1e-12)


@gpu
def test_fused_log_softmax_and_softmax_cross_entropy_kernels():
    b = ndl.cuda().backend
    rs = np.random.RandomState(0)
    for rows, cols in ((1, 1), (7, 10), (300, 1000), (3, 5000)):
        z = (rs.randn(rows, cols) * 10).astype(np.float32)
        y = rs.randint(0, cols, rows)
        lse = CPUBackend().logsumexp(z, (1,), keepdims=True)
        logp = b.to_numpy(b.log_softmax(b.array(z, z.dtype), -1))
        np.testing.assert_allclose(logp, z - lse, rtol=1e-4, atol=1e-4)
        g = rs.randn(rows, cols).astype(np.float32)
        dz = b.to_numpy(b.log_softmax_grad(b.array(z - lse, z.dtype), b.array(g, g.dtype), -1))
        np.testing.assert_allclose(dz, g - np.exp(z - lse) * g.sum(1, keepdims=True),
                                   rtol=1e-4, atol=1e-4)
        loss, dlogits = b.softmax_cross_entropy(b.array(z, z.dtype), b.array(y, np.int64))
        want = (lse[:, 0] - z[np.arange(rows), y]).mean()
        np.testing.assert_allclose(float(loss), want, rtol=1e-5)
        softmax = np.exp(z - lse)
        softmax[np.arange(rows), y] -= 1
        np.testing.assert_allclose(b.to_numpy(dlogits), softmax / rows, rtol=1e-4, atol=1e-7)
    bad, _ = b.softmax_cross_entropy(b.array(z[:2], z.dtype), b.array([0, cols], np.int64),
                                     reduction="none")
    assert np.isnan(b.to_numpy(bad)[1]) and not np.isnan(b.to_numpy(bad)[0])


@gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batch_norm_column_kernels_match_cpu(dtype):
    b, cpu = ndl.cuda().backend, CPUBackend()
    rs = np.random.RandomState(2)
    tol = dict(rtol=2e-4, atol=2e-4) if dtype == "float32" else dict(rtol=1e-10, atol=1e-10)
    # one column, a partial block of 32, several blocks, one row, many rows
    for rows, cols in ((5, 1), (128, 50), (64, 1100), (1, 40), (3000, 33)):
        x = (rs.randn(rows, cols) * 3 + 1).astype(dtype)
        w, bias = rs.uniform(0.5, 2, cols).astype(dtype), rs.randn(cols).astype(dtype)
        run_gpu = [b.array(np.full(cols, v, dtype), dtype) for v in (0.0, 1.0)]
        run_cpu = [np.full(cols, v, dtype) for v in (0.0, 1.0)]
        got = b.batch_norm(b.array(x, dtype), b.array(w, dtype), b.array(bias, dtype), 1e-5,
                           *run_gpu, 0.1)
        want = cpu.batch_norm(x, w, bias, 1e-5, *run_cpu, 0.1)
        for name, g_arr, w_arr in zip(("y", "mean", "var", "x_hat", "inv_std"), got, want):
            assert g_arr.shape == w_arr.shape, name
            np.testing.assert_allclose(b.to_numpy(g_arr), w_arr, err_msg=name, **tol)
        for g_arr, w_arr in zip(run_gpu, run_cpu):
            np.testing.assert_allclose(b.to_numpy(g_arr), w_arr, **tol)
        g = rs.randn(rows, cols).astype(dtype)
        got = b.batch_norm_backward(b.array(g, dtype), got[3], got[4], b.array(w, dtype))
        want = cpu.batch_norm_backward(g, want[3], want[4], w)
        for name, g_arr, w_arr in zip(("dx", "dweight", "dbias"), got, want):
            assert g_arr.shape == w_arr.shape, name
            np.testing.assert_allclose(b.to_numpy(g_arr), w_arr, err_msg=name, **tol)


@gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fused_optimizer_kernels_match_cpu(dtype):
    b, cpu = ndl.cuda().backend, CPUBackend()
    rs = np.random.RandomState(1)
    p0, grad = rs.randn(33, 17).astype(dtype), rs.randn(33, 17).astype(dtype)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == "float32" else dict(rtol=1e-12)
    for momentum in (0.0, 0.9):
        p, pc, u, uc = b.array(p0, p0.dtype), p0.copy(), None, None
        g = b.array(grad, grad.dtype)
        for _ in range(3):
            u = b.sgd_update(p, g, u, 0.1, momentum, 0.01)
            uc = cpu.sgd_update(pc, grad, uc, 0.1, momentum, 0.01)
        np.testing.assert_allclose(b.to_numpy(p), pc, **tol)
        np.testing.assert_array_equal(b.to_numpy(g), grad)
    p, pc = b.array(p0, p0.dtype), p0.copy()
    m, v = b.full(p0.shape, 0.0, p0.dtype), b.full(p0.shape, 0.0, p0.dtype)
    mc, vc = np.zeros_like(p0), np.zeros_like(p0)
    for t in range(1, 4):
        b.adam_update(p, g, m, v, 0.01, 0.9, 0.999, 1e-8, 0.1, t)
        cpu.adam_update(pc, grad, mc, vc, 0.01, 0.9, 0.999, 1e-8, 0.1, t)
    np.testing.assert_allclose(b.to_numpy(p), pc, **tol)


@gpu
def test_seeds_tensor_moves_and_device_errors():
    ndl.manual_seed(5)
    a = ndl.cuda().rand(4, 3)
    ndl.manual_seed(5)
    assert np.array_equal(ndl.cuda().backend.to_numpy(a), ndl.cuda().backend.to_numpy(
        ndl.cuda().rand(4, 3)))
    x = ndl.Tensor(np.arange(6.0).reshape(2, 3), dtype="float32")
    g = x.to("cuda")
    assert g.device == ndl.cuda() and isinstance(g.cached_data, ndl.cuda().backend.array_types)
    assert isinstance(g.numpy(), np.ndarray)
    np.testing.assert_array_equal(g.to(ndl.cpu()).numpy(), x.numpy())
    with pytest.raises(ndl.NeedleError, match=r"different devices \(cpu\(\), cuda\(\)\)"):
        x + g
    assert ndl.cuda() in ndl.all_devices()
    assert ndl.cuda().backend.memory_info()["pool_used"] > 0


def _mlp_steps(dev, arrays, steps=3):
    x_np, y_np, w1_np, w2_np = arrays
    x = ndl.Tensor(x_np, device=dev, requires_grad=False)
    w1, w2 = (ndl.Tensor(w, device=dev) for w in (w1_np, w2_np))
    y = ndl.Tensor(np.eye(w2_np.shape[1], dtype=np.float32)[y_np], device=dev)
    losses = []
    for _ in range(steps):
        w1.grad = w2.grad = None
        logits = (x @ w1).relu() @ w2
        loss = (ndl.logsumexp(logits, (1,)) - (logits * y).sum((1,))).sum() / x.shape[0]
        loss.backward()
        losses.append(loss.numpy().item())
        for w in (w1, w2):
            w.data = w.data - w.grad.data * 0.5
    return losses, w1.numpy(), w2.numpy()


@gpu
def test_mlp_training_steps_agree():
    rs = np.random.RandomState(2)
    arrays = (rs.randn(64, 20).astype(np.float32), rs.randint(0, 5, 64),
              (rs.randn(20, 32) / 5).astype(np.float32), (rs.randn(32, 5) / 6).astype(np.float32))
    cpu_run, gpu_run = _mlp_steps(ndl.cpu(), arrays), _mlp_steps(ndl.cuda(), arrays)
    np.testing.assert_allclose(gpu_run[0], cpu_run[0], rtol=1e-4)
    assert gpu_run[0][-1] < gpu_run[0][0]
    for got, want in zip(gpu_run[1:], cpu_run[1:]):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5)


@gpu
def test_mlp_resnet_training_steps_agree():
    models = pytest.importorskip("needle.models")
    nn, optim = ndl.nn, ndl.optim
    rs = np.random.RandomState(3)
    x_np, y_np = rs.randn(128, 30).astype(np.float32), rs.randint(0, 10, 128)
    np.random.seed(0)
    cpu_model = models.MLPResNet(30, hidden_dim=64, num_blocks=2, drop_prob=0.0)
    np.random.seed(0)
    gpu_model = models.MLPResNet(30, hidden_dim=64, num_blocks=2, drop_prob=0.0).to("cuda")
    losses = {}
    for name, model in (("cpu", cpu_model), ("cuda", gpu_model)):
        dev = ndl.device(name)
        opt = optim.Adam(model.parameters(), lr=0.01, weight_decay=0.001)
        x, y = ndl.Tensor(x_np, device=dev), ndl.Tensor(y_np, device=dev, dtype="int64")
        run = []
        for _ in range(4):
            opt.reset_grad()
            loss = nn.SoftmaxLoss()(model(x), y)
            loss.backward()
            opt.step()
            run.append(loss.numpy().item())
        losses[name] = run
    np.testing.assert_allclose(losses["cuda"], losses["cpu"], rtol=1e-3)
    for pc, pg in zip(cpu_model.parameters(), gpu_model.parameters()):
        np.testing.assert_allclose(pg.numpy(), pc.numpy(), rtol=1e-3, atol=1e-4)
