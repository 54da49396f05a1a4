"""Training examples/s of the course's MLP-ResNet on MNIST: needle vs PyTorch eager
(Adam default and ``fused=True``) vs a hand-written NumPy network.

Every framework trains on the same batches of the real MNIST test images, with the
same hyper-parameters, threads pinned equal; each repeat is one pass of
``--examples`` images (default: the whole 10,000-image test set). Data are
converted to each framework's tensors before timing: this measures the training
step (forward, loss, backward, update), not data loading.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import _harness
import _mnist
import needle_model
import numpy as np
import numpy_mlp
import torch_model

OPTIMIZERS: dict[str, dict[str, float]] = {
    # the course's train_mnist settings for Adam; SGD with the usual momentum
    "adam": {"lr": 0.001, "weight_decay": 0.001},
    "sgd": {"lr": 0.01, "momentum": 0.9, "weight_decay": 0.001},
}
BATCHES = (128, 1024)
FRAMEWORKS = ("needle", "torch", "torch_fused", "numpy")
Runner = Callable[[], float]


Step = Callable[[int], Any]  # trains on batch i, returns that step's loss (native type)


def needle_step(ndl: Any, opt: str, data: list, state: dict) -> Step:
    np.random.seed(0)  # needle's CPU backend draws its initial weights from NumPy's generator
    model, state["needle_model"] = needle_model.build()
    model.train()
    nn, optim = needle_model.submodule("nn"), needle_model.submodule("optim")
    loss_fn = nn.SoftmaxLoss()
    cls = optim.Adam if opt == "adam" else optim.SGD
    optimizer = cls(model.parameters(), **OPTIMIZERS[opt])
    tensors = [(ndl.Tensor(x, requires_grad=False), ndl.Tensor(y, dtype=y.dtype, requires_grad=False))
               for x, y in data]

    def step(i: int) -> Any:
        x, y = tensors[i]
        optimizer.reset_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return step


def torch_step(torch: Any, opt: str, data: list, fused: bool = False) -> Step:
    torch.manual_seed(0)
    net = torch_model.build(torch, params=numpy_mlp.init_params(784, 100, 3, 10, seed=0))
    net.train()
    if opt == "adam":
        extra = {"fused": True} if fused else {}
        optimizer = torch.optim.Adam(net.parameters(), **OPTIMIZERS["adam"], **extra)
    else:
        # dampening = momentum makes torch's velocity the course's average of gradients
        hyper = OPTIMIZERS["sgd"]
        optimizer = torch.optim.SGD(net.parameters(), **hyper, dampening=hyper["momentum"])
    tensors = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in data]
    cross_entropy = torch.nn.functional.cross_entropy

    def step(i: int) -> Any:
        x, y = tensors[i]
        optimizer.zero_grad()
        loss = cross_entropy(net(x), y)
        loss.backward()
        optimizer.step()
        return loss

    return step


def numpy_step(opt: str, data: list) -> Step:
    model = numpy_mlp.NumpyMLPResNet.create(seed=0)
    cls = numpy_mlp.NumpyAdam if opt == "adam" else numpy_mlp.NumpySGD
    optimizer = cls(model.params, **OPTIMIZERS[opt])

    def step(i: int) -> Any:
        loss, grads = model.loss_and_grads(*data[i])
        optimizer.step(grads)
        return loss

    return step


def epoch_runner(step: Step, steps: int, state: dict, key: str) -> Runner:
    """One repeat: ``steps`` consecutive steps, timed; the last loss goes to ``state``."""
    def run() -> float:
        start = time.perf_counter()
        for i in range(steps):
            loss = step(i)
        seconds = time.perf_counter() - start
        state[key] = float(loss.item() if hasattr(loss, "item") else loss)
        return seconds

    return run


def main(args: Any) -> None:
    import needle as ndl

    torch = _harness.import_torch(args.no_torch)
    _harness.print_machine_line(torch)
    report = _harness.Report("mlp_resnet", args, torch)
    x, y = _mnist.load_test_set()
    checked = numpy_mlp.self_check(torch, x[:256], y[:256])
    print(f"# hand-written NumPy gradients verified: "
          f"{', '.join(f'{k} rel. error {v:.1e}' for k, v in checked.items())}", flush=True)
    needle_missing = needle_model.unavailable_reason()
    examples = 2560 if args.quick else 10_000
    rows, source = [], None
    for opt in OPTIMIZERS:
        for batch in BATCHES:
            # at least 30 steps a repeat: 9 steps of batch 1024 is too short to time on a
            # shared machine (one slow moment moves the median by 10%)
            steps = max(3 if args.quick else 30, examples // batch)
            data = _mnist.batches(x, y, batch, steps)
            final: dict[str, Any] = {}
            step_fns: dict[str, Step] = {}
            if needle_missing is None:
                step_fns["needle"] = needle_step(ndl, opt, data, final)
            if torch is not None:
                step_fns["torch"] = torch_step(torch, opt, data)
                if opt == "adam":
                    step_fns["torch_fused"] = torch_step(torch, opt, data, fused=True)
            step_fns["numpy"] = numpy_step(opt, data)
            source = final.pop("needle_model", source)
            cases = {k: epoch_runner(f, steps, final, k) for k, f in step_fns.items()}
            results = _harness.rates(cases, args.repeats, work=steps * batch)
            # The same comparison again with the frameworks taking turns step by step: a
            # slow spell of a shared machine (they last seconds) then hits all of them.
            # One thread only: with more, every turn puts thread pools to sleep and wakes
            # them (PyTorch's OpenMP pool most), which that schedule would measure instead.
            by_step = (_harness.interleave_steps(step_fns, steps, args.repeats)
                       if _harness.bench_threads() == 1 else {})
            fastest_torch = "torch_fused" if opt == "adam" else "torch"
            med = {k: results[k]["median"] if k in results else None for k in FRAMEWORKS}
            ratios = {"needle/torch": _harness.ratio(med["needle"], med["torch"]),
                      "needle/torch_fused": _harness.ratio(med["needle"], med["torch_fused"]),
                      "needle/numpy": _harness.ratio(med["needle"], med["numpy"]),
                      "torch/numpy": _harness.ratio(med["torch"], med["numpy"])}
            paired = {"needle/torch_fused": _harness.paired_ratio(results, "needle", "torch_fused"),
                      "needle/numpy": _harness.paired_ratio(results, "needle", "numpy")}
            # speed ratio = time ratio inverted: reference seconds / needle seconds
            stepwise = {f"needle/{ref}": _harness.time_ratio(by_step, ref, "needle")
                        for ref in ("torch", "torch_fused", "numpy")}
            report.record({"optimizer": opt, "batch": batch, "steps_per_repeat": steps,
                           **OPTIMIZERS[opt]}, "examples/s", results, ratios,
                          paired_ratios=paired, step_interleaved_ratios=stepwise,
                          step_interleaved_seconds=by_step,
                          final_loss={k: round(v, 4) for k, v in final.items()},
                          needle_model=source)
            rows.append([f"{opt}, batch {batch}", *(med[k] for k in FRAMEWORKS),
                         *(ratios[k] for k in ("needle/torch", "needle/torch_fused",
                                               "needle/numpy")),
                         paired["needle/torch_fused"], paired["needle/numpy"],
                         stepwise[f"needle/{fastest_torch}"], stepwise["needle/numpy"]])
    notes = [f"needle model: {source}" if needle_missing is None else
             f"needle left out: {needle_missing}",
             "ratios are speed ratios: above 1.0 needle trains faster than the reference",
             "paired: median over repeats of the ratio within one repeat (steadier when "
             "the machine is shared)",
             "by step: median over repeats when the frameworks take turns step by step "
             "(steadiest; 1 thread only); torch* is PyTorch's fastest setting: fused Adam, "
             "plain SGD"]
    report.table(f"MLP-ResNet training, examples/s (median of {args.repeats}, "
                 f"{_harness.bench_threads()} thread(s))",
                 ["config", "needle", "torch", "torch fused", "numpy", "needle/torch",
                  "needle/fused", "needle/numpy", "paired n/fused", "paired n/numpy",
                  "by step n/torch*", "by step n/numpy"], rows, notes)
    report.finish()
