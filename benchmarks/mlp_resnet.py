"""Training examples/s of the course's MLP-ResNet on MNIST: needle vs PyTorch eager
(Adam default and ``fused=True``) vs a hand-written NumPy network.

Every framework trains on the same batches of the real MNIST test images, with the
same hyper-parameters, threads pinned equal; each repeat is one pass of
``--examples`` images (default: the whole 10,000-image test set). Data are
converted to each framework's tensors before timing: this measures the training
step (forward, loss, backward, update), not data loading.
"""

from __future__ import annotations

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
Step = _harness.Step


def needle_step(ndl: Any, opt: str, data: list, state: dict) -> Step:
    np.random.seed(0)  # needle's CPU backend draws its initial weights from NumPy's generator
    model, state["needle_model"] = needle_model.build()
    model.train()
    nn, optim = needle_model.submodule("nn"), needle_model.submodule("optim")
    cls = optim.Adam if opt == "adam" else optim.SGD
    return _harness.train_step(model, nn.SoftmaxLoss(), cls(model.parameters(), **OPTIMIZERS[opt]),
                               _harness.needle_batches(ndl, data))


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
    return _harness.train_step(net, torch.nn.functional.cross_entropy, optimizer,
                               _harness.torch_batches(torch, data))


def numpy_step(opt: str, data: list) -> Step:
    model = numpy_mlp.NumpyMLPResNet.create(seed=0)
    cls = numpy_mlp.NumpyAdam if opt == "adam" else numpy_mlp.NumpySGD
    optimizer = cls(model.params, **OPTIMIZERS[opt])

    def step(i: int) -> Any:
        loss, grads = model.loss_and_grads(*data[i])
        optimizer.step(grads)
        return loss

    return step


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
            built: dict[str, Any] = {}
            step_fns: dict[str, Step] = {}
            if needle_missing is None:
                step_fns["needle"] = needle_step(ndl, opt, data, built)
            if torch is not None:
                step_fns["torch"] = torch_step(torch, opt, data)
                if opt == "adam":
                    step_fns["torch_fused"] = torch_step(torch, opt, data, fused=True)
            step_fns["numpy"] = numpy_step(opt, data)
            source = built.get("needle_model", source)
            runs = _harness.compare(step_fns, steps, args.repeats, work=steps * batch)
            fastest_torch = "torch_fused" if opt == "adam" else "torch"
            rec = runs.record(
                report, {"optimizer": opt, "batch": batch, "steps_per_repeat": steps,
                         **OPTIMIZERS[opt]}, "examples/s",
                ratios=[("needle", "torch"), ("needle", "torch_fused"), ("needle", "numpy"),
                        ("torch", "numpy")],
                paired=[("needle", "torch_fused"), ("needle", "numpy")],
                stepwise=[("needle", ref) for ref in ("torch", "torch_fused", "numpy")],
                needle_model=source)
            ratios, paired, stepwise = (rec[k] for k in ("ratios", "paired_ratios",
                                                         "step_interleaved_ratios"))
            rows.append([f"{opt}, batch {batch}", *(runs.median(k) for k in FRAMEWORKS),
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
