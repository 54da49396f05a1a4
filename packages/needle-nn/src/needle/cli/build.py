"""Models, optimizers and schedules from a ``Config``, and the run's checkpoint.

The checkpoint (one ``needle.save`` file, written atomically) holds everything a
run needs to continue bit for bit: config, model and optimizer state, schedule,
epochs done, the position inside the current epoch, NumPy's global generator
(dropout masks and shuffles draw from it) and the metrics history.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import needle as ndl
import numpy as np
from needle import Device

from .. import nn, optim
from ..models import LanguageModel, MLPResNet, ResNet9
from .loop import Position
from .options import CLIError, Config

KIND = "needle-train-run"
VERSION = 1
CHECKPOINT = "checkpoint.npz"


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


def save_run(path: Path, cfg: Config, model: nn.Module, opt: optim.Optimizer, sched: Any,
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
