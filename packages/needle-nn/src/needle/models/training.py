"""Training and evaluation: one step and one epoch loop for everything that trains.

``train_step`` / ``eval_step`` run one batch, ``run_epoch`` a whole pass. The course's
helpers below (``epoch``, ``train_*``, ``evaluate_*``, ``epoch_general_*``, with the
course's signatures) are ``run_epoch`` with the course's settings, and ``needle train``
(``needle/cli/loop.py``) calls the same steps one at a time, so that it can stop after
any of them and resume. Like the course, each helper starts with
``np.random.seed(4)`` so dropout masks and shuffles (and therefore the reference
numbers) are reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from needle import Tensor, no_grad

from .. import data, nn, optim
from .mlp_resnet import MLPResNet

#: ``forward(model, x, carry) -> (logits, carry)``: how a model meets a batch.
Forward = Callable[[nn.Module, Tensor, Any], tuple[Tensor, Any]]


def feed(model: nn.Module, x: Tensor, carry: Any) -> tuple[Tensor, Any]:
    """A classifier: ``model(x)``, nothing carried between batches."""
    return model(x), None


def feed_carry(model: nn.Module, x: Tensor, carry: Any) -> tuple[Tensor, Any]:
    """A sequence model: ``model(x, state)`` returns the logits and the state to carry on."""
    return model(x, carry)


def detach_state(state: Any) -> Any:
    """Cut the graph between sequence chunks (truncated backpropagation through time)."""
    if isinstance(state, (tuple, list)):
        return tuple(detach_state(s) for s in state)
    return state.detach() if isinstance(state, Tensor) else state


@dataclass
class Tally:
    """Running sums over an epoch: misclassified examples, summed loss, examples seen."""

    errors: int = 0
    loss_sum: float = 0.0
    seen: int = 0

    def add(self, logits: Tensor, y: Tensor, loss: float) -> int:
        """Count one batch whose mean loss was ``loss``; returns its errors."""
        n = y.shape[0]
        errors = int((logits.numpy().argmax(axis=1) != y.numpy().reshape(-1)).sum())
        self.errors += errors
        self.loss_sum += loss * n
        self.seen += n
        return errors

    @property
    def loss(self) -> float:
        """Mean loss per example."""
        return self.loss_sum / self.seen if self.seen else float("nan")

    @property
    def error_rate(self) -> float:
        return self.errors / self.seen if self.seen else float("nan")

    @property
    def accuracy(self) -> float:
        return 1.0 - self.errors / self.seen if self.seen else float("nan")


def train_step(model: nn.Module, loss_fn: nn.Module, opt: optim.Optimizer, x: Tensor,
               y: Tensor, carry: Any = None, *, forward: Forward = feed,
               clip: float | None = None,
               check: Callable[[float], None] | None = None) -> tuple[Tensor, float, Any]:
    """One update on the batch ``(x, y)``: returns (logits, loss, carry detached).

    ``check(loss)`` runs before the gradient changes anything (``needle train`` stops on a
    non-finite loss there). With ``clip`` the gradients' joint norm is clipped to it,
    after a data-parallel optimizer averaged them across ranks.
    """
    opt.reset_grad()
    logits, carry = forward(model, x, carry)
    loss = loss_fn(logits, y)
    value = float(loss.numpy())
    if check is not None:
        check(value)
    loss.backward()
    if clip is not None:
        if hasattr(opt, "average_gradients"):  # data-parallel: clip the ranks' mean
            opt.average_gradients()
        optim.clip_grad_norm(model.parameters(), clip)
    opt.step()
    return logits, value, detach_state(carry)


def eval_step(model: nn.Module, loss_fn: nn.Module, x: Tensor, y: Tensor, carry: Any = None,
              *, forward: Forward = feed) -> tuple[Tensor, float, Any]:
    """The batch's (logits, loss, carry) without a graph or an update."""
    with no_grad():
        logits, carry = forward(model, x, carry)
        return logits, float(loss_fn(logits, y).numpy()), carry


def run_epoch(batches: Iterable[tuple[Tensor, Tensor]], model: nn.Module,
              loss_fn: nn.Module, opt: optim.Optimizer | None = None,
              on_batch: Callable[[int, float, int], None] | None = None, *,
              forward: Forward = feed, clip: float | None = None) -> tuple[float, float, int]:
    """One pass over ``batches``: returns (error rate, mean loss per example, examples).

    Trains (``train_step`` per batch) when ``opt`` is given, else evaluates
    (``eval_step``). ``forward`` says how the model takes a batch (``feed_carry`` for a
    sequence model, whose state is carried from batch to batch).
    ``on_batch(n, loss, errors)`` is called after each batch (progress bars).
    """
    model.train() if opt is not None else model.eval()
    tally, carry = Tally(), None
    for x, y in batches:
        if opt is not None:
            logits, loss, carry = train_step(model, loss_fn, opt, x, y, carry, forward=forward,
                                             clip=clip)
        else:
            logits, loss, carry = eval_step(model, loss_fn, x, y, carry, forward=forward)
        errors = tally.add(logits, y, loss)
        if on_batch is not None:
            on_batch(y.shape[0], loss, errors)
    if tally.seen == 0:
        raise ValueError("epoch: the data loader yielded no batches")
    return tally.error_rate, tally.loss, tally.seen


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
    if batches.shape[0] < 2:
        raise ValueError(f"epoch_general_ptb: {batches.shape[0]} rows of tokens give no "
                         f"chunk of seq_len {seq_len}")
    err, loss, _ = run_epoch(ptb_batches(batches, seq_len, device, dtype), model,
                             loss_fn or nn.SoftmaxLoss(), opt, forward=feed_carry, clip=clip)
    return 1.0 - err, loss


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
    "Tally", "detach_state", "epoch", "epoch_general_cifar10", "epoch_general_ptb",
    "eval_step", "evaluate_cifar10", "evaluate_mnist", "evaluate_ptb", "feed", "feed_carry",
    "ptb_batches", "run_epoch", "train_cifar10", "train_mnist", "train_ptb", "train_step",
]
