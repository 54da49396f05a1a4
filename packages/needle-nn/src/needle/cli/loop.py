"""The resumable training loop: ``needle.models.training``'s steps, with a position
that can be saved.

``run_epoch`` there runs a whole epoch; the command line runs the same
``train_step`` / ``eval_step`` but needs to stop after any step (Ctrl-C) and later
continue *exactly* there. So the epoch's plan (the sample permutation the DataLoader
drew), the number of batches done, the running sums (a ``Tally``) and, for a language
model, the hidden state carried between chunks live in a ``Position`` that goes into
the checkpoint.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from needle import Device, Tensor

from .. import data, nn, optim
from ..models import training
from ..models.training import Tally
from .sources import Images, Tokens

Batch = tuple[Tensor, Tensor]
EVAL_BATCH = 256


@dataclass
class Position(Tally):
    """Progress through the current epoch (everything needed to continue it exactly):
    the running sums of a ``Tally`` and where the epoch stands."""

    order: np.ndarray | None = None  # the epoch's permutation (image tasks)
    batch: int = 0  # batches done
    seconds: float = 0.0
    carry: Any = None  # a language model's hidden state between chunks

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

    forward = staticmethod(training.feed)


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

    forward = staticmethod(training.feed_carry)


Task = ImageTask | TextTask


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

    def check(loss: float) -> None:
        if not math.isfinite(loss):
            raise Diverged(f"the training loss became {loss} in batch {pos.batch + 1}")

    for x, y in batches:
        if batch_norm and x.shape[0] == 1:
            # an epoch's last batch of one: batch norm cannot train on a single value per
            # channel (an error, as in PyTorch), so the step is skipped, not the bookkeeping
            pos.batch += 1
            continue
        logits, loss, pos.carry = training.train_step(
            model, loss_fn, opt, x, y, pos.carry, forward=task.forward, clip=clip or None,
            check=check)
        pos.batch += 1
        pos.add(logits, y, loss)
        now = time.perf_counter()
        pos.seconds += now - last
        last = now
        if on_batch is not None:
            on_batch(pos, y.shape[0])
        if should_stop():
            return pos.batch >= task.batches_per_epoch
    return True


def evaluate(task: Task, model: nn.Module) -> tuple[float, float, int]:
    """(accuracy, mean loss per example, examples) on the task's test part, no training."""
    err, loss, seen = training.run_epoch(task.test_batches(), model, nn.SoftmaxLoss(),
                                         forward=task.forward)
    return 1.0 - err, loss, seen
