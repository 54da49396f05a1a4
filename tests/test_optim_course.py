"""Course compatibility: 10-714 hw2's optimizer set-ups reproduce the course's reference losses.

The data follow the course's deterministic recipe (NumPy's global generator reseeded
from the shape), the model is built right after ``np.random.seed(42)``, and the
returned number is the loss of the last mini-batch (or of a held-out batch in eval
mode). The expected values are the course's published reference numbers.
"""

from __future__ import annotations

import needle as ndl
import needle.nn as nn
import numpy as np
import pytest
from needle.optim import SGD, Adam


def course_features(rows: int, cols: int, entropy: int = 1) -> np.ndarray:
    np.random.seed(rows * cols * 2 * entropy)
    return (np.random.randint(0, 100, size=(rows, cols)) / 20).astype(np.float32)


def course_labels(rows: int, classes: int, entropy: int = 1) -> np.ndarray:
    np.random.seed(rows * entropy)
    return np.random.randint(0, classes, size=(rows,)).astype(np.uint8)


def mlp(features, classes, middle=()):
    return nn.Sequential(nn.Linear(features, 32), nn.ReLU(), *middle, nn.Linear(32, classes))


def train_course_model(make_model, opt_cls, epochs=1, eval_batch=False, **kwargs):
    np.random.seed(42)
    model = make_model()
    x, y = course_features(1024, 64), course_labels(1024, 16)
    loss_fn = nn.SoftmaxLoss()
    opt = opt_cls(model.parameters(), **kwargs)
    for _ in range(epochs):
        for xb, yb in zip(np.array_split(x, 32), np.array_split(y, 32)):
            opt.reset_grad()
            loss = loss_fn(model(ndl.Tensor(xb, dtype="float32")), ndl.Tensor(yb))
            loss.backward()
            first = model.parameters()[0].grad
            grad_before = first.numpy().copy()
            opt.step()
            np.testing.assert_array_equal(first.numpy(), grad_before, "step changed a gradient")
    if eval_batch:
        model.eval()
        loss = loss_fn(model(ndl.Tensor(course_features(32, 64))), ndl.Tensor(course_labels(32, 16)))
    return float(loss.numpy())


CASES = {
    "sgd": (lambda: mlp(64, 16), SGD, {"lr": 0.01}, 3.207009),
    "sgd-momentum": (lambda: mlp(64, 16), SGD, {"lr": 0.01, "momentum": 0.9}, 3.311805),
    "sgd-weight-decay": (lambda: mlp(64, 16), SGD, {"lr": 0.01, "weight_decay": 0.01}, 3.202637),
    "sgd-momentum-weight-decay": (lambda: mlp(64, 16), SGD,
                                  {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.01}, 3.306993),
    "sgd-residual-3-epochs": (
        lambda: nn.Sequential(nn.Linear(64, 8), nn.ReLU(), nn.Residual(nn.Linear(8, 8)),
                              nn.Linear(8, 16)),
        SGD, {"lr": 0.01, "weight_decay": 0.001, "epochs": 3}, 2.852236),
    "adam": (lambda: mlp(64, 16), Adam, {"lr": 0.001}, 3.703999),
    "adam-weight-decay": (lambda: mlp(64, 16), Adam, {"lr": 0.001, "weight_decay": 0.01}, 3.705134),
    "adam-batchnorm": (lambda: mlp(64, 16, [nn.BatchNorm1d(32)]), Adam,
                       {"lr": 0.001, "weight_decay": 0.001}, 3.296256),
    "adam-batchnorm-eval": (lambda: mlp(64, 16, [nn.BatchNorm1d(32)]), Adam,
                            {"lr": 0.001, "weight_decay": 0.001, "eval_batch": True}, 3.192054),
    "adam-layernorm": (lambda: mlp(64, 16, [nn.LayerNorm1d(32)]), Adam,
                       {"lr": 0.01, "weight_decay": 0.01}, 2.82192),
}


@pytest.mark.parametrize("name", list(CASES))
def test_course_reference_losses(name):
    make_model, opt_cls, kwargs, expected = CASES[name]
    np.testing.assert_allclose(train_course_model(make_model, opt_cls, **kwargs), expected,
                               rtol=1e-5, atol=1e-5)
