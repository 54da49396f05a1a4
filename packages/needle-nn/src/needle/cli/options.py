"""What a training run is: the choices, the per-data-set defaults, and their validation.

Every option the user leaves out is filled from ``DEFAULTS`` for the chosen data
set (then ``MODEL_DEFAULTS``), so ``needle train`` alone is a tuned, quick run and
``needle train --dataset mnist`` is a sensible one too. The resolved ``Config`` is
stored in the checkpoint, which is how ``--resume`` and ``needle eval`` rebuild
the model without being told again.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any


class CLIError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


MODELS = ("mlp-resnet", "resnet9", "lm")
DATASETS = ("digits", "mnist", "cifar10", "ptb")
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("cosine", "none")
SEQ_MODELS = ("lstm", "rnn", "transformer")

#: The data sets each model can train on (their input shapes must fit).
DATASETS_FOR = {"mlp-resnet": ("digits", "mnist"), "resnet9": ("cifar10",), "lm": ("ptb",)}
#: The model picked when only ``--dataset`` is given.
MODEL_FOR = {"digits": "mlp-resnet", "mnist": "mlp-resnet", "cifar10": "resnet9", "ptb": "lm"}
_SHAPES = {"mlp-resnet": "flat image vectors", "resnet9": "3x32x32 colour images",
           "lm": "token ids"}

#: Per data set, tuned for a quick and good run on 2 CPU cores (see the README).
DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"epochs": 10, "batch_size": 64, "optimizer": "adam", "lr": 0.003,
               "weight_decay": 1e-3, "schedule": "cosine"},
    "mnist": {"epochs": 5, "batch_size": 64, "optimizer": "adam", "lr": 0.005,
              "weight_decay": 1e-3, "schedule": "cosine"},
    "cifar10": {"epochs": 10, "batch_size": 128, "optimizer": "adam", "lr": 0.001,
                "weight_decay": 1e-3, "schedule": "cosine"},
    "ptb": {"epochs": 3, "batch_size": 16, "optimizer": "adam", "lr": 0.003,
            "weight_decay": 0.0, "schedule": "cosine"},
}
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "mlp-resnet": {"hidden_dim": 100},
    "resnet9": {},
    "lm": {"hidden_dim": 100, "embedding_dim": 100, "num_layers": 1, "seq_model": "lstm",
           "bptt": 35, "clip": 1.0},
}


@dataclass
class Config:
    """One training run, fully resolved (plain values only: it goes into the checkpoint)."""

    model: str
    dataset: str
    data_dir: str | None
    holdout: int | None
    epochs: int
    batch_size: int
    optimizer: str
    lr: float
    momentum: float
    weight_decay: float
    schedule: str
    seed: int
    device: str
    hidden_dim: int | None = None
    embedding_dim: int | None = None
    num_layers: int | None = None
    seq_model: str | None = None
    bptt: int | None = None
    clip: float | None = None
    # Filled from the data, not by the user: what the saved weights expect.
    input_dim: int | None = None  # features per image, or the vocabulary size
    vocab_sha256: str | None = None  # a language model's word list (ids must mean the same)
    processes: int | None = None  # ranks of a data-parallel run (None: one process)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> Config:
        names = {f.name for f in fields(cls)}
        if not isinstance(raw, dict) or not {"model", "dataset"} <= set(raw) or set(raw) - names:
            raise CLIError(f"{where}: not a needle training checkpoint (its config is missing "
                           f"or has unknown entries)")
        cfg = cls(**{k: raw.get(k) for k in names})
        if cfg.model not in MODELS or cfg.dataset not in DATASETS:
            raise CLIError(f"{where}: checkpoint of an unknown model/data set "
                           f"({cfg.model!r} on {cfg.dataset!r})")
        validate(cfg, where)
        return cfg


TRAIN_KEYS = ("model", "dataset", "data_dir", "holdout", "epochs", "batch_size", "optimizer",
              "lr", "momentum", "weight_decay", "schedule", "seed", "device", "hidden_dim",
              "embedding_dim", "num_layers", "seq_model", "bptt", "clip")


LM_ONLY = ("embedding_dim", "num_layers", "seq_model", "bptt")


def check_pair(model: str, dataset: str) -> None:
    """A model/data-set mismatch is an error naming what fits."""
    if dataset not in DATASETS_FOR[model]:
        fits = " or ".join(DATASETS_FOR[model])
        raise CLIError(f"--model {model} cannot train on --dataset {dataset}: {model} takes "
                       f"{_SHAPES[model]} ({fits}); for {dataset} use --model {MODEL_FOR[dataset]}")


def default_data_dir(dataset: str) -> str | None:
    """``$NEEDLE_DATA_DIR/<dataset>`` if set, else ``./data/<dataset>`` (digits needs none)."""
    if dataset == "digits":
        return None
    root = os.environ.get("NEEDLE_DATA_DIR")
    return str(Path(root if root else "data", dataset).resolve())


def resolve(given: dict[str, Any]) -> Config:
    """Fill everything the user did not give (``None``) from the defaults."""
    model, dataset = given.get("model"), given.get("dataset")
    if dataset is None:
        dataset = DATASETS_FOR[model][0] if model else "digits"
    if model is None:
        model = MODEL_FOR[dataset]
    check_pair(model, dataset)
    if model != "lm":
        for key in LM_ONLY:
            if given.get(key) is not None:
                raise CLIError(f"--{key.replace('_', '-')} applies to --model lm only "
                               f"(this run trains {model})")
    values: dict[str, Any] = {"model": model, "dataset": dataset, "momentum": 0.9, "seed": 0,
                              "device": os.environ.get("NEEDLE_DEFAULT_DEVICE", "cpu"), "holdout": None,
                              **DEFAULTS[dataset], **MODEL_DEFAULTS[model]}
    values.update({k: v for k, v in given.items() if v is not None and k in TRAIN_KEYS})
    values["model"], values["dataset"] = model, dataset
    data_dir = given.get("data_dir")
    values["data_dir"] = str(Path(data_dir).resolve()) if data_dir else default_data_dir(dataset)
    cfg = Config(**{k: values.get(k) for k in TRAIN_KEYS})
    validate(cfg)
    return cfg


# -- validation: the one place that says which values a run may have ----------------------
MAX_SEED = 2**32 - 1  # NumPy's global generator takes 32-bit seeds
#: (kind, low, high, whether high is excluded). ``None`` is allowed where the model
#: does not use the option. Upper bounds keep arithmetic and allocations sane; whether
#: a model of these sizes fits in memory is checked once the data's width is known.
LIMITS: dict[str, tuple[type, float, float, bool]] = {
    "epochs": (int, 1, 100_000, False),
    "batch_size": (int, 1, 1 << 20, False),
    "lr": (float, 0.0, math.inf, False),
    "momentum": (float, 0.0, 1.0, True),
    "weight_decay": (float, 0.0, math.inf, False),
    "seed": (int, 0, MAX_SEED, False),
    "holdout": (int, 1, 1 << 40, False),
    "hidden_dim": (int, 1, 1 << 20, False),
    "embedding_dim": (int, 1, 1 << 20, False),
    "num_layers": (int, 1, 64, False),
    "bptt": (int, 1, 100_000, False),
    "clip": (float, 0.0, math.inf, False),
    "input_dim": (int, 1, 1 << 31, False),
}
_POSITIVE = {"lr", "clip"}  # strictly above their low bound
_CHOICES = {"model": MODELS, "dataset": DATASETS, "optimizer": OPTIMIZERS,
            "schedule": SCHEDULES, "seq_model": SEQ_MODELS}
_REQUIRED = {"model", "dataset", "epochs", "batch_size", "optimizer", "lr", "momentum",
             "weight_decay", "schedule", "seed", "device"}


def _bad_value(key: str, value: Any) -> str | None:
    """Why ``value`` cannot be option ``key`` (None when it can)."""
    if value is None:
        return "it is missing" if key in _REQUIRED else None
    if key in _CHOICES:
        return None if value in _CHOICES[key] else f"choose from {', '.join(_CHOICES[key])}"
    if key in ("device", "data_dir", "vocab_sha256"):
        return None if isinstance(value, str) and value and "\0" not in value else "not a name"
    kind, low, high, high_open = LIMITS[key]
    number = isinstance(value, (int, float)) and not isinstance(value, bool) \
        and (kind is float or isinstance(value, int))
    if not number or not math.isfinite(value):
        return f"expected {'a finite number' if kind is float else 'an integer'}"
    too_low = value <= low if key in _POSITIVE else value < low
    if too_low or value > high or (high_open and value == high):
        low_side = f"> {low:g}" if key in _POSITIVE else f">= {low:g}"
        high_side = f"< {high:g}" if high_open else (f"<= {high:,}" if high != math.inf else "")
        return f"must be {low_side}{' and ' + high_side if high_side else ''}"
    return None


def validate(cfg: Config, where: str | None = None) -> None:
    """A ``CLIError`` for the first value of ``cfg`` no run can have.

    ``where`` is the checkpoint it was read from (its saved options are held to the
    same rules as the command line's); ``None`` means the command line.
    """
    for key in TRAIN_KEYS + ("input_dim", "vocab_sha256"):
        value = getattr(cfg, key)
        why = _bad_value(key, value)
        if why is None:
            continue
        if where is None:
            raise CLIError(f"--{key.replace('_', '-')} {value}: {why}")
        raise CLIError(f"{where}: a damaged run checkpoint: its saved {key}={value!r:.60} is "
                       f"invalid ({why})")
    where = where or "the command line"
    try:
        check_pair(cfg.model, cfg.dataset)
    except CLIError as exc:
        if where is None:
            raise
        raise CLIError(f"{where}: a damaged run checkpoint ({exc})") from None
    if cfg.model == "lm" and None in (cfg.hidden_dim, cfg.embedding_dim, cfg.num_layers,
                                      cfg.seq_model, cfg.bptt):
        raise CLIError(f"{where}: a damaged run checkpoint: an lm without all its sizes")
    if cfg.model == "mlp-resnet" and (cfg.hidden_dim or 0) < 2:
        raise CLIError(f"--hidden-dim {cfg.hidden_dim}: an mlp-resnet needs at least 2 (its "
                       f"blocks are half as wide)" if where == "the command line" else
                       f"{where}: a damaged run checkpoint: an mlp-resnet needs hidden_dim >= 2")


def check_resume(saved: Config, given: dict[str, Any]) -> Config:
    """The saved run, with the few options a resume may change (epochs, device).

    Anything else given must equal the saved value: a resumed run is the same run.
    """
    changeable = {"epochs", "device", "data_dir"}
    for key in TRAIN_KEYS:
        value = given.get(key)
        if value is None or key in changeable:
            continue
        if value != getattr(saved, key):
            flag = "--" + key.replace("_", "-")
            raise CLIError(f"{flag} {value} differs from the checkpoint's {getattr(saved, key)}: "
                           f"--resume continues the saved run (only --epochs, --device and "
                           f"--data-dir may change)")
    updates = {k: given[k] for k in changeable if given.get(k) is not None}
    if "data_dir" in updates:
        updates["data_dir"] = str(Path(updates["data_dir"]).resolve())
    cfg = Config(**{**saved.to_dict(), **updates})
    validate(cfg)
    return cfg
