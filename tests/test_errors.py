"""Bad input gets a clear error naming the shapes, axes, devices or dtypes involved,
and a broken backend plug-in never breaks ``import needle``."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import needle as ndl
import numpy as np
import pytest
from needle.device import REGISTRY

# ``needle.device`` the attribute is the function; the module holds the registry's state.
device_mod = importlib.import_module("needle.device")


def t(shape, device="cpu", dtype="float32"):
    return ndl.Tensor(np.ones(shape), device=device, dtype=dtype)


@pytest.mark.parametrize("op", [ndl.add, ndl.multiply, ndl.divide, ndl.power])
def test_elementwise_shape_mismatch_names_both_shapes(device, op):
    with pytest.raises(ndl.NeedleError) as info:
        op(t((2, 3), device), t((4, 5), device))
    msg = str(info.value)
    assert "(2, 3)" in msg and "(4, 5)" in msg and type(op(t(1), t(1)).op).__name__ in msg


def test_matmul_shape_errors(device):
    with pytest.raises(ndl.NeedleError, match=r"\(2, 3\) and \(4, 5\) do not align: 3 .* != 4"):
        t((2, 3), device) @ t((4, 5), device)
    with pytest.raises(ndl.NeedleError, match=r"\(2, 2, 3\), \(3, 3, 4\)"):
        t((2, 2, 3), device) @ t((3, 3, 4), device)  # batch axes 2 and 3 do not broadcast


def test_reshape_and_broadcast_to_wrong_size(device):
    with pytest.raises(ndl.NeedleError, match=r"shape \(2, 3\) \(6 elements\) into shape \(4, 2\)"):
        t((2, 3), device).reshape((4, 2))
    with pytest.raises(ndl.NeedleError, match=r"cannot broadcast shape \(3,\) to \(2, 4\)"):
        t((3,), device).broadcast_to((2, 4))


@pytest.mark.parametrize("call", [
    lambda x: ndl.summation(x, 2),
    lambda x: ndl.summation(x, (0, 2)),
    lambda x: x.max(2),
    lambda x: ndl.logsumexp(x, (2,)),
    lambda x: ndl.logsoftmax(x, 2),
    lambda x: ndl.flip(x, (2,)),
    lambda x: ndl.split(x, 2),
    lambda x: ndl.transpose(x, (0, 2)),
], ids=["sum", "sum-tuple", "max", "logsumexp", "logsoftmax", "flip", "split", "transpose"])
def test_axes_out_of_range_name_the_axis_and_the_rank(device, call):
    with pytest.raises(ndl.NeedleError,
                       match=r"axis 2 is out of range .* 2 dimensions \(valid: -2..1\)"):
        call(t((2, 3), device))


def test_other_shape_errors_are_explained(device):
    with pytest.raises(ndl.NeedleError, match=r"\(0, 2, 5\) are not a permutation .* \(2, 3, 4\)"):
        ndl.permute(t((2, 3, 4), device), (0, 2, 5))
    with pytest.raises(ndl.NeedleError, match=r"one non-negative .* 2 axes of shape \(2, 3\)"):
        ndl.pad(t((2, 3), device), ((1, 1),))
    with pytest.raises(ndl.NeedleError, match=r"same shape, got \[\(2,\), \(3,\)\]"):
        ndl.stack([t((2,), device), t((3,), device)], 0)
    with pytest.raises(ndl.NeedleError, match=r"index .*5.* does not fit a tensor of shape \(2, 3\)"):
        t((2, 3), device)[:, 5]
    with pytest.raises(ndl.NeedleError, match=r"input has 3 channels \(shape \(1, 5, 5, 3\)\) but "
                                              r"the kernel expects 2"):
        ndl.conv(t((1, 5, 5, 3), device), t((3, 3, 2, 4), device))
    with pytest.raises(ndl.NeedleError, match=r"kernel \(7, 7\) is larger than the padded input"):
        ndl.conv(t((1, 5, 5, 3), device), t((7, 7, 3, 4), device), padding=0)


def test_mixed_dtypes_promote_but_data_assignment_must_match(device):
    assert (t((2,), device) + t((2,), device, "float64")).dtype == "float64"  # NumPy's rule
    with pytest.raises(ndl.NeedleError, match=r"dtype float64 does not match float32"):
        w = t((2,), device)
        w.data = t((2,), device, "float64")


def test_mixed_devices_name_both(second_cpu):
    a, b = t((2,), "cpu"), t((2,), second_cpu)
    assert b.device == second_cpu and a.device != b.device
    with pytest.raises(ndl.NeedleError, match=r"different devices \(cpu\(\), cpu2\(\)\).*\.to\("):
        a + b
    with pytest.raises(ndl.NeedleError, match="different devices"):
        b @ t((2, 1), "cpu")
    with pytest.raises(ndl.NeedleError, match=r"device cpu2\(\) does not match cpu\(\)"):
        a.data = b
    np.testing.assert_array_equal((a + b.to("cpu")).numpy(), [2.0, 2.0])


def test_backward_with_a_misshaped_out_grad_names_both_shapes(device):
    y = ndl.Tensor(np.ones((2, 3)), device=device) * 2
    with pytest.raises(ndl.NeedleError, match=r"out_grad has shape \(3, 2\).*\(2, 3\)"):
        y.backward(ndl.Tensor(np.ones((3, 2)), device=device))


def test_unknown_device_lists_what_is_installed():
    with pytest.raises(ndl.DeviceError) as info:
        ndl.device("tpu")
    msg = str(info.value)
    assert "'tpu'" in msg and "cpu" in msg and "pip install needle-backend-" in msg
    with pytest.raises(ndl.DeviceError, match="'tpu'"):
        ndl.Tensor([1.0], device="tpu")
    with pytest.raises(TypeError, match="not int"):
        ndl.device(3)


@pytest.fixture
def broken_entry_point():
    """A fake installed plug-in whose import fails, registered through REGISTRY's internals."""
    class BrokenEntryPoint:
        name, value, dist = "broken", "broken_backend:Backend", None

        def load(self):
            raise ImportError("libbroken.so: cannot open shared object file")

    eps = REGISTRY.entry_points()
    eps["broken"] = BrokenEntryPoint()
    try:
        yield
    finally:
        eps.pop("broken", None)
        REGISTRY._errors.pop("broken", None)
        device_mod._DEVICES.pop("broken", None)


def test_broken_backend_is_reported_not_fatal(broken_entry_point):
    rows = {info.name: info for info in ndl.backends()}
    assert rows["cpu"].usable
    assert not rows["broken"].usable
    assert "failed to load: ImportError: libbroken.so" in rows["broken"].reason
    assert ndl.device("broken") not in ndl.all_devices()
    assert not ndl.device("broken").enabled()
    with pytest.raises(ndl.DeviceError, match="'broken' backend .* failed to load"):
        ndl.Tensor([1.0], device="broken")


def test_broken_plugin_installed_on_disk_does_not_break_import(tmp_path):
    """A real entry point (a .dist-info on sys.path) whose module raises on import."""
    dist = tmp_path / "broken_backend-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-backend\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[needle.backends]\nbroken = broken_backend:Backend\n")
    (tmp_path / "broken_backend.py").write_text("raise ImportError('needs libbroken.so')\n")
    code = textwrap.dedent("""
        import needle as ndl
        rows = {i.name: i for i in ndl.backends()}
        print(rows['cpu'].usable, rows['broken'].usable, rows['broken'].distribution)
        print(rows['broken'].reason)
        print(ndl.Tensor([1.0, 2.0]).sum().item())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path), "PATH": ""}, check=True).stdout
    lines = out.splitlines()
    assert lines[0] == "True False broken-backend 0.1"
    assert "needs libbroken.so" in lines[1]
    assert lines[2] == "3.0"
