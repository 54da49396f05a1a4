"""Why the CUDA backend cannot run here, in one sentence (or ``None`` when it can).

Each failure has its own remedy, so each gets its own sentence: CuPy missing
(install an extra), CuPy broken (reinstall it), no driver (install one), a driver
too old for CuPy's CUDA (update it or pick the other extra), no GPU (check the
machine or ``CUDA_VISIBLE_DEVICES``), no NVRTC to compile kernels (CuPy's
``[ctk]`` libraries or a CUDA toolkit). CuPy is imported here, never at
``import needle`` time.
"""

from __future__ import annotations

import importlib
from types import ModuleType

INSTALL_HINT = ("pip install 'needle-backend-cuda[cuda12]' (or [cuda13]; the extra must "
                "match the CUDA version of your NVIDIA driver)")


def import_cupy() -> ModuleType:
    """``import cupy``: a function so that tests can watch and replace it."""
    return importlib.import_module("cupy")


def diagnose() -> str | None:
    """``None`` when CuPy can run kernels on a GPU here, else what is missing."""
    try:
        cupy = import_cupy()
    except ModuleNotFoundError as exc:
        if (exc.name or "cupy").split(".")[0] == "cupy":
            return f"CuPy is not installed; {INSTALL_HINT}"
        return _broken_import(exc)
    except Exception as exc:  # a CuPy wheel for the wrong CUDA, a missing .so...
        return _broken_import(exc)
    runtime = cupy.cuda.runtime
    try:
        driver = runtime.driverGetVersion()
    except Exception as exc:
        return f"CuPy could not ask the CUDA driver for its version ({_describe(exc)})"
    if driver == 0:  # CUDA's documented answer when libcuda cannot be loaded
        return ("CuPy is installed but no NVIDIA CUDA driver was found (libcuda.so could not "
                "be loaded): install the NVIDIA driver, or run on a machine with a GPU")
    try:
        count = runtime.getDeviceCount()
    except Exception as exc:
        text = _describe(exc)
        if "InsufficientDriver" in text:
            return (f"the NVIDIA driver supports CUDA {_version(driver)} only, older than the "
                    f"CUDA {_runtime_version(runtime)} this CuPy wheel was built for: update the "
                    f"driver, or {INSTALL_HINT}")
        if "NoDevice" in text:
            return _no_gpu(driver)
        return f"the CUDA driver {_version(driver)} failed to start ({text})"
    if count == 0:
        return _no_gpu(driver)
    try:  # needle's kernels are compiled at run time: NVRTC must load
        cupy.cuda.nvrtc.getVersion()
    except Exception as exc:
        return (f"CuPy cannot load NVRTC, the CUDA run-time compiler that needle's kernels "
                f"need ({_describe(exc)}): {INSTALL_HINT}, which brings it with CuPy's [ctk] "
                f"extra, or install the CUDA toolkit")
    return None


def _broken_import(exc: BaseException) -> str:
    return (f"CuPy is installed but fails to import ({_describe(exc)}); reinstall the CuPy "
            f"wheel that matches your CUDA version: {INSTALL_HINT}")


def _no_gpu(driver: int) -> str:
    return (f"the NVIDIA driver (CUDA {_version(driver)}) is installed but no GPU is visible "
            f"(device count 0; check CUDA_VISIBLE_DEVICES and nvidia-smi)")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _version(v: int) -> str:
    """CUDA encodes 12.4 as 12040."""
    return f"{v // 1000}.{v % 1000 // 10}"


def _runtime_version(runtime: ModuleType) -> str:
    try:
        return _version(runtime.runtimeGetVersion())
    except Exception:
        return "?"
