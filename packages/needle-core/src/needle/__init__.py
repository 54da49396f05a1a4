"""needle: a small, readable deep-learning framework with reverse-mode autograd.

``import needle as ndl`` gives Tensor, ops and devices. Other distributions add
subpackages to this namespace (``needle-nn`` adds ``nn``, ``init``, ``optim``,
``data``); they are imported on first attribute access, so ``ndl.nn.Linear``
works without a separate import and core never names them.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

# Let other distributions (wheels or editable installs) contribute ``needle.*`` modules.
# Spelled as pkgutil's documentation does, so tools that read the source (griffe, which
# builds the API reference) recognise the namespace too.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

from . import (
    dtypes,  # noqa: E402
    ops,  # noqa: E402
)
from .autograd import (  # noqa: E402
    NeedleError,
    NeedleIndexError,
    Op,
    Tensor,
    TensorOp,
    TensorTuple,
    TensorTupleOp,
    Value,
    enable_grad,
    is_grad_enabled,
    no_grad,
)
from .backend import Backend, BackendUnavailable  # noqa: E402
from .device import (  # noqa: E402
    BackendInfo,
    Device,
    DeviceError,
    all_devices,
    backends,
    cpu,
    cpu_numpy,
    cuda,
    default_device,
    device,
    manual_seed,
)
from .interop import from_dlpack  # noqa: E402
from .ops import *  # noqa: E402,F403
from .serialization import CheckpointError, load, save  # noqa: E402

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """Import ``needle.<name>`` contributed by another distribution on first use."""
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'needle' has no attribute {name!r}")
