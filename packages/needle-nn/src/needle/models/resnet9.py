"""The course's ResNet9 for 3×32×32 images (NCHW)."""

from __future__ import annotations

from typing import Any

from needle import Tensor

from .. import nn


class ConvBN(nn.Module):
    """Conv → BatchNorm2d → ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 device: Any = None, dtype: Any = "float32") -> None:
        super().__init__()
        self.conv = nn.Conv(in_channels, out_channels, kernel_size, stride=stride,
                            device=device, dtype=dtype)
        self.bn = nn.BatchNorm2d(out_channels, device=device, dtype=dtype)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))


class ResNet9(nn.Module):
    """Two strided conv stages, each followed by a residual pair, then Linear 128 → ReLU → 10."""

    def __init__(self, device: Any = None, dtype: Any = "float32") -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.model = nn.Sequential(
            ConvBN(3, 16, 7, 4, **kw),
            ConvBN(16, 32, 3, 2, **kw),
            nn.Residual(nn.Sequential(ConvBN(32, 32, 3, 1, **kw), ConvBN(32, 32, 3, 1, **kw))),
            ConvBN(32, 64, 3, 2, **kw),
            ConvBN(64, 128, 3, 2, **kw),
            nn.Residual(nn.Sequential(ConvBN(128, 128, 3, 1, **kw), ConvBN(128, 128, 3, 1, **kw))),
            nn.Flatten(),
            nn.Linear(128, 128, **kw),
            nn.ReLU(),
            nn.Linear(128, 10, **kw),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)
