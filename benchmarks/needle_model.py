"""The course's MLP-ResNet in needle: ``needle.models.MLPResNet`` when it exists,
otherwise built here from ``needle.nn`` layers exactly as the course defines it."""

from __future__ import annotations

import importlib.util
from typing import Any

NN_LAYERS = ("Linear", "BatchNorm1d", "ReLU", "Dropout", "Residual", "Sequential", "SoftmaxLoss")


def submodule(name: str) -> Any | None:
    """``needle.<name>`` imported explicitly (an attribute of ``needle`` could be shadowed)."""
    if importlib.util.find_spec(f"needle.{name}") is None:
        return None
    return importlib.import_module(f"needle.{name}")


def unavailable_reason() -> str | None:
    """Why needle cannot run the training benchmarks here (None when it can)."""
    for name, needed in (("nn", NN_LAYERS), ("optim", ("Adam", "SGD"))):
        module = submodule(name)
        if module is None:
            return f"needle.{name} is not installed"
        missing = [n for n in needed if not hasattr(module, n)]
        if missing:
            return f"needle.{name} lacks {', '.join(missing)}"
    return None


def build(dim: int = 784, hidden: int = 100, blocks: int = 3, classes: int = 10,
          drop_prob: float = 0.1) -> tuple[Any, str]:
    """(model, where it came from)."""
    models = submodule("models")
    if models is not None and hasattr(models, "MLPResNet"):
        model = models.MLPResNet(dim, hidden_dim=hidden, num_blocks=blocks,
                                 num_classes=classes, drop_prob=drop_prob)
        return model, "needle.models.MLPResNet"
    nn = submodule("nn")

    def block(d: int, h: int) -> Any:
        return nn.Sequential(nn.Residual(nn.Sequential(
            nn.Linear(d, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(drop_prob),
            nn.Linear(h, d), nn.BatchNorm1d(d))), nn.ReLU())

    model = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(),
                          *[block(hidden, hidden // 2) for _ in range(blocks)],
                          nn.Linear(hidden, classes))
    return model, "needle.nn layers (benchmarks/needle_model.py)"
