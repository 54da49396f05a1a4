"""``needle train``: train, report, checkpoint every epoch, stop cleanly on Ctrl-C, resume exactly."""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import needle as ndl
import numpy as np

from ..data import DataError
from . import report, rundir, sources
from .build import (
    build_model,
    build_optimizer,
    check_finite,
    check_memory,
    check_state,
    checkpoint_path,
    count_parameters,
    load_weights,
    read_run,
    resolve_device,
    save_run,
    set_rng_state,
)
from .distributed import Parallel
from .loop import Diverged, ImageTask, Position, Task, TextTask, evaluate, train_steps
from .options import CLIError, Config, check_resume, resolve
from .rundir import CHECKPOINT, CURVES, METRICS

EXIT_INTERRUPTED = 130
PLOT_EVERY_S = 10.0  # curves.png is refreshed after an epoch at most this often, and at the end


class StopRequest:
    """Ctrl-C asks the loop to stop after the current step; a second Ctrl-C aborts at once.

    The previous checkpoint survives an abort: checkpoints are written atomically.
    """

    def __init__(self) -> None:
        self.requested = False
        self.quiet = False  # the other ranks of a data-parallel job: rank 0 tells the user
        self._previous: Any = None

    def __call__(self) -> bool:
        return self.requested

    def _handler(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if not self.quiet:
            report.say("\nCtrl-C: finishing this step and saving (press Ctrl-C again to abort)")

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


@dataclass
class Run:
    """Everything that changes while training."""

    cfg: Config
    out: Path
    model: Any
    opt: Any
    sched: Any
    task: Task
    note: str
    par: Parallel  # this process's part: alone, or one rank of a data-parallel job
    epoch: int = 0  # epochs done
    pos: Position | None = None  # inside epoch ``epoch + 1`` (None: at its start)
    history: list[dict[str, Any]] = field(default_factory=list)
    plotted: float = field(default_factory=time.perf_counter)  # last curves.png refresh
    lock: rundir.RunLock | None = None  # held until the process ends
    saved: str = "none yet"  # where the last checkpoint stands, for messages

    @property
    def checkpoint(self) -> Path:
        return self.out / CHECKPOINT

    def save(self) -> None:
        """Checkpoint the run; ``Diverged`` (and nothing written) when a weight is not finite.

        Every rank calls it (the position is gathered from all); rank 0 alone writes."""
        pos = self.par.gather(self.pos)  # on several ranks: the whole job's position
        if self.par.main:
            save_run(self.checkpoint, self.cfg, self.model, self.opt, self.sched, self.epoch,
                     pos, self.history)
        self.saved = (f"after epoch {self.epoch}" if self.pos is None
                      else f"in epoch {self.epoch + 1} after batch {self.pos.batch}")


def _new_out_dir(out: str | None, cfg: Config) -> Path:
    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path("runs") / f"{stamp}-{cfg.model}-{cfg.dataset}"
        n = 2
        while path.exists():
            path, n = Path("runs") / f"{stamp}-{cfg.model}-{cfg.dataset}-{n}", n + 1
        return path
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise CLIError(f"--out {out}: exists and is not a directory")
    _refuse_existing(path)
    return path


def _refuse_existing(path: Path) -> None:
    """A directory with a checkpoint holds a run: ``--resume`` continues it, ``--out`` may not."""
    if os.path.lexists(path / CHECKPOINT):
        raise CLIError(f"--out {path} already holds a run ({CHECKPOINT}): continue it with "
                       f"'needle train --resume {path}' or choose another --out")


def make_task(cfg: Config, data: sources.Images | sources.Tokens, dev: ndl.Device) -> Task:
    if isinstance(data, sources.Tokens):
        try:
            return TextTask(data, cfg.batch_size, cfg.bptt, dev)
        except DataError as exc:
            raise CLIError(str(exc)) from exc
    return ImageTask(data, cfg.batch_size, dev)


def input_dim(data: sources.Images | sources.Tokens) -> int:
    return len(data.vocab) if isinstance(data, sources.Tokens) else data.features


def check_fits(saved: Config, data: sources.Images | sources.Tokens, dataset: str,
               where: str) -> None:
    """Saved weights only make sense on data of the same width (and the same word ids)."""
    dim = input_dim(data)
    if saved.input_dim != dim:
        what = "words" if saved.model == "lm" else "input features"
        raise CLIError(f"{where}: its {saved.model} takes {saved.input_dim} {what} (trained on "
                       f"{saved.dataset}) but the {dataset} data here has {dim}")
    if isinstance(data, sources.Tokens) and saved.vocab_sha256 != data.vocab_sha256:
        raise CLIError(f"{where}: its lm was trained with other word ids than this text gives "
                       f"(ids follow the files read); use the files and --holdout it was trained on")


def _start(given: dict[str, Any], out: str | None, par: Parallel,
           again: str | None = None) -> Run:
    """A new run into ``out``; ``again`` is said when it restarts one that died early."""
    cfg = resolve(given)
    cfg.processes = par.size if par.size > 1 else None
    path = par.out_dir(lambda: _new_out_dir(out, cfg))
    dev = resolve_device(cfg.device)
    data = sources.load(cfg)
    cfg.input_dim = input_dim(data)
    if isinstance(data, sources.Tokens):
        cfg.vocab_sha256 = data.vocab_sha256
    check_memory(cfg, cfg.input_dim)
    task = make_task(cfg, data, dev)  # draws nothing: seeding below fixes the whole run
    ndl.manual_seed(cfg.seed)
    model = build_model(cfg, cfg.input_dim, dev)
    opt, sched = build_optimizer(cfg, model)
    if again is None and out is not None and par.main and rundir.has_traces(path):
        again = f"{path}: the run there stopped before its first checkpoint; starting it again"
    # Only now: a failed start leaves no directory. The lock comes before any write, and
    # a run that finished while we loaded the data is seen under it. Rank 0 alone writes.
    lock = rundir.claim(path) if par.main else None
    try:
        if par.main:
            _refuse_existing(path)
        run = Run(cfg, path, model, opt, sched, task, data.note, par, lock=lock)
        par.setup(run, data)
        if par.main:
            report.write_metrics(path / METRICS, [])
        run.save()  # epoch 0: from its first moment the run can be resumed
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    if again:
        report.say(again)
    return run


def _resume(given: dict[str, Any], resume: str, par: Parallel) -> Run:
    file = checkpoint_path(resume)
    out = file.parent
    if not os.path.lexists(file) and out.is_dir() and rundir.has_traces(out):
        return _start(given, str(out), par,
                      again=f"{resume} holds no {CHECKPOINT}: its run stopped before the first "
                            f"one; starting it from the beginning with the options given here")
    # before reading: one run here (rank 0 holds the lock for the job)
    lock = rundir.claim(out) if os.path.lexists(file) and par.main else None
    try:
        return _restore(given, resume, file, lock, par)
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def _restore(given: dict[str, Any], resume: str, file: Path, lock: rundir.RunLock | None,
             par: Parallel) -> Run:
    out = file.parent
    saved, ckpt = read_run(resume, ndl.cpu())
    cfg = check_resume(saved, given)
    par.check_resume(saved.processes, str(file))
    dev = resolve_device(cfg.device)
    data = sources.load(cfg)
    check_fits(saved, data, cfg.dataset, str(file))
    check_memory(cfg, cfg.input_dim)
    model = build_model(cfg, cfg.input_dim, dev)
    load_weights(file, cfg, model, ckpt)
    try:
        check_finite(model)
    except Diverged as exc:
        raise CLIError(f"{file}: a damaged run checkpoint ({exc})") from None
    opt, sched = build_optimizer(cfg, model)
    task = make_task(cfg, data, dev)
    epoch, pos, history = check_state(file, saved, task, ckpt)
    try:
        opt.load_state_dict(ckpt["optimizer"])
        if sched is not None:
            sched.load_state_dict(ckpt["scheduler"])
        set_rng_state(ckpt["rng"])
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError) as exc:
        raise CLIError(f"{file}: incomplete or inconsistent run checkpoint ({exc})") from exc
    if pos is not None and pos.carry is not None:
        pos.carry = _to_device(pos.carry, dev)
    if epoch >= cfg.epochs and pos is None:
        raise CLIError(f"the run in {resume} already finished its {epoch} epochs: pass "
                       f"--epochs N (more than {epoch}) to train further")
    if par.main:
        report.write_metrics(out / METRICS, history)
    run = Run(cfg, out, model, opt, sched, task, data.note, par, epoch, pos, history, lock=lock)
    run.saved = "the one this session resumed from"
    par.setup(run, data)
    return run


def _to_device(state: Any, dev: ndl.Device) -> Any:
    if isinstance(state, (tuple, list)):
        return tuple(_to_device(s, dev) for s in state)
    return state.to(dev) if isinstance(state, ndl.Tensor) else state


def _banner(run: Run, resumed: bool) -> str:
    c = run.cfg
    extra = f", momentum {c.momentum}" if c.optimizer == "sgd" else ""
    where = (f"resuming {run.out} at epoch {run.epoch + 1}"
             + (f", batch {run.pos.batch + 1}" if run.pos else "")) if resumed \
        else f"writing {run.out}"
    return (f"needle train: {c.model} ({count_parameters(run.model):,} parameters) on "
            f"{run.note}\n  {c.optimizer} lr {c.lr:g}{extra}, weight decay {c.weight_decay:g}, "
            f"{c.schedule} schedule, {run.par.describe_batch(c.batch_size)}, {c.epochs} epochs, "
            f"seed {c.seed}, device {c.device}; {where}")


def _one_epoch(run: Run, stop: StopRequest, progress: bool) -> bool:
    """Train (the rest of) epoch ``run.epoch + 1``; False when stopped in the middle."""
    task, cfg, par = run.task, run.cfg, run.par
    par.before_epoch(run)
    if run.pos is None:
        run.pos, batches = task.start_epoch()
    else:
        batches = task.continue_epoch(run.pos)
    pos = run.pos
    bar = report.EpochBar(run.epoch + 1, cfg.epochs, task.batches_per_epoch, pos.batch,
                          task.unit) if progress and par.main else None

    agreed = [False]  # the stop decision every rank took at the last step's Allreduce

    def on_batch(p: Position, n: int) -> None:
        # the job's totals, and a stop request on any rank stops all, at the same step
        agreed[0] = par.sync_step(p, stop)
        if bar is not None:
            bar.update(p.loss, p.accuracy, report.rate(p.seen, p.seconds))

    def should_stop() -> bool:
        # Not stop() itself: a Ctrl-C landing on one rank after the Allreduce would stop that
        # rank a step early while the others wait in the next step's collectives forever.
        return agreed[0]

    lr = run.opt.lr
    try:
        done = train_steps(task, run.model, run.opt, pos, batches, cfg.clip, should_stop,
                           on_batch)
    finally:
        if bar is not None:
            bar.close()
    if not done:
        return False
    started = time.perf_counter()
    # Rank 0 alone evaluates (the others would only repeat it) and writes.
    test_acc, test_loss, _ = evaluate(task, run.model) if par.main else (np.nan, np.nan, 0)
    if par.main and not math.isfinite(test_loss):
        raise Diverged(f"the test loss became {test_loss} after the epoch")
    metrics = {"epoch": run.epoch + 1, "lr": lr, "train_loss": pos.loss,
               "train_acc": pos.accuracy, "test_loss": test_loss, "test_acc": test_acc,
               "seconds": pos.seconds + time.perf_counter() - started,
               "train_seconds": pos.seconds, "examples": pos.seen,
               "examples_per_s": report.rate(pos.seen, pos.seconds)}
    if cfg.model == "lm":
        metrics["test_perplexity"] = float(np.exp(min(test_loss, 700.0)))
    if run.sched is not None:
        run.sched.step()
    run.epoch, run.pos = run.epoch + 1, None
    run.history.append(metrics)
    run.save()
    if not par.main:
        return True
    report.write_metrics(run.out / METRICS, run.history)
    report.say(report.epoch_line(metrics, cfg.epochs, task.unit))
    if time.perf_counter() - run.plotted >= PLOT_EVERY_S or run.epoch == cfg.epochs or stop():
        plot(run)
    return True


def plot(run: Run) -> None:
    """Refresh curves.png (a plot costs ~0.2-1 s on 2 busy cores, so not after every short epoch)."""
    note = report.plot_curves(run.out / CURVES, run.history, f"{run.cfg.model} on {run.cfg.dataset}")
    run.plotted = time.perf_counter()
    if note:
        report.say(note)


def _summary(run: Run, wall: float) -> str:
    h = run.history
    last = h[-1]
    seen = sum(m["examples"] for m in h)
    train_s = sum(m["train_seconds"] for m in h)
    rows = [("model", f"{run.cfg.model}, {count_parameters(run.model):,} parameters"),
            ("data", run.note),
            ("epochs", f"{run.epoch}"),
            *([("processes", f"{run.par.size} (MPI), global batch "
                             f"{run.cfg.batch_size * run.par.size}")] if run.par.size > 1 else []),
            ("test accuracy", f"{last['test_acc']:.2%} (best {max(m['test_acc'] for m in h):.2%})"),
            ("test loss", f"{last['test_loss']:.4f}"
             + (f" (perplexity {last['test_perplexity']:.1f})" if "test_perplexity" in last else "")),
            ("train accuracy", f"{last['train_acc']:.2%}"),
            ("time", f"{sum(m['seconds'] for m in h):.1f} s in epochs ({wall:.1f} s this session)"),
            ("throughput", f"{report.rate(seen, train_s):,.0f} {run.task.unit}/s (training)"),
            ("checkpoint", str(run.checkpoint)),
            ("metrics", str(run.out / METRICS))]
    if (run.out / CURVES).exists():
        rows.append(("plot", str(run.out / CURVES)))
    return report.summary(rows)


def train(given: dict[str, Any], out: str | None = None, resume: str | None = None,
          progress: bool = True, stop: StopRequest | None = None,
          par: Parallel | None = None) -> int:
    """Run ``needle train``; returns the exit status (0, or 130 when stopped and saved).

    Under ``mpiexec`` (``par``: this rank's part) it trains data-parallel; see ``distributed``.
    """
    if resume is not None and out is not None:
        raise CLIError("--out cannot be combined with --resume: a resumed run writes to its own "
                       "directory")
    par = par or Parallel.join()
    try:
        run = _resume(given, resume, par) if resume is not None else _start(given, out, par)
    except Diverged as exc:  # the weights as built or loaded; nothing was written
        raise CLIError(f"cannot start: {exc}") from None
    if par.main:
        report.say(_banner(run, resume is not None))
    started = time.perf_counter()
    stop = stop or StopRequest()
    stop.quiet = not par.main
    try:
        return _train(run, stop, progress, started)
    except Diverged as exc:
        raise CLIError(f"training diverged in epoch {run.epoch + 1}: {exc}; stopped and kept the "
                       f"last finite checkpoint {run.checkpoint} ({run.saved}); lower the learning "
                       f"rate (this run: --lr {run.cfg.lr:g})") from None
    finally:
        if run.lock is not None:
            run.lock.release()


def _train(run: Run, stop: StopRequest, progress: bool, started: float) -> int:
    par = run.par
    say = report.say if par.main else (lambda text: None)
    # Overflow and NaN warnings would only repeat, untidily, what Diverged then says in one line.
    with stop, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        while run.epoch < run.cfg.epochs:
            finished = _one_epoch(run, stop, progress)
            if not finished:
                run.save()
                p = run.pos
                say(f"stopped in epoch {run.epoch + 1} after batch {p.batch} of "
                    f"{run.task.batches_per_epoch}; saved {run.checkpoint}\n"
                    f"continue with: needle train --resume {run.out}")
                return EXIT_INTERRUPTED
            if par.agree_stop(stop) and run.epoch < run.cfg.epochs:
                say(f"stopped after epoch {run.epoch}; saved {run.checkpoint}\n"
                    f"continue with: needle train --resume {run.out}")
                return EXIT_INTERRUPTED
    if par.main:
        print(f"\nneedle train: done\n{_summary(run, time.perf_counter() - started)}", flush=True)
    return 0
