"""The ``needle`` command: ``needle train``, ``needle eval``, ``needle backends``.

Exit status: 0 on success, 2 for bad input (one line on stderr naming the problem
and the valid choices or the missing file; never a traceback), for an output path
that cannot be written and for a run that diverged, 130 when Ctrl-C stopped
training after saving a checkpoint that ``--resume`` continues.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from .options import DATASETS, DEFAULTS, MODELS, OPTIMIZERS, SCHEDULES, SEQ_MODELS, CLIError

EXIT_USAGE = 2

__all__ = ["CLIError", "build_parser", "main"]


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _number(kind: Callable[[str], Any], low: float, strict: bool, what: str
            ) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (value > low if strict else value >= low) or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value
    return parse


positive_int = _number(int, 0, True, "a positive integer")
non_negative_int = _number(int, 0, False, "an integer >= 0")
positive_float = _number(float, 0.0, True, "a number > 0")
non_negative_float = _number(float, 0.0, False, "a number >= 0")


def _defaults_table() -> str:
    lines = ["defaults per data set (any option given overrides them):"]
    for name, d in DEFAULTS.items():
        lines.append(f"  {name:<8} {d['optimizer']} lr {d['lr']:g}, weight decay "
                     f"{d['weight_decay']:g}, {d['schedule']} schedule, batch {d['batch_size']}, "
                     f"{d['epochs']} epochs")
    lines += ["",
              "data directories: --data-dir, else $NEEDLE_DATA_DIR/<dataset>, else ./data/<dataset>:",
              "  mnist    train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,",
              "           t10k-labels-idx1-ubyte (each raw or .gz)",
              "  cifar10  cifar-10-batches-py/ (data_batch_1..5, test_batch), or that folder itself",
              "  ptb      train.txt and test.txt (or ptb.train.txt and ptb.test.txt)",
              "  With --holdout N only the test files are needed: training uses all but N of",
              "  their examples (tokens for ptb) and evaluation the N held out (a fixed split).",
              "",
              "output: --out DIR (default runs/<date>-<time>-<model>-<dataset>) receives",
              "  checkpoint.npz, metrics.jsonl and curves.png after every epoch. Ctrl-C stops",
              "  after the current step and saves; 'needle train --resume DIR' continues exactly.",
              "  One run per directory: a second one there exits 2 naming the first."]
    return "\n".join(lines)


def _add_data_options(p: argparse.ArgumentParser, defaults_note: str) -> None:
    p.add_argument("--dataset", choices=DATASETS, help=f"data set {defaults_note}")
    p.add_argument("--data-dir", metavar="DIR", help="folder with the data set's files")
    p.add_argument("--holdout", type=positive_int, metavar="N",
                   help="evaluate on N examples held out of the test files and train on the rest "
                        "(digits: of all 1,797 images; default 360)")
    p.add_argument("--device", metavar="NAME", help="cpu (default), cuda, ... ('needle backends')")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="needle", description="Train and evaluate needle's models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,eval,backends}")

    t = sub.add_parser("train", help="train a model (default: MLP-ResNet on the built-in digits)",
                       description="Train a model; every option has a per-data-set default.",
                       epilog=_defaults_table(), formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--model", choices=MODELS,
                   help="mlp-resnet (digits, mnist), resnet9 (cifar10), lm (ptb)")
    _add_data_options(t, "(default: digits, or the model's own)")
    t.add_argument("--epochs", type=positive_int, metavar="N")
    t.add_argument("--batch-size", type=positive_int, metavar="N")
    t.add_argument("--optimizer", choices=OPTIMIZERS)
    t.add_argument("--lr", type=positive_float, metavar="LR")
    t.add_argument("--momentum", type=non_negative_float, metavar="M",
                   help="SGD momentum (the course's averaged form; default 0.9)")
    t.add_argument("--weight-decay", type=non_negative_float, metavar="WD")
    t.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule over the epochs")
    t.add_argument("--seed", type=non_negative_int, metavar="N", help="default 0")
    t.add_argument("--hidden-dim", type=positive_int, metavar="N", help="default 100")
    t.add_argument("--embedding-dim", type=positive_int, metavar="N", help="lm only; default 100")
    t.add_argument("--num-layers", type=positive_int, metavar="N", help="lm only; default 1")
    t.add_argument("--seq-model", choices=SEQ_MODELS, help="lm only; default lstm")
    t.add_argument("--bptt", type=positive_int, metavar="N",
                   help="lm only: tokens per chunk (default 35)")
    t.add_argument("--clip", type=positive_float, metavar="NORM",
                   help="clip the gradient norm (lm default 1.0)")
    t.add_argument("--out", metavar="DIR", help="output directory (default runs/<timestamp>-...)")
    t.add_argument("--resume", metavar="DIR", help="continue the run saved in DIR")
    t.add_argument("--no-progress", action="store_true",
                   help="no progress bars, only a line per epoch")
    t.add_argument("--nproc", type=positive_int, metavar="N",
                   help="train data-parallel on N processes of this machine (starts mpiexec; "
                        "--batch-size is per process; needs the mpi extra). On a cluster: "
                        "mpiexec -n N needle train ... or srun needle train ...")

    e = sub.add_parser("eval", help="evaluate a checkpoint",
                       description="Accuracy and loss of a saved model; its configuration comes "
                                   "from the checkpoint, the data set too unless given.")
    e.add_argument("--checkpoint", required=True, metavar="PATH",
                   help="a run directory or its checkpoint.npz")
    e.add_argument("--model", choices=MODELS, help="fail unless the checkpoint holds this model")
    _add_data_options(e, "(default: the one it was trained on)")
    e.add_argument("--batch-size", type=positive_int, metavar="N", help=argparse.SUPPRESS)

    sub.add_parser("backends", help="installed backends, whether each is usable here, and why not")
    return parser


def _given(args: argparse.Namespace) -> dict[str, Any]:
    skip = {"command", "out", "resume", "no_progress", "checkpoint", "nproc"}
    return {k: v for k, v in vars(args).items() if k not in skip}


def _fail(prog: str, message: str) -> int:
    """The one line of a failure; the exit status of bad input."""
    print(f"{prog}: error: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``needle`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    prog = f"needle {args.command}"
    try:
        if args.command == "backends":
            from .evaluate import list_backends
            return list_backends()
        if args.command == "eval":
            from .evaluate import eval_checkpoint
            return eval_checkpoint(args.checkpoint, _given(args))
        from .distributed import launch, together
        from .train import train
        if args.nproc is not None:
            status = launch(args.nproc, argv)
            if status is not None:
                return status
        return together(prog, lambda par: train(_given(args), out=args.out, resume=args.resume,
                                                progress=not args.no_progress, par=par))
    except CLIError as exc:
        return _fail(prog, str(exc))
    except OSError as exc:  # an output path the writers did not name (they mostly do)
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(prog, f"{where}{exc.strerror or exc}")
    except MemoryError:
        return _fail(prog, "out of memory: use a smaller model (--hidden-dim) or --batch-size")
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted", file=sys.stderr)
        return 130
