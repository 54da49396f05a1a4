"""Course module name (hw2/hw4 ``needle.nn.nn_basic``): the basic layers."""

from .activation import ReLU, Sigmoid, Tanh  # noqa: F401
from .container import Residual, Sequential  # noqa: F401
from .dropout import Dropout  # noqa: F401
from .linear import Flatten, Identity, Linear  # noqa: F401
from .loss import SoftmaxLoss  # noqa: F401
from .module import Module, Parameter  # noqa: F401
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm1d  # noqa: F401
