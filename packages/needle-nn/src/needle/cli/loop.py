"""The resumable training loop: one step at a time, with a position that can be saved.

``run_epoch`` in ``needle.models.training`` runs a whole epoch; the command line
needs to stop after any step (Ctrl-C) and later continue *exactly* there. So the
epoch's plan (the sample permutation the DataLoader drew), the number of batches
done, the running sums and, for a language model, the hidden state carried
between chunks live in a ``Position`` that goes into the checkpoint.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from needle import Device, Tensor, no_grad

from .. import data, nn, optim
from .sources import Images, Tokens

Batch = tuple[Tensor, Tensor]
EVAL_BATCH = 256


@dataclass
class Position:
    """Progress through the current epoch (everything needed to continue it exactly)."""

    order: np.ndarray | None = None  # the epoch's permutation (image tasks)
    batch: int = 0  # batches done
    errors: int = 0
    loss_sum: float = 0.0
    seen: int = 0
    seconds: float = 0.0
    carry: Any = None  # a language model's hidden state between chunks

    @property
    def loss(self) -> float:
        return self.loss_sum / self.seen if self.seen else float("nan")

    @property
    def accuracy(self) -> float:
        return 1.0 - self.errors / self.seen if self.seen else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"order": self.order, "batch": self.batch, "errors": self.errors,
                "loss_sum": self.loss_sum, "seen": self.seen, "seconds": self.seconds,
                "carry": self.carry}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Position:
        return cls(order=None if raw["order"] is None else np.asarray(raw["order"]),
                   batch=int(raw["batch"]), errors=int(raw["errors"]),
                   loss_sum=float(raw["loss_sum"]), seen=int(raw["seen"]),
                   seconds=float(raw["seconds"]), carry=raw["carry"])


class Diverged(Exception):  # noqa: N818 - names what happened, like StopIteration
    """Training produced a non-finite loss or weight (usually: the learning rate is too high)."""


def detach(state: Any) -> Any:
    """Cut the graph between chunks (truncated backpropagation through time)."""
    if isinstance(state, (tuple, list)):
        return tuple(detach(s) for s in state)
    return state.detach() if isinstance(state, Tensor) else state


class ImageTask:
    """Classification over an ``Images`` pair: shuffled batches from the course's DataLoader."""

    unit = "images"

    def __init__(self, images: Images, batch_size: int, device: Device) -> None:
        self.images, self.batch_size, self.device = images, batch_size, device
        self.loader = data.DataLoader(images.train, batch_size, shuffle=True, device=device)
        self.batches_per_epoch = len(self.loader)

    def start_epoch(self) -> tuple[Position, Iterator[Batch]]:
        """Draw this epoch's order (NumPy's global generator, as the course does)."""
        batches = iter(self.loader)
        return Position(order=np.concatenate(self.loader.ordering)), batches

    def continue_epoch(self, pos: Position) -> Iterator[Batch]:
        """The batches of ``pos.order`` after the first ``pos.batch``."""
        loader = data.DataLoader(self.images.train, self.batch_size, device=self.device)
        order, bs = pos.order, self.batch_size
        loader.ordering = [order[i:i + bs] for i in range(pos.batch * bs, len(order), bs)]
        return iter(loader)

    def test_batches(self) -> Iterator[Batch]:
        return iter(data.DataLoader(self.images.test, EVAL_BATCH, device=self.device))

    @staticmethod
    def forward(model: nn.Module, x: Tensor, carry: Any) -> tuple[Tensor, Any]:
        return model(x), None


class TextTask:
    """Language modelling: ``bptt``-step chunks of the batchified token stream."""

    unit = "tokens"

    def __init__(self, tokens: Tokens, batch_size: int, bptt: int, device: Device) -> None:
        self.device, self.bptt = device, bptt
        if min(len(tokens.train), len(tokens.test)) < 2 * batch_size:
            raise data.DataError(f"{len(tokens.train)} train / {len(tokens.test)} test tokens are "
                                 f"too few for --batch-size {batch_size} (each part needs at "
                                 f"least {2 * batch_size}: two rows of {batch_size} columns)")
        self.train = data.batchify(tokens.train, batch_size)
        self.test = data.batchify(tokens.test, batch_size)
        self.batches_per_epoch = len(range(0, self.train.shape[0] - 1, bptt))

    def _chunks(self, rows: np.ndarray, first: int) -> Iterator[Batch]:
        for i in range(first * self.bptt, rows.shape[0] - 1, self.bptt):
            yield data.get_batch(rows, i, self.bptt, device=self.device)

    def start_epoch(self) -> tuple[Position, Iterator[Batch]]:
        return Position(), self._chunks(self.train, 0)

    def continue_epoch(self, pos: Position) -> Iterator[Batch]:
        return self._chunks(self.train, pos.batch)

    def test_batches(self) -> Iterator[Batch]:
        return self._chunks(self.test, 0)

    @staticmethod
    def forward(model: nn.Module, x: Tensor, carry: Any) -> tuple[Tensor, Any]:
        return model(x, carry)


Task = ImageTask | TextTask


def _errors(logits: Tensor, y: Tensor) -> int:
    return int((logits.numpy().argmax(axis=1) != y.numpy().reshape(-1)).sum())


def train_steps(task: Task, model: nn.Module, opt: optim.Optimizer, pos: Position,
                batches: Iterator[Batch], clip: float | None = None,
                should_stop: Callable[[], bool] = lambda: False,
                on_batch: Callable[[Position, int], None] | None = None) -> bool:
    """Train on ``batches``, updating ``pos`` after every step.

    Returns True when the epoch is complete, False when ``should_stop()`` asked to
    stop after a step (``pos`` then says exactly where to continue). A non-finite
    loss raises ``Diverged`` before its step changes the weights.
    """
    loss_fn = nn.SoftmaxLoss()
    model.train()
    last = time.perf_counter()
    batch_norm = any(isinstance(m, nn.BatchNorm1d) for _, m in model.named_modules())
    for x, y in batches:
        if batch_norm and x.shape[0] == 1:
            # an epoch's last batch of one: batch norm cannot train on a single value per
            # channel (an error, as in PyTorch), so the step is skipped, not the bookkeeping
            pos.batch += 1
            continue
        opt.reset_grad()
        logits, carry = task.forward(model, x, pos.carry)
        loss = loss_fn(logits, y)
        value = float(loss.numpy())
        if not math.isfinite(value):
            raise Diverged(f"the training loss became {value} in batch {pos.batch + 1}")
        loss.backward()
        if clip:
            if hasattr(opt, "average_gradients"):  # data-parallel: clip the ranks' mean
                opt.average_gradients()
            optim.clip_grad_norm(model.parameters(), clip)
        opt.step()
        n = y.shape[0]
        pos.carry = detach(carry)
        pos.batch += 1
        pos.errors += _errors(logits, y)
        pos.loss_sum += value * n
        pos.seen += n
        now = time.perf_counter()
        pos.seconds += now - last
        last = now
        if on_batch is not None:
            on_batch(pos, n)
        if should_stop():
            return pos.batch >= task.batches_per_epoch
    return True


def evaluate(task: Task, model: nn.Module) -> tuple[float, float, int]:
    """(accuracy, mean loss per example, examples) on the task's test part, no training."""
    loss_fn = nn.SoftmaxLoss()
    model.eval()
    errors = seen = 0
    loss_sum = 0.0
    carry: Any = None
    with no_grad():
        for x, y in task.test_batches():
            logits, carry = task.forward(model, x, carry)
            n = y.shape[0]
            errors += _errors(logits, y)
            loss_sum += float(loss_fn(logits, y).numpy()) * n
            seen += n
    return 1.0 - errors / seen, loss_sum / seen, seen
