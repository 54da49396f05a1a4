"""Devices and the backend registry.

Backends are discovered through the ``needle.backends`` entry-point group the
first time a device is used, under a lock (as JAX does). A backend that fails to
import is remembered with its error, never raised at ``import needle``; only
asking for that device raises, with a message saying what to install or fix.
``NEEDLE_DEFAULT_DEVICE`` pins the default device (``cpu`` otherwise).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import numpy as np

from .backend import Backend, BackendUnavailable

ENTRY_POINT_GROUP = "needle.backends"

# What to pip-install for the devices needle knows of; any other name is a plug-in.
_KNOWN_PACKAGES = {
    "cpu": "needle-backend-cpu",
    "cuda": "needle-backend-cuda[cuda12]  (or [cuda13], matching your CUDA driver)",
}


class DeviceError(RuntimeError):
    """A device that is unknown, not installed, or not usable on this machine."""


@dataclass(frozen=True)
class BackendInfo:
    """One row of ``ndl.backends()``."""

    name: str
    distribution: str | None
    usable: bool
    reason: str | None

    def __str__(self) -> str:
        state = "usable" if self.usable else f"unusable: {self.reason}"
        return f"{self.name:<6} {self.distribution or '?':<22} {state}"


class _Registry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entry_points: dict[str, Any] | None = None
        self._backends: dict[str, Backend] = {}
        self._errors: dict[str, str] = {}

    def entry_points(self) -> dict[str, Any]:
        with self._lock:
            if self._entry_points is None:
                found: dict[str, Any] = {}
                for ep in entry_points(group=ENTRY_POINT_GROUP):
                    found.setdefault(ep.name, ep)  # first installed wins
                self._entry_points = found
            return self._entry_points

    def load(self, name: str) -> Backend:
        """The backend called ``name``, or a ``DeviceError`` saying why not."""
        backend = self._backends.get(name)
        if backend is not None:
            return backend
        eps = self.entry_points()
        if name not in eps:
            raise DeviceError(_not_installed_message(name, sorted(eps)))
        with self._lock:
            if name in self._backends:
                return self._backends[name]
            if name not in self._errors:
                try:
                    factory = eps[name].load()
                    self._backends[name] = factory() if callable(factory) else factory
                    return self._backends[name]
                except Exception as exc:  # a broken plug-in is reported, not fatal
                    self._errors[name] = f"{type(exc).__name__}: {exc}"
            raise DeviceError(
                f"the {name!r} backend ({_dist_name(eps[name])}) failed to load: "
                f"{self._errors[name]}. Reinstall it, or uninstall it to silence this."
            )

    def register(self, backend: Backend) -> None:
        """Add a backend object directly (tests, notebooks); entry points are the normal way."""
        with self._lock:
            self._backends[backend.name] = backend
            self._errors.pop(backend.name, None)

    def infos(self) -> list[BackendInfo]:
        rows = []
        eps = self.entry_points()
        for name in sorted(set(eps) | set(self._backends)):
            dist = _dist_name(eps[name]) if name in eps else None
            try:
                reason = self.load(name).availability()
            except DeviceError as exc:
                reason = str(exc)
            rows.append(BackendInfo(name, dist, reason is None, reason))
        return rows


def _dist_name(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else ep.value


def _not_installed_message(name: str, installed: list[str]) -> str:
    hint = _KNOWN_PACKAGES.get(name)
    have = ", ".join(installed) if installed else "none"
    if hint:
        return f"no backend for device {name!r} is installed (installed: {have}); pip install {hint}"
    known = ", ".join(sorted(_KNOWN_PACKAGES))
    return (f"unknown device {name!r}: installed backends are {have}; "
            f"needle's own are {known} (pip install needle-backend-<name>)")


REGISTRY = _Registry()


_FORWARDED_DUNDERS = frozenset({"__tile_size__"})


class Device:
    """A place where arrays live; a thin handle around a lazily loaded backend.

    ``ndl.cuda()`` returns a Device even when no CUDA backend is installed:
    ``enabled()`` says False, and creating data on it raises the reason.
    """

    __slots__ = ("name", "_backend")

    def __init__(self, name: str) -> None:
        self.name = name
        self._backend: Backend | None = None

    @property
    def backend(self) -> Backend:
        backend = self._backend
        if backend is None:
            backend = REGISTRY.load(self.name)
            reason = backend.availability()
            if reason is not None:
                raise DeviceError(f"device {self.name!r} is installed but not usable here: {reason}")
            self._backend = backend
        return backend

    def enabled(self) -> bool:
        try:
            self.backend  # noqa: B018 - loading is the check
        except (DeviceError, BackendUnavailable):
            return False
        return True

    def __getattr__(self, name: str) -> Any:
        """Anything else comes from the backend, as the course's devices forward to their
        backend module (hw3 calls ``device.matmul_tiled`` and reads ``device.__tile_size__``)."""
        if name.startswith("_") and name not in _FORWARDED_DUNDERS:
            raise AttributeError(name)
        try:
            return getattr(self.backend, name)
        except (DeviceError, BackendUnavailable) as exc:
            raise AttributeError(f"{name!r}: {exc}") from None
        except AttributeError:
            raise AttributeError(f"device {self.name!r} has no attribute {name!r}") from None

    def __repr__(self) -> str:
        return f"{self.name}()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    # -- course-style array factories (return backend arrays) ---------------
    def rand(self, *shape: int, dtype: Any = "float32") -> Any:
        return self.backend.rand(_shape(shape), np.dtype(dtype))

    def randn(self, *shape: int, dtype: Any = "float32") -> Any:
        return self.backend.randn(_shape(shape), np.dtype(dtype))

    def randb(self, *shape: int, p: float = 0.5, dtype: Any = "float32") -> Any:
        return self.backend.randb(_shape(shape), p, np.dtype(dtype))

    def one_hot(self, n: int, i: Any, dtype: Any = "float32") -> Any:
        backend = self.backend
        if not isinstance(i, np.ndarray) and hasattr(i, "numpy"):
            i = i.numpy()
        return backend.one_hot(n, backend.array(i, np.dtype("int64")), np.dtype(dtype))

    def full(self, shape: tuple[int, ...], fill_value: float, dtype: Any = "float32") -> Any:
        return self.backend.full(_shape(shape), fill_value, np.dtype(dtype))

    def zeros(self, *shape: int, dtype: Any = "float32") -> Any:
        return self.full(_shape(shape), 0.0, dtype)

    def ones(self, *shape: int, dtype: Any = "float32") -> Any:
        return self.full(_shape(shape), 1.0, dtype)

    def empty(self, shape: tuple[int, ...], dtype: Any = "float32") -> Any:
        return self.full(_shape(shape), 0.0, dtype)


def _shape(shape: tuple[Any, ...]) -> tuple[int, ...]:
    """Accept both ``f(2, 3)`` and ``f((2, 3))``."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


_DEVICES: dict[str, Device] = {}


def device(name: str | Device) -> Device:
    """The device called ``name`` (``"cpu"``, ``"cuda"``, or a plug-in's name)."""
    if isinstance(name, Device):
        return name
    if not isinstance(name, str):
        raise TypeError(f"a device is a name like 'cpu' or a Device, not {type(name).__name__}")
    dev = _DEVICES.get(name)
    if dev is None:
        installed = REGISTRY.entry_points()
        if name not in installed and name not in _KNOWN_PACKAGES \
                and name not in REGISTRY._backends:
            raise DeviceError(_not_installed_message(name, sorted(installed)))
        dev = _DEVICES[name] = Device(name)
    return dev


def cpu() -> Device:
    return device("cpu")


def cuda() -> Device:
    return device("cuda")


def cpu_numpy() -> Device:
    """Course alias: the NumPy-backed CPU device."""
    return device("cpu")


def default_device() -> Device:
    return device(os.environ.get("NEEDLE_DEFAULT_DEVICE", "cpu"))


def all_devices() -> list[Device]:
    """Every installed device that is usable here."""
    return [device(info.name) for info in REGISTRY.infos() if info.usable]


def backends() -> list[BackendInfo]:
    """Installed backends, whether each is usable here, and why not."""
    return REGISTRY.infos()


def manual_seed(n: int) -> None:
    """Seed every loaded backend's generator (NumPy's global one for ``cpu``)."""
    np.random.seed(n)
    for info in REGISTRY.infos():
        if info.usable:
            REGISTRY.load(info.name).seed(n)
