"""The course's MLP-ResNet: Linear → ReLU → residual blocks → Linear."""

from __future__ import annotations

from typing import Any

from .. import nn


def ResidualBlock(dim: int, hidden_dim: int, norm: Any = nn.BatchNorm1d,  # noqa: N802
                  drop_prob: float = 0.1, device: Any = None,
                  dtype: Any = "float32") -> nn.Sequential:
    """Residual(Linear → norm → ReLU → Dropout → Linear → norm), then ReLU."""
    return nn.Sequential(
        nn.Residual(nn.Sequential(
            nn.Linear(dim, hidden_dim, device=device, dtype=dtype),
            norm(hidden_dim, device=device, dtype=dtype),
            nn.ReLU(),
            nn.Dropout(drop_prob),
            nn.Linear(hidden_dim, dim, device=device, dtype=dtype),
            norm(dim, device=device, dtype=dtype),
        )),
        nn.ReLU(),
    )


def MLPResNet(dim: int, hidden_dim: int = 100, num_blocks: int = 3,  # noqa: N802
              num_classes: int = 10, norm: Any = nn.BatchNorm1d, drop_prob: float = 0.1,
              device: Any = None, dtype: Any = "float32") -> nn.Sequential:
    """Blocks are ``ResidualBlock(hidden_dim, hidden_dim // 2, norm, drop_prob)``.

    For ``dim=784`` this has the course's 110,860 parameters.
    """
    return nn.Sequential(
        nn.Linear(dim, hidden_dim, device=device, dtype=dtype),
        nn.ReLU(),
        *[ResidualBlock(hidden_dim, hidden_dim // 2, norm, drop_prob, device=device, dtype=dtype)
          for _ in range(num_blocks)],
        nn.Linear(hidden_dim, num_classes, device=device, dtype=dtype),
    )
