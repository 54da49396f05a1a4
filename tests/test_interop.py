"""DLPack exchange (``Tensor.__dlpack__``, ``ndl.from_dlpack``) with NumPy, and
``.safetensors`` files through ``needle.save``/``needle.load``."""

from __future__ import annotations

import importlib.util
import os
import sys

import needle as ndl
import needle.nn as nn
import numpy as np
import pytest
from needle.serialization import CheckpointError


# -- DLPack ------------------------------------------------------------------------------
def test_numpy_reads_a_tensor_without_copying():
    t = ndl.Tensor(np.arange(6.0).reshape(2, 3), dtype="float64")
    a = np.from_dlpack(t)
    assert a.shape == (2, 3) and a.dtype == np.float64 and t.__dlpack_device__() == (1, 0)
    a[0, 0] = 42.0
    assert t.numpy()[0, 0] == 42.0


def test_from_dlpack_shares_memory_and_makes_a_leaf():
    a = np.arange(4, dtype=np.float32)
    t = ndl.from_dlpack(a)
    assert t.device == ndl.cpu() and t.dtype == np.float32 and not t.requires_grad
    assert t.op is None and t.inputs == ()
    a[1] = -1.0
    assert t.numpy().tolist() == [0.0, -1.0, 2.0, 3.0]
    g = ndl.from_dlpack(np.ones(3), requires_grad=True)
    (g * g).sum().backward()
    np.testing.assert_allclose(g.grad.numpy(), [2.0, 2.0, 2.0])
    assert ndl.from_dlpack(np.arange(3)).dtype == np.int64
    assert ndl.from_dlpack(t)._array is t._array


def test_strided_and_broadcast_tensors_export():
    base = ndl.Tensor(np.arange(12.0).reshape(3, 4), dtype="float64")
    np.testing.assert_array_equal(np.from_dlpack(base.transpose()), np.arange(12.0).reshape(3, 4).T)
    wide = ndl.Tensor(np.arange(3.0), dtype="float64").broadcast_to((2, 3))  # read-only view
    np.testing.assert_array_equal(np.from_dlpack(wide), [[0, 1, 2], [0, 1, 2]])
    capsule = wide.__dlpack__()  # the unversioned protocol: exported as a copy
    assert type(capsule).__name__ == "PyCapsule"


def test_from_dlpack_errors():
    with pytest.raises(TypeError, match=r"builtins.list does not support DLPack"):
        ndl.from_dlpack([1.0, 2.0])

    class OnTheMoon:
        def __dlpack__(self, **_):
            raise AssertionError("never asked")

        def __dlpack_device__(self):
            return (8, 0)

    with pytest.raises(ndl.NeedleError, match=r"DLPack device type 8 \(Metal\).*copy it to the CPU"):
        ndl.from_dlpack(OnTheMoon())

    class Refuses:
        dtype = "bfloat16"

        def __dlpack__(self, **_):
            raise BufferError("unsupported dtype")

        def __dlpack_device__(self):
            return (1, 0)

    with pytest.raises(ndl.NeedleError, match=r"cannot import the Refuses \(dtype bfloat16\)"):
        ndl.from_dlpack(Refuses())


def test_cuda_backend_imports_through_its_array_module():
    """The CUDA backend hands DLPack arrays to CuPy's from_dlpack (NumPy stands in here)."""
    from needle_backend_cuda import CUDABackend

    backend = CUDABackend()
    backend._xp = np
    a = np.arange(3.0)
    assert np.shares_memory(backend.from_dlpack(a), a)


# -- safetensors ----------------------------------------------------------------------------
needs_safetensors = pytest.mark.skipif(
    importlib.util.find_spec("safetensors") is None,
    reason="safetensors is not installed (pip install 'needle-core[safetensors]')")


def _model(seed=0):
    np.random.seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2, dtype="float64"))


@needs_safetensors
def test_state_dict_round_trip(tmp_path):
    model = _model()
    path = tmp_path / "model.safetensors"
    ndl.save(model.state_dict(), path)
    loaded = ndl.load(path)
    assert set(loaded) == set(model.state_dict())
    for name, t in model.state_dict().items():
        assert isinstance(loaded[name], ndl.Tensor) and loaded[name].dtype == t.dtype
        np.testing.assert_array_equal(loaded[name].numpy(), t.numpy())
    twin = _model(seed=1)
    twin.load_state_dict(loaded)
    np.testing.assert_array_equal(twin.modules[0].weight.numpy(), model.modules[0].weight.numpy())
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


@needs_safetensors
def test_files_are_standard_safetensors(tmp_path):
    """Other libraries read what needle writes, and needle reads what they write."""
    import safetensors.numpy

    path = tmp_path / "x.SafeTensors"  # the suffix is matched case-insensitively
    ndl.save({"w": ndl.Tensor(np.eye(2)), "ids": np.arange(3, dtype=np.int32)}, path)
    raw = safetensors.numpy.load_file(str(path))
    np.testing.assert_array_equal(raw["w"], np.eye(2))
    assert raw["ids"].dtype == np.int32
    other = tmp_path / "other.safetensors"
    safetensors.numpy.save_file({"b": np.ones((2, 2), np.float16)}, str(other))
    loaded = ndl.load(other, device="cpu")
    assert loaded["b"].dtype == np.float16 and loaded["b"].shape == (2, 2)


@needs_safetensors
def test_what_safetensors_cannot_hold(tmp_path):
    path = tmp_path / "bad.safetensors"
    with pytest.raises(TypeError, match=r"flat dict of name -> Tensor.*\.npz"):
        ndl.save([ndl.Tensor([1.0])], path)
    with pytest.raises(TypeError, match=r"entry 'epoch' is a int"):
        ndl.save({"epoch": 3}, path)
    with pytest.raises(TypeError, match=r"names must be str"):
        ndl.save({1: ndl.Tensor([1.0])}, path)
    with pytest.raises(TypeError, match=r"entry 's' has dtype <U1"):
        ndl.save({"s": np.array(["a"])}, path)
    assert not path.exists()


@needs_safetensors
def test_broken_files_raise_checkpoint_errors(tmp_path):
    path = tmp_path / "m.safetensors"
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        ndl.load(path)
    ndl.save({"w": ndl.Tensor(np.ones((64, 64)))}, path)
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(CheckpointError, match=r"m.safetensors: not a valid .safetensors file"):
        ndl.load(path)
    # A header claiming far more data than the file holds is refused, not allocated.
    header = b'{"w":{"dtype":"F32","shape":[100000,100000],"data_offsets":[0,40000000000]}}'
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\0" * 16)
    with pytest.raises(CheckpointError, match="not a valid"):
        ndl.load(path)
    path.write_bytes(b"PK\3\4 not this format")
    with pytest.raises(CheckpointError):
        ndl.load(path)


def test_missing_package_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)
    with pytest.raises(ImportError, match=r"pip install 'needle-core\[safetensors\]'"):
        ndl.save({"w": ndl.Tensor([1.0])}, tmp_path / "w.safetensors")
