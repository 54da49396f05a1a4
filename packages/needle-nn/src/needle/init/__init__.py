"""Tensor factories and weight initializers (``needle.init``, the course's names).

Everything returns a ``Tensor`` and takes ``device``, ``dtype`` and
``requires_grad``. Random draws go through the device, so on ``cpu``
``np.random.seed(n)`` reproduces the course's reference numbers.
"""

from .init_basic import (
    constant,
    one_hot,
    ones,
    ones_like,
    rand,
    randb,
    randn,
    zeros,
    zeros_like,
)
from .init_initializers import (
    calculate_gain,
    kaiming_normal,
    kaiming_uniform,
    xavier_normal,
    xavier_uniform,
)

__all__ = [
    "calculate_gain", "constant", "kaiming_normal", "kaiming_uniform", "one_hot", "ones",
    "ones_like", "rand", "randb", "randn", "xavier_normal", "xavier_uniform", "zeros",
    "zeros_like",
]
