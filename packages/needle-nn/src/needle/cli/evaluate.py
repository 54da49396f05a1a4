"""``needle eval`` (a checkpoint on a data set) and ``needle backends`` (what can run where)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import needle as ndl
import numpy as np

from . import report, sources
from .build import (
    build_model,
    checkpoint_path,
    count_parameters,
    load_weights,
    read_run,
    resolve_device,
)
from .loop import evaluate
from .options import CLIError, check_pair, default_data_dir, validate
from .train import check_fits, make_task


def eval_checkpoint(checkpoint: str, given: dict[str, Any]) -> int:
    """Accuracy and loss of the checkpoint's model on the data set it names (or ``--dataset``)."""
    saved, ckpt = read_run(checkpoint, ndl.cpu())
    file = checkpoint_path(checkpoint)
    model_name = given.get("model")
    if model_name is not None and model_name != saved.model:
        raise CLIError(f"{file} holds a {saved.model} model, not {model_name}")
    dataset = given.get("dataset") or saved.dataset
    check_pair(saved.model, dataset)
    same = dataset == saved.dataset
    cfg = replace(
        saved, dataset=dataset,
        data_dir=str(Path(given["data_dir"]).resolve()) if given.get("data_dir")
        else (saved.data_dir if same else default_data_dir(dataset)),
        holdout=given["holdout"] if given.get("holdout") is not None
        else (saved.holdout if same else None),
        device=given.get("device") or saved.device,
        batch_size=given.get("batch_size") or saved.batch_size)
    validate(cfg)
    dev = resolve_device(cfg.device)
    data = sources.load(cfg)
    check_fits(saved, data, dataset, str(file))
    model = build_model(saved, saved.input_dim, dev)
    load_weights(file, saved, model, ckpt)
    accuracy, loss, n = evaluate(make_task(cfg, data, dev), model)
    rows = [("checkpoint", f"{file} ({saved.model}, {count_parameters(model):,} parameters, "
                           f"{ckpt.get('epoch')} epochs on {saved.dataset})"),
            ("data", f"{data.note}; evaluated {n:,} held-out/test "
                     f"{'tokens' if saved.model == 'lm' else 'examples'}"),
            ("accuracy", f"{accuracy:.2%}"),
            ("loss", f"{loss:.4f}")]
    if saved.model == "lm":
        rows.append(("perplexity", f"{float(np.exp(min(loss, 700.0))):.1f}"))
    print(report.summary(rows), flush=True)
    return 0


def list_backends() -> int:
    """Each installed backend, whether it can run here, and why not."""
    infos = ndl.backends()
    if not infos:
        print("no needle backends are installed: pip install needle-backend-cpu")
        return 0
    default = ndl.default_device().name
    rows = [("backend", "distribution", "status")]
    for info in infos:
        status = "usable" if info.usable else f"not usable: {info.reason}"
        if info.name == default:
            status += " (default device)"
        rows.append((info.name, info.distribution or "?", status))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    for name, dist, status in rows:
        print(f"{name:<{w0}}  {dist:<{w1}}  {status}")
    return 0
