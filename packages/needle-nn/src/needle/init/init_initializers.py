"""Xavier (Glorot) and Kaiming (He) initializers with the course's signatures.

``fan_in``/``fan_out`` set the scale; the tensor has shape ``(fan_in, fan_out)``
unless ``shape=`` overrides it (a convolution kernel ``(k, k, in, out)`` uses
``fan_in = in*k*k``). Extra keyword arguments (``device``, ``dtype``,
``requires_grad``) go to ``rand``/``randn``.
"""

from __future__ import annotations

import math
from typing import Any

from needle import NeedleError, Tensor

from .init_basic import rand, randn

_GAINS = {
    "relu": math.sqrt(2.0),
    "tanh": 5.0 / 3.0,
    "linear": 1.0,
    "identity": 1.0,
    "sigmoid": 1.0,
}


def calculate_gain(nonlinearity: str) -> float:
    """The factor that keeps activations' variance steady through ``nonlinearity`` (PyTorch's)."""
    try:
        return _GAINS[nonlinearity]
    except (KeyError, TypeError):
        raise NeedleError(f"unsupported nonlinearity {nonlinearity!r}; "
                          f"supported: {', '.join(sorted(_GAINS))}") from None


def _check_fans(fn: str, fan_in: int, fan_out: int) -> None:
    if fan_in <= 0 or fan_out <= 0:
        raise NeedleError(f"init.{fn}: fan_in and fan_out must be positive, got {fan_in}, {fan_out}")


def _shape(fan_in: int, fan_out: int, shape: Any) -> tuple[int, ...]:
    return (fan_in, fan_out) if shape is None else tuple(shape)


def xavier_uniform(fan_in: int, fan_out: int, gain: float = 1.0, shape: Any = None,
                   **kwargs: Any) -> Tensor:
    """Uniform(-a, a) with a = gain·√(6/(fan_in+fan_out))."""
    _check_fans("xavier_uniform", fan_in, fan_out)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return rand(*_shape(fan_in, fan_out, shape), low=-a, high=a, **kwargs)


def xavier_normal(fan_in: int, fan_out: int, gain: float = 1.0, shape: Any = None,
                  **kwargs: Any) -> Tensor:
    """Normal(0, std²) with std = gain·√(2/(fan_in+fan_out))."""
    _check_fans("xavier_normal", fan_in, fan_out)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return randn(*_shape(fan_in, fan_out, shape), mean=0.0, std=std, **kwargs)


def _kaiming_args(nonlinearity: Any, shape: Any) -> tuple[str, Any]:
    # The course's hw4 put ``shape`` third: accept a shape given in that position.
    if isinstance(nonlinearity, (tuple, list)):
        return "relu", nonlinearity
    return nonlinearity, shape


def kaiming_uniform(fan_in: int, fan_out: int, nonlinearity: str = "relu", shape: Any = None,
                    **kwargs: Any) -> Tensor:
    """Uniform(-bound, bound) with bound = gain·√(3/fan_in) (gain √2 for ReLU)."""
    nonlinearity, shape = _kaiming_args(nonlinearity, shape)
    gain = calculate_gain(nonlinearity)
    _check_fans("kaiming_uniform", fan_in, fan_out)
    bound = gain * math.sqrt(3.0 / fan_in)
    return rand(*_shape(fan_in, fan_out, shape), low=-bound, high=bound, **kwargs)


def kaiming_normal(fan_in: int, fan_out: int, nonlinearity: str = "relu", shape: Any = None,
                   **kwargs: Any) -> Tensor:
    """Normal(0, std²) with std = gain/√fan_in (gain √2 for ReLU)."""
    nonlinearity, shape = _kaiming_args(nonlinearity, shape)
    gain = calculate_gain(nonlinearity)
    _check_fans("kaiming_normal", fan_in, fan_out)
    std = gain / math.sqrt(fan_in)
    return randn(*_shape(fan_in, fan_out, shape), mean=0.0, std=std, **kwargs)
