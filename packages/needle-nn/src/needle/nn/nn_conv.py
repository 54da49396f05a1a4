"""Course module name (hw4 ``needle.nn.nn_conv``)."""

from .conv import Conv  # noqa: F401
