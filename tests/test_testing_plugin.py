"""needle.testing for users: the pytest plugin (``needle_device``, the skip summary) and
``assert_backends_agree``, checked against backends registered here for the purpose."""

from __future__ import annotations

import importlib

import needle as ndl
import numpy as np
import pytest
from needle.device import REGISTRY
from needle.testing import assert_backends_agree, usable_devices
from needle.testing.pytest_plugin import device_params, skip_summary
from needle_backend_cpu import CPUBackend

pytest_plugins = ["pytester"]
device_module = importlib.import_module("needle.device")  # ndl.device is the function


class _Twin(CPUBackend):
    """The CPU's kernels under another name: a second backend that agrees."""

    name = "twin"


class _BadExp(CPUBackend):
    """A backend whose exp is off by 1%: forward and gradient both disagree."""

    name = "badexp"

    @staticmethod
    def exp(a, *args, **kwargs):
        return np.exp(a, *args, **kwargs) * 1.01


@pytest.fixture
def register(monkeypatch):
    """Register backend objects for one test; the registry is restored afterwards."""
    monkeypatch.setattr(REGISTRY, "_backends", dict(REGISTRY._backends))
    monkeypatch.setattr(device_module, "_DEVICES", dict(device_module._DEVICES))

    def add(backend):
        REGISTRY.register(backend)
        return ndl.device(backend.name)

    return add


def test_backends_agree_returns_every_device_that_ran(register):
    register(_Twin())
    x = np.linspace(-2, 2, 12).reshape(3, 4)
    ran = assert_backends_agree(lambda t: (t.exp() * t).sum(axes=(1,)), x)
    assert ran[0] == "cpu" and "twin" in ran
    assert [d.name for d in usable_devices()][0] == "cpu"


def test_backends_agree_names_the_backend_and_the_gradient_that_differ(register):
    register(_Twin())
    register(_BadExp())
    x = np.linspace(-1, 1, 6).reshape(2, 3)
    with pytest.raises(AssertionError) as info:
        assert_backends_agree(lambda t: t.exp(), x)
    message = str(info.value)
    assert "badexp: output 0" in message and "badexp: gradient of input 0" in message
    assert "twin" not in message
    assert "6 of 6 elements differ" in message


def test_backends_agree_checks_dtypes_tolerances_and_integer_inputs(register):
    register(_BadExp())
    x = np.linspace(-1, 1, 6).astype(np.float32)
    # a 1% error passes only when the caller allows it
    assert assert_backends_agree(lambda t: t.exp(), x, rtol=0.05) == ["cpu", "badexp"]
    with pytest.raises(AssertionError, match="rtol 0.0001"):
        assert_backends_agree(lambda t: t.exp(), x, devices=["badexp"])
    idx = np.array([2, 0])  # integer inputs are constants: no gradient compared
    ran = assert_backends_agree(lambda t, i: t[i] * 2.0, x.reshape(3, 2), idx,
                                devices=["badexp"], dtype="float64")
    assert ran == ["cpu", "badexp"]


def test_backends_agree_reports_an_exception_on_one_backend(register):
    class _NoTanh(CPUBackend):
        name = "notanh"

        @staticmethod
        def tanh(a):
            raise RuntimeError("tanh is not implemented here")

    register(_NoTanh())
    with pytest.raises(AssertionError, match="notanh: fn raised NeedleError: .*tanh is not"):
        assert_backends_agree(lambda t: t.tanh(), np.ones(3))


def test_backends_agree_rejects_bad_calls():
    with pytest.raises(ValueError, match="at least one input"):
        assert_backends_agree(lambda: None)
    with pytest.raises(TypeError, match="must return a Tensor"):
        assert_backends_agree(lambda t: t.numpy(), np.ones(2))


def test_device_params_list_cpu_cuda_and_plug_ins_with_skip_reasons(register):
    register(_Twin())
    params = {p.id: p for p in device_params()}
    assert list(params)[:2] == ["cpu", "cuda"] and "twin" in params
    assert not params["cpu"].marks and not params["twin"].marks
    if not ndl.cuda().enabled():
        (mark,) = params["cuda"].marks
        assert mark.name == "skip" and mark.kwargs["reason"].startswith("cuda: ")
    assert [p.id for p in device_params("twin, cpu")] == ["cpu", "twin"]
    (unknown,) = device_params("tpu")
    assert "tpu: a backend named 'tpu' is not installed" in unknown.marks[0].kwargs["reason"]


def test_skip_summary_groups_reasons():
    assert skip_summary([]) is None
    line = skip_summary(["a"] * 3 + ["b"] + list("cdefg"), most=2)
    assert line == "9 skipped: 3 a; 1 b; 5 for 5 other reasons (-rs lists them)"


USER_TESTS = '''
import needle as ndl
import numpy as np
from hypothesis import given, settings
from needle.testing import assert_backends_agree
from needle.testing import strategies as nst

def test_double(needle_device):
    x = ndl.Tensor([1.0, 2.0], device=needle_device)
    assert (x * 2).numpy().tolist() == [2.0, 4.0]
    assert x.device == needle_device

@settings(max_examples=5, deadline=None, derandomize=True)
@given(nst.arrays(nst.shapes(max_dims=2), min_value=-3, max_value=3))
def test_softplus_everywhere(x):
    assert_backends_agree(lambda t: ndl.log(ndl.exp(t) + 1), x)

def test_data_absent():
    import pytest
    pytest.skip("MNIST files absent")
'''


def test_plugin_parametrises_user_tests_and_summarises_skips(pytester):
    """In a fresh pytest process: the plugin is found through its entry point."""
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    devices = ["cpu"] + ([] if not ndl.cuda().enabled() else ["cuda"])
    outcomes = result.parseoutcomes()
    assert outcomes["passed"] == len(devices) + 1
    result.stdout.fnmatch_lines(["needle: * skipped: *1 MNIST files absent*"])
    if not ndl.cuda().enabled():
        result.stdout.fnmatch_lines(["needle: 2 skipped: 1 MNIST files absent; 1 cuda: *"])
    only_cpu = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--needle-devices=cpu",
                                             "-k", "double")
    only_cpu.assert_outcomes(passed=1)


def test_the_plugin_is_registered_as_an_entry_point():
    from importlib.metadata import entry_points

    (ep,) = [ep for ep in entry_points(group="pytest11") if ep.name == "needle"]
    assert ep.value == "needle.testing.pytest_plugin" and ep.dist.name == "needle-core"
