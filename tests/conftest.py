"""Shared test set-up: hypothesis profiles, the devices every test runs on, and the
helpers several test files use (import them: ``from conftest import t64``).

``HYPOTHESIS_PROFILE=ci`` (the default) is deterministic and quick; ``dev`` hunts longer.
Both allow function-scoped fixtures (``device``) inside ``@given`` tests: the fixture is
a device, the same for every example, so hypothesis's warning does not apply.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import needle as ndl
import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from needle import autograd
from needle.cli import main
from needle.cli.train import StopRequest
from needle.device import REGISTRY
from needle.testing import gradcheck
from needle_backend_cpu import CPUBackend

settings.register_profile(
    "ci", max_examples=25, deadline=None, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "dev", max_examples=300, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# backward() takes needle's shape-exact ops at their word (Op._exact) for speed; every
# test checks their gradients as it checks users' ops, so none can break that word unseen.
autograd.CHECK_ALL_GRADIENTS = True


@pytest.fixture
def device(needle_device) -> ndl.Device:
    """Every backend in turn: needle.testing's pytest plugin parametrises ``needle_device``
    over the installed backends (an unusable one, or cuda when absent, skips with why)."""
    return needle_device


def data_dir() -> Path:
    """Real data sets, from ``NEEDLE_DATA_DIR`` (default: ../shared/data beside the repo)."""
    default = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    return Path(os.environ.get("NEEDLE_DATA_DIR", default)).resolve()


def t64(a: Any, device: ndl.Device, requires_grad: bool = True) -> ndl.Tensor:
    """``a`` as a float64 Tensor on ``device``: gradient checks and references run in float64."""
    return ndl.Tensor(a, device=device, dtype="float64", requires_grad=requires_grad)


@pytest.fixture
def second_cpu():
    """A second device (a CPU backend under another name), removed again afterwards."""
    class OtherCPU(CPUBackend):
        name = "cpu2"

    REGISTRY.register(OtherCPU())
    try:
        yield ndl.device("cpu2")
    finally:
        REGISTRY._backends.pop("cpu2", None)
        importlib.import_module("needle.device")._DEVICES.pop("cpu2", None)


# -- layers' gradient checks (test_nn_grad, test_nn_gru, test_nn_transformer) ----------------
small = st.integers(1, 3)
seeds = st.integers(0, 2**16)


def _set(root: Any, path: str, value: Any) -> None:
    """Put ``value`` where the dotted ``path`` of ``named_parameters`` points."""
    *parents, last = path.split(".")
    owner = root
    for part in parents:
        owner = owner[int(part)] if isinstance(owner, (list, tuple)) else \
            owner[part] if isinstance(owner, dict) else getattr(owner, part)
    if isinstance(owner, list):
        owner[int(last)] = value
    elif isinstance(owner, dict):
        owner[last] = value
    else:
        setattr(owner, last, value)


def check_module(module: Any, *inputs: Any,
                 out: Callable[[Any], Any] = lambda y: y, before: Callable[[], None] = lambda: None,
                 ) -> None:
    """gradcheck ``out(module(*inputs))`` with respect to the inputs and all parameters.

    Each call swaps fresh leaves in for the parameters, so their gradients are checked
    like any input's; ``before`` runs first in every call (re-seeding dropout).
    """
    names, params = zip(*module.named_parameters()) if module.parameters() else ((), ())
    n = len(inputs)

    def fn(*tensors: ndl.Tensor) -> Any:
        for name, t in zip(names, tensors[n:]):
            _set(module, name, t)
        try:
            before()
            return out(module(*tensors[:n]))
        finally:
            for name, p in zip(names, params):
                _set(module, name, p)

    leaves = [ndl.Tensor(p.numpy(), device=p.device, dtype=p.dtype) for p in params]
    assert gradcheck(fn, *inputs, *leaves, seed=0)


def x64(rng: np.random.Generator, device: ndl.Device, *shape: int) -> ndl.Tensor:
    """Standard normal float64 values of ``shape`` from ``rng``, on ``device``."""
    return ndl.Tensor(rng.standard_normal(shape), device=device, dtype="float64")


# -- needle train (test_cli, test_cli_train, test_cli_faults, test_cli_datasets) --------------
def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """``needle <argv>`` in-process: (exit status, stdout, stderr) of this call alone."""
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own exit
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc: int, err: str, *fragments: str) -> None:
    """Exit status 2 and one ``error:`` line on stderr (no traceback) holding ``fragments``."""
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "error:" in lines[0] and "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def metrics(run: Path) -> list[dict]:
    """The rows of a run directory's ``metrics.jsonl``, one per epoch."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def assert_same_run(a: Path, b: Path) -> None:
    """Bit-identical weights, optimizer state and per-epoch numbers (timings aside)."""
    ca, cb = ndl.load(a / "checkpoint.npz"), ndl.load(b / "checkpoint.npz")
    assert ca["epoch"] == cb["epoch"] and cb["position"] is None
    assert ca["model"].keys() == cb["model"].keys()
    for key in ca["model"]:
        np.testing.assert_array_equal(ca["model"][key].numpy(), cb["model"][key].numpy(), key)
    for i, state in ca["optimizer"]["state"].items():
        for name, value in state.items():
            other = cb["optimizer"]["state"][i][name]
            if isinstance(value, ndl.Tensor):
                value, other = value.numpy(), other.numpy()
            np.testing.assert_array_equal(value, other)
    np.testing.assert_array_equal(ca["rng"]["keys"], cb["rng"]["keys"])
    drop = {"seconds", "train_seconds", "examples_per_s"}
    strip = [[{k: v for k, v in m.items() if k not in drop} for m in metrics(r)] for r in (a, b)]
    assert strip[0] == strip[1]


class StopAfter(StopRequest):
    """Asks to stop after ``steps`` training steps, as a Ctrl-C there would."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps

    def __call__(self) -> bool:
        self.steps -= 1
        return self.steps <= 0
