"""Training and evaluation loops with the course's semantics.

``epoch`` trains when given an optimizer and evaluates otherwise. Like the course,
each epoch starts with ``np.random.seed(4)`` so dropout masks and shuffles (and
therefore the reference numbers) are reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from needle import Tensor, no_grad

from .. import data, nn, optim
from .mlp_resnet import MLPResNet


def _batch_errors(logits: Tensor, y: Tensor) -> int:
    return int((logits.numpy().argmax(axis=1) != y.numpy().reshape(-1)).sum())


def run_epoch(batches: Iterable[tuple[Tensor, Tensor]], model: nn.Module,
              loss_fn: nn.Module, opt: optim.Optimizer | None = None,
              on_batch: Callable[[int, float, int], None] | None = None) -> tuple[float, float, int]:
    """One pass over ``batches``: returns (error rate, mean loss per example, examples).

    Trains (backward + step per batch) when ``opt`` is given, else evaluates under
    ``no_grad``. ``on_batch(n, loss, errors)`` is called after each batch (progress bars).
    """
    model.train() if opt is not None else model.eval()
    errors = seen = 0
    loss_sum = 0.0
    for x, y in batches:
        if opt is not None:
            opt.reset_grad()
            logits = model(x)
            loss = loss_fn(logits, y)
            loss.backward()
            opt.step()
        else:
            with no_grad():
                logits = model(x)
                loss = loss_fn(logits, y)
        n = logits.shape[0]
        batch_loss = float(loss.numpy())
        batch_errors = _batch_errors(logits, y)
        errors += batch_errors
        loss_sum += batch_loss * n
        seen += n
        if on_batch is not None:
            on_batch(n, batch_loss, batch_errors)
    if seen == 0:
        raise ValueError("epoch: the data loader yielded no batches")
    return errors / seen, loss_sum / seen, seen


def epoch(dataloader: data.DataLoader, model: nn.Module,
          opt: optim.Optimizer | None = None) -> tuple[float, float]:
    """Course hw2: (average error rate, average loss) over one pass of ``dataloader``."""
    np.random.seed(4)
    err, loss, _ = run_epoch(dataloader, model, nn.SoftmaxLoss(), opt)
    return err, loss


def evaluate_mnist(model: nn.Module, dataloader: data.DataLoader) -> tuple[float, float]:
    """(error rate, average loss) of ``model`` on ``dataloader``, without training."""
    return epoch(dataloader, model, None)


def train_mnist(batch_size: int = 100, epochs: int = 10, optimizer: Any = optim.Adam,
                lr: float = 0.001, weight_decay: float = 0.001, hidden_dim: int = 100,
                data_dir: str = "data") -> tuple[float, float, float, float]:
    """Course hw2: train an MLPResNet on MNIST files in ``data_dir``.

    Returns (train error, train loss, test error, test loss) of the last epoch.
    """
    np.random.seed(4)
    model = MLPResNet(28 * 28, hidden_dim=hidden_dim, num_classes=10)
    opt = optimizer(model.parameters(), lr=lr, weight_decay=weight_decay)
    train_set = data.MNISTDataset(f"{data_dir}/train-images-idx3-ubyte.gz",
                                  f"{data_dir}/train-labels-idx1-ubyte.gz")
    test_set = data.MNISTDataset(f"{data_dir}/t10k-images-idx3-ubyte.gz",
                                 f"{data_dir}/t10k-labels-idx1-ubyte.gz")
    train_loader = data.DataLoader(train_set, batch_size, shuffle=True)
    test_loader = data.DataLoader(test_set, batch_size)
    train_err = train_loss = 0.0
    for _ in range(epochs):
        train_err, train_loss = epoch(train_loader, model, opt)
    test_err, test_loss = epoch(test_loader, model, None)
    return train_err, train_loss, test_err, test_loss


def epoch_general_cifar10(dataloader: data.DataLoader, model: nn.Module,
                          loss_fn: nn.Module | None = None,
                          opt: optim.Optimizer | None = None) -> tuple[float, float]:
    """Course hw4: (average accuracy, average loss) over one pass."""
    np.random.seed(4)
    err, loss, _ = run_epoch(dataloader, model, loss_fn or nn.SoftmaxLoss(), opt)
    return 1.0 - err, loss


def train_cifar10(model: nn.Module, dataloader: data.DataLoader, n_epochs: int = 1,
                  optimizer: Any = optim.Adam, lr: float = 0.001, weight_decay: float = 0.001,
                  loss_fn: Any = nn.SoftmaxLoss) -> tuple[float, float]:
    """Course hw4: train for ``n_epochs``; returns the last epoch's (accuracy, loss)."""
    np.random.seed(4)
    opt = optimizer(model.parameters(), lr=lr, weight_decay=weight_decay)
    acc = loss = 0.0
    for _ in range(n_epochs):
        acc, loss = epoch_general_cifar10(dataloader, model, loss_fn(), opt)
    return acc, loss


def evaluate_cifar10(model: nn.Module, dataloader: data.DataLoader,
                     loss_fn: Any = nn.SoftmaxLoss) -> tuple[float, float]:
    """Course hw4: (accuracy, loss) without training."""
    np.random.seed(4)
    return epoch_general_cifar10(dataloader, model, loss_fn(), None)


def _detach_state(h: Any) -> Any:
    """Cut the graph between sequence chunks (truncated backpropagation through time)."""
    if h is None:
        return None
    if isinstance(h, tuple):
        return tuple(_detach_state(x) for x in h)
    return h.detach()


def ptb_batches(batches: np.ndarray, seq_len: int, device: Any = None,
                dtype: Any = "float32") -> Iterable[tuple[Tensor, Tensor]]:
    """(input, target) chunks of ``seq_len`` steps over batchified token ids."""
    for i in range(0, batches.shape[0] - 1, seq_len):
        yield data.get_batch(batches, i, seq_len, device=device, dtype=dtype)


def epoch_general_ptb(batches: np.ndarray, model: nn.Module, seq_len: int = 40,
                      loss_fn: nn.Module | None = None, opt: optim.Optimizer | None = None,
                      clip: float | None = None, device: Any = None,
                      dtype: Any = "float32") -> tuple[float, float]:
    """Course hw4: (average accuracy, average loss per token) over one pass; the
    hidden state is carried across chunks and detached between them."""
    np.random.seed(4)
    loss_fn = loss_fn or nn.SoftmaxLoss()
    model.train() if opt is not None else model.eval()
    state: Any = None
    errors = seen = 0
    loss_sum = 0.0
    for x, y in ptb_batches(batches, seq_len, device, dtype):
        if opt is not None:
            opt.reset_grad()
            logits, state = model(x, state)
            loss = loss_fn(logits, y)
            loss.backward()
            if clip is not None:
                optim.clip_grad_norm(model.parameters(), clip)
            opt.step()
        else:
            with no_grad():
                logits, state = model(x, state)
                loss = loss_fn(logits, y)
        state = _detach_state(state)
        n = y.shape[0]
        errors += _batch_errors(logits, y)
        loss_sum += float(loss.numpy()) * n
        seen += n
    if seen == 0:
        raise ValueError(f"epoch_general_ptb: {batches.shape[0]} rows of tokens give no "
                         f"chunk of seq_len {seq_len}")
    return 1.0 - errors / seen, loss_sum / seen


def train_ptb(model: nn.Module, batches: np.ndarray, seq_len: int = 40, n_epochs: int = 1,
              optimizer: Any = optim.SGD, lr: float = 4.0, weight_decay: float = 0.0,
              loss_fn: Any = nn.SoftmaxLoss, clip: float | None = None, device: Any = None,
              dtype: Any = "float32") -> tuple[float, float]:
    """Course hw4: train a language model; returns the last epoch's (accuracy, loss).
    ``exp(loss)`` is the perplexity."""
    np.random.seed(4)
    opt = optimizer(model.parameters(), lr=lr, weight_decay=weight_decay)
    acc = loss = 0.0
    for _ in range(n_epochs):
        acc, loss = epoch_general_ptb(batches, model, seq_len, loss_fn(), opt, clip, device, dtype)
    return acc, loss


def evaluate_ptb(model: nn.Module, batches: np.ndarray, seq_len: int = 40,
                 loss_fn: Any = nn.SoftmaxLoss, device: Any = None,
                 dtype: Any = "float32") -> tuple[float, float]:
    """Course hw4: (accuracy, loss per token) without training."""
    np.random.seed(4)
    return epoch_general_ptb(batches, model, seq_len, loss_fn(), None, None, device, dtype)


__all__ = [
    "epoch", "epoch_general_cifar10", "epoch_general_ptb", "evaluate_cifar10", "evaluate_mnist",
    "evaluate_ptb", "ptb_batches", "run_epoch", "train_cifar10", "train_mnist",
    "train_ptb",
]
