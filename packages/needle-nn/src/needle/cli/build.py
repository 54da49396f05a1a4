"""Models, optimizers and schedules from a ``Config``, and the run's checkpoint.

The checkpoint (one ``needle.save`` file, written atomically) holds everything a
run needs to continue bit for bit: config, model and optimizer state, schedule,
epochs done, the position inside the current epoch, NumPy's global generator
(dropout masks and shuffles draw from it) and the metrics history.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import needle as ndl
import numpy as np
from needle import Device

from .. import nn, optim
from ..models import LanguageModel, MLPResNet, ResNet9
from .loop import Diverged, Position
from .options import CLIError, Config
from .rundir import CHECKPOINT, writing

KIND = "needle-train-run"
VERSION = 1


def build_model(cfg: Config, input_dim: int, device: Device) -> nn.Module:
    """The model of ``cfg``; ``input_dim`` is the features per image or the vocabulary size."""
    if cfg.model == "mlp-resnet":
        return MLPResNet(input_dim, hidden_dim=cfg.hidden_dim, device=device)
    if cfg.model == "resnet9":
        return ResNet9(device=device)
    return LanguageModel(cfg.embedding_dim, input_dim, cfg.hidden_dim, num_layers=cfg.num_layers,
                         seq_model=cfg.seq_model, seq_len=cfg.bptt, device=device)


def build_optimizer(cfg: Config, model: nn.Module) -> tuple[optim.Optimizer, Any]:
    """(optimizer, schedule or None); the cosine schedule spans ``cfg.epochs``."""
    if cfg.optimizer == "adam":
        opt: optim.Optimizer = optim.Adam(model.parameters(), lr=cfg.lr,
                                          weight_decay=cfg.weight_decay)
    else:
        opt = optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                        weight_decay=cfg.weight_decay)
    sched = optim.CosineAnnealingLR(opt, T_max=cfg.epochs) if cfg.schedule == "cosine" else None
    return opt, sched


def count_parameters(model: nn.Module) -> int:
    return sum(int(np.prod(p.shape)) for p in model.parameters())


# -- will it fit? -------------------------------------------------------------------------
def estimate(cfg: Config, input_dim: int) -> tuple[int, int]:
    """(parameters, float32 values held while training): a generous estimate from the sizes.

    Values held are the weights, their gradients and two optimizer buffers, plus the
    activations a batch keeps for the backward pass.
    """
    b = cfg.batch_size
    if cfg.model == "mlp-resnet":
        h, k = cfg.hidden_dim, cfg.hidden_dim // 2
        params = input_dim * h + h + 3 * (2 * h * k + 3 * k + 3 * h) + 10 * h + 10
        activations = b * (input_dim + 20 * h)
    elif cfg.model == "resnet9":
        params, activations = 500_000, b * 60_000
    else:
        gates = 4 if cfg.seq_model == "lstm" else 1
        e, h, n_layers, v = cfg.embedding_dim, cfg.hidden_dim, cfg.num_layers, input_dim
        seq = gates * h * (e + h + 2) + (n_layers - 1) * gates * h * (2 * h + 2)
        params = v * e + seq + h * v + v
        activations = cfg.bptt * b * (e + 4 * n_layers * gates * h + 3 * v)
    return params, 4 * params + 2 * activations


def available_memory() -> int | None:
    """Bytes this process may still allocate: free memory, capped by an address-space limit."""
    free = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        try:
            free = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            free = None
    try:
        import resource
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            free = soft if free is None else min(free, soft)
    except (ImportError, OSError, ValueError):
        pass
    return free


def check_memory(cfg: Config, input_dim: int) -> None:
    """A ``CLIError`` before building a model that cannot fit in this machine's free memory."""
    free = available_memory()
    params, values = estimate(cfg, input_dim)
    need = 4 * values
    if free is None or need <= free:
        return
    sizes = ", ".join(f"--{k.replace('_', '-')} {getattr(cfg, k)}"
                      for k in ("hidden_dim", "embedding_dim", "num_layers", "bptt", "batch_size")
                      if getattr(cfg, k) is not None and (cfg.model == "lm" or k in
                                                          ("hidden_dim", "batch_size")))
    raise CLIError(f"{sizes}: training this {cfg.model} needs about {need / 2**30:,.1f} GiB "
                   f"({params:,} parameters, their gradients and optimizer state, and a batch's "
                   f"activations), but only {free / 2**30:,.1f} GiB are free here; use smaller "
                   f"sizes")


def resolve_device(name: str) -> Device:
    """The device called ``name``, or a ``CLIError`` saying why it cannot be used."""
    try:
        dev = ndl.device(name)
        dev.backend  # noqa: B018 - loading it is the check
    except ndl.DeviceError as exc:
        raise CLIError(f"--device {name}: {exc}") from exc
    return dev


# -- the NumPy global generator ----------------------------------------------------------
def rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": keys, "pos": int(pos), "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached)}


def set_rng_state(state: dict[str, Any]) -> None:
    np.random.set_state((state["name"], np.asarray(state["keys"], dtype=np.uint32),
                         int(state["pos"]), int(state["has_gauss"]),
                         float(state["cached_gaussian"])))


# -- checkpoint files -------------------------------------------------------------------
def checkpoint_path(path: str | Path) -> Path:
    """A run directory means its ``checkpoint.npz``; a file path is used as it is."""
    path = Path(path)
    return path / CHECKPOINT if path.is_dir() else path


def check_finite(model: nn.Module) -> None:
    """``Diverged`` when a weight or buffer (batch-norm statistics) is NaN or infinite:
    such a model is never saved."""
    for name, t in model.state_dict().items():
        if not np.isfinite(t.numpy()).all():
            raise Diverged(f"{name} became non-finite")


def save_run(path: Path, cfg: Config, model: nn.Module, opt: optim.Optimizer, sched: Any,
             epoch: int, pos: Position | None, history: list[dict[str, Any]]) -> None:
    """The run's checkpoint, atomically; refused (``Diverged``) when a weight is not finite."""
    check_finite(model)
    with writing(path):
        _save(path, cfg, model, opt, sched, epoch, pos, history)


def _save(path: Path, cfg: Config, model: nn.Module, opt: optim.Optimizer, sched: Any,
          epoch: int, pos: Position | None, history: list[dict[str, Any]]) -> None:
    ndl.save({"kind": KIND, "version": VERSION, "config": cfg.to_dict(),
              "model": model.state_dict(), "optimizer": opt.state_dict(),
              "scheduler": sched.state_dict() if sched is not None else None,
              "epoch": epoch, "position": pos.to_dict() if pos is not None else None,
              "rng": rng_state(), "history": history}, path)


def read_run(path: str | Path, device: Device) -> tuple[Config, dict[str, Any]]:
    """(config, checkpoint) of a run, or a ``CLIError`` saying what is wrong with the file."""
    file = checkpoint_path(path)
    if not file.exists():
        where = f"{path} holds no {CHECKPOINT}" if Path(path).is_dir() else f"{path}: no such file"
        raise CLIError(f"{where} (a run directory written by 'needle train', or its {CHECKPOINT})")
    try:
        ckpt = ndl.load(file, device=device)
    except ndl.CheckpointError as exc:
        raise CLIError(str(exc)) from exc
    if not isinstance(ckpt, dict) or ckpt.get("kind") != KIND:
        raise CLIError(f"{file}: a needle checkpoint, but not of a 'needle train' run "
                       f"(no {KIND!r} marker)")
    if ckpt.get("version") != VERSION:
        raise CLIError(f"{file}: run checkpoint version {ckpt.get('version')!r}; this needle "
                       f"reads version {VERSION}")
    return Config.from_dict(ckpt.get("config"), str(file)), ckpt


def load_weights(file: str | Path, cfg: Config, model: nn.Module, ckpt: dict[str, Any]) -> None:
    """Model weights from ``ckpt``; a mismatch names the file and the model."""
    try:
        model.load_state_dict(ckpt["model"])
    except (ndl.NeedleError, TypeError, KeyError, AttributeError) as exc:
        raise CLIError(f"{checkpoint_path(file)}: its weights do not fit a {cfg.model} "
                       f"({str(exc)[:300]})") from exc


# -- a loaded run's progress, held to what a run can have written ---------------------------
_POSITION_KEYS = {"order", "batch", "errors", "loss_sum", "seen", "seconds", "carry"}
_METRIC_KEYS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "seconds",
                "train_seconds", "examples")


def _count(value: Any, low: int = 0, high: float = float("inf")) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _amount(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) and value >= 0


def check_state(file: Path, saved: Config, task: Any, ckpt: dict[str, Any]
                ) -> tuple[int, Position | None, list[dict[str, Any]]]:
    """(epochs done, position in the next epoch, metrics history), or a ``CLIError``
    naming the first entry of the checkpoint that no run could have saved."""

    def bad(what: str) -> CLIError:
        return CLIError(f"{file}: a damaged run checkpoint: {what}")

    epoch = ckpt.get("epoch")
    if not _count(epoch, 0, saved.epochs):
        raise bad(f"epochs done {epoch!r:.40} is not an integer in [0, {saved.epochs}]")
    history = ckpt.get("history")
    if not isinstance(history, list) or len(history) != epoch:
        raise bad(f"its metrics history is not a list of {epoch} epochs")
    for i, m in enumerate(history, 1):
        if not isinstance(m, dict) or m.get("epoch") != i or \
                not all(_amount(m.get(k)) for k in _METRIC_KEYS):
            raise bad(f"history entry {i} is not epoch {i}'s metrics ({m!r:.80})")
    _check_schedule(bad, saved, epoch, ckpt.get("optimizer"), ckpt.get("scheduler"))
    raw = ckpt.get("position")
    if raw is None:
        return epoch, None, history
    if not isinstance(raw, dict) or set(raw) != _POSITION_KEYS:
        raise bad(f"its position in the epoch is malformed ({raw!r:.80})")
    if epoch >= saved.epochs:
        raise bad(f"a position inside epoch {epoch + 1} of a {saved.epochs}-epoch run")
    if not _count(raw["batch"], 1, task.batches_per_epoch - 1):
        raise bad(f"position after batch {raw['batch']!r:.40}, but an epoch has "
                  f"{task.batches_per_epoch} batches")
    if not (_count(raw["seen"]) and _count(raw["errors"], 0, raw["seen"])
            and _amount(raw["loss_sum"]) and _amount(raw["seconds"])):
        raise bad("the position's running totals are not non-negative counts and sums")
    order = raw["order"]
    if hasattr(task, "images"):
        n = len(task.images.train)
        if (saved.processes or 1) > 1:  # a data-parallel run saves rank 0's shard of the order
            if not (isinstance(order, np.ndarray) and order.dtype.kind in "iu"
                    and order.ndim == 1 and 0 < order.size <= n
                    and np.unique(order).size == order.size
                    and order.min() >= 0 and order.max() < n):
                raise bad(f"the epoch's order is not a shard of the {n} training examples")
        elif not (isinstance(order, np.ndarray) and order.dtype.kind in "iu"
                  and order.shape == (n,) and np.array_equal(np.sort(order), np.arange(n))):
            raise bad(f"the epoch's order is not a permutation of the {n} training examples")
        if raw["carry"] is not None:
            raise bad("an image model's position carries a hidden state")
    elif order is not None:
        raise bad("a language model's position has an example order")
    else:
        _check_carry(bad, saved, raw["carry"])
    return epoch, Position.from_dict(raw), history


def _check_schedule(bad: Any, cfg: Config, epoch: int, opt: Any, sched: Any) -> None:
    """The optimizer's hyper-parameters and the schedule are the config's, at ``epoch``."""
    hyper = opt.get("hyper") if isinstance(opt, dict) else None
    if not isinstance(hyper, dict):
        raise bad("its optimizer state has no hyper-parameters")
    for key in ("weight_decay", "momentum"):
        if key in hyper and hyper[key] != getattr(cfg, key):
            raise bad(f"the optimizer's {key} {hyper[key]!r:.40} is not the run's "
                      f"{getattr(cfg, key)}")
    if cfg.schedule == "none":
        if hyper.get("lr") != cfg.lr:
            raise bad(f"the optimizer's lr {hyper.get('lr')!r:.40} is not the run's {cfg.lr}")
    elif not isinstance(sched, dict) or sched.get("base_lr") != cfg.lr \
            or sched.get("last_epoch") != epoch:
        raise bad(f"its schedule state {sched!r:.60} is not the run's (base lr {cfg.lr}, "
                  f"{epoch} epochs done)")


def _check_carry(bad: Any, cfg: Config, carry: Any) -> None:
    """A language model's hidden state between chunks: (h, c) for an LSTM, h for an RNN."""
    if carry is None:
        return
    parts = list(carry) if isinstance(carry, (tuple, list)) else [carry]
    if cfg.seq_model == "transformer":  # it attends within a chunk: the carry is never read
        if len(parts) != 1 or not isinstance(parts[0], ndl.Tensor):
            raise bad("the carried state of a transformer is not one tensor")
        return
    # a data-parallel run saves the whole job's columns (every rank's batch side by side)
    shape = (cfg.num_layers, cfg.batch_size * (cfg.processes or 1), cfg.hidden_dim)
    if len(parts) != (2 if cfg.seq_model == "lstm" else 1) or \
            not all(isinstance(t, ndl.Tensor) and t.shape == shape for t in parts):
        raise bad(f"the carried hidden state is not {'(h, c)' if cfg.seq_model == 'lstm' else 'h'}"
                  f" of shape {shape}")
