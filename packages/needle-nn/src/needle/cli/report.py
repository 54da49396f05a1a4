"""What a person sees: progress bars, one line per epoch, ``metrics.jsonl``, ``curves.png``
and the closing summary.

tqdm and matplotlib come with the ``cli`` extra (``pip install 'needle-nn[cli]'``);
without tqdm each epoch still prints a line, without matplotlib the plot is skipped
with a note. Plots use the Agg canvas directly (no pyplot, no global state, no display).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, TextIO

from . import rundir

try:
    from tqdm import tqdm
except ImportError:  # pragma: no cover - exercised where tqdm is absent
    tqdm = None


def say(text: str, file: TextIO | None = None) -> None:
    """Print without breaking a live progress bar."""
    file = file or sys.stderr
    if tqdm is not None:
        tqdm.write(text, file=file)
    else:
        print(text, file=file, flush=True)


class EpochBar:
    """A per-epoch progress bar showing running loss, accuracy and examples/s."""

    def __init__(self, epoch: int, epochs: int, total: int, done: int, unit: str) -> None:
        self.unit = unit
        self.bar = None
        if tqdm is not None:
            self.bar = tqdm(total=total, initial=done, desc=f"epoch {epoch}/{epochs}",
                            unit="batch", file=sys.stderr, dynamic_ncols=True, leave=True)

    def update(self, loss: float, accuracy: float, rate: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {loss:.4f}  acc {accuracy:6.2%}  "
                                     f"{rate:,.0f} {self.unit}/s", refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def epoch_line(m: dict[str, Any], epochs: int, unit: str = "examples") -> str:
    text = (f"epoch {m['epoch']}/{epochs}  train loss {m['train_loss']:.4f} acc "
            f"{m['train_acc']:.2%}  |  test loss {m['test_loss']:.4f} acc {m['test_acc']:.2%}")
    if "test_perplexity" in m:
        text += f" ppl {m['test_perplexity']:.1f}"
    return text + f"  |  {m['seconds']:.1f} s, {m['examples_per_s']:,.0f} {unit}/s"


def write_metrics(path: Path, history: list[dict[str, Any]]) -> None:
    """Rewrite ``metrics.jsonl`` from ``history``, atomically, after every epoch.

    A whole rewrite (a few kB) rather than an append: a reader never sees half a line,
    and a resume drops the lines written after its checkpoint.
    """
    rundir.write_text(path, "".join(json.dumps(m) + "\n" for m in history))


def plot_curves(path: Path, history: list[dict[str, Any]], title: str) -> str | None:
    """Write loss and accuracy per epoch to ``path``; returns a note instead if matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return "matplotlib is not installed: no curves.png (pip install 'needle-nn[cli]')"
    epochs = [m["epoch"] for m in history]
    fig = Figure(figsize=(9, 3.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    loss_ax, acc_ax = fig.subplots(1, 2)
    for ax, key, label in ((loss_ax, "loss", "loss (cross-entropy)"),
                           (acc_ax, "acc", "accuracy (%)")):
        scale = 100.0 if key == "acc" else 1.0
        for part, style in (("train", "o-"), ("test", "s-")):
            ax.plot(epochs, [m[f"{part}_{key}"] * scale for m in history], style, label=part,
                    markersize=4)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    best = max(history, key=lambda m: m["test_acc"])
    acc_ax.set_title(f"best test accuracy {best['test_acc']:.2%} (epoch {best['epoch']})",
                     fontsize=10)
    loss_ax.set_title(title, fontsize=10)
    if len(epochs) < 12:
        for ax in (loss_ax, acc_ax):
            ax.set_xticks(epochs)
    rundir.write_file(path, lambda f: fig.savefig(f, format="png"))
    return None


def summary(rows: list[tuple[str, str]]) -> str:
    """A two-column table."""
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k:<{width}}  {v}" for k, v in rows)


def rate(examples: int | float, seconds: float) -> float:
    return examples / seconds if seconds > 0 else math.nan
