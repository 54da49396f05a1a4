"""What the language-model benchmarks (``lstm_lm``, ``transformer_lm``) share: synthetic
batches of the course's Penn Treebank layout, the training step of each framework, and
the run itself: a check that both frameworks train the same network, then the two
timings of ``_harness.compare``. Each benchmark states only its model and shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import _harness
import numpy as np

Step = _harness.Step


def batches(steps: int, vocab: int, seq: int, batch: int,
            seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(ids (seq, batch), next ids (seq·batch,)) pairs, int64, as the course's PTB batches."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        ids = rng.integers(0, vocab, (seq + 1, batch))
        out.append((ids[:-1], ids[1:].reshape(-1)))
    return out


def needle_step(ndl: Any, lm: Any, data: list, optimizer: str, hyper: dict[str, float]) -> Step:
    """Training steps of a needle ``LanguageModel`` (its logits are the first output)."""
    lm.train()
    opt = getattr(ndl.optim, optimizer)(lm.parameters(), **hyper)
    return _harness.train_step(lambda x: lm(x)[0], ndl.nn.SoftmaxLoss(), opt,
                               _harness.needle_batches(ndl, data))


def torch_step(torch: Any, net: Any, data: list, optimizer: str,
               hyper: dict[str, float]) -> Step:
    net.train()
    opt = getattr(torch.optim, optimizer)(net.parameters(), **hyper)
    return _harness.train_step(net, torch.nn.functional.cross_entropy, opt,
                               _harness.torch_batches(torch, data))


def main(args: Any, bench: str, title: str, config: dict[str, Any], steps: int,
         needle_model: Callable[[Any], Any], torch_copy: Callable[[Any, Any], Any],
         optimizer: tuple[str, dict[str, float]], notes: Sequence[str] = ()) -> None:
    """Check three steps' losses agree, then time ``steps`` steps a repeat. ``needle_model(ndl)``
    builds the seeded model, ``torch_copy(torch, lm)`` PyTorch's holding its weights;
    ``optimizer`` is (class name in both ``optim`` modules, its arguments); ``config``
    names the shapes (``vocab``, ``seq``, ``batch``, ``layers``), recorded as given."""
    import needle as ndl

    torch = _harness.import_torch(args.no_torch)
    _harness.print_machine_line(torch)
    report = _harness.Report(bench, args, torch)

    def step_fns(data: list) -> dict[str, Step]:
        fns = {"needle": needle_step(ndl, needle_model(ndl), data, *optimizer)}
        if torch is not None:  # a model of its own, holding the same initial weights
            fns["torch"] = torch_step(torch, torch_copy(torch, needle_model(ndl)), data, *optimizer)
        return fns

    shape = {k: config[k] for k in ("vocab", "seq", "batch")}
    if torch is not None:  # both train the same network: three steps' losses agree
        first = _harness.check_same_losses(step_fns(batches(3, **shape, seed=1)), 3)
        print(f"# needle and torch losses agree over 3 steps: "
              f"{', '.join(f'{v:.4f}' for v in first)}", flush=True)
    runs = _harness.compare(step_fns(batches(steps, **shape)), steps, args.repeats,
                            work=steps * config["seq"] * config["batch"])
    pair = ("needle", "torch")
    runs.record(report, {**config, "steps_per_repeat": steps}, "tokens/s", [pair])
    layers = config["layers"]
    rows = [[f"{layers} layer{'s' if layers > 1 else ''}, {config['seq']}x{config['batch']} tokens",
             runs.median("needle"), runs.median("torch"), runs.ratio(*pair), runs.paired(*pair),
             runs.stepwise(*pair)]]
    report.table(f"{title}, tokens/s (median of {args.repeats}, "
                 f"{_harness.bench_threads()} thread(s))",
                 ["config", "needle", "torch", "needle/torch", "paired", "by step"], rows,
                 ["ratios are speed ratios: above 1.0 needle trains faster",
                  "paired: median of per-repeat ratios; by step: the frameworks take turns "
                  "step by step (1 thread only)", *notes])
    report.finish()
