"""Training tokens/s of the course's (hw4) LSTM language model: needle vs PyTorch eager,
the same architecture with the same initial weights.

The model: a 10,000-word vocabulary, embedding 100, one LSTM layer of hidden size 100,
a linear head; batches of 20 tokens × 16 sequences (the course's Penn Treebank shapes),
SGD at the course's ``train_ptb`` learning rate 4.0. Each step starts from a zero state
(the course carries the state across batches, detached: the step's cost is the same).
PyTorch gets needle's initial weights, so the first losses agree, which the benchmark
checks before timing. Token ids are synthetic (seeded): the step's cost does not depend
on which words they are. The frameworks take turns step by step, as in ``mlp_resnet.py``.
"""

from __future__ import annotations

from typing import Any

import _harness
import numpy as np
import torch_model
from transformer_lm import batches

VOCAB, EMBED, HIDDEN, LAYERS = 10_000, 100, 100, 1
SEQ, BATCH = 20, 16
LR = 4.0


def needle_model(ndl: Any, vocab: int = VOCAB, embed: int = EMBED, hidden: int = HIDDEN,
                 layers: int = LAYERS) -> Any:
    """needle's LanguageModel(seq_model="lstm"), seeded."""
    from needle.models import LanguageModel

    np.random.seed(0)  # needle's CPU backend draws its initial weights from NumPy's generator
    return LanguageModel(embed, vocab, hidden, num_layers=layers, seq_model="lstm")


def torch_copy(torch: Any, lm: Any) -> Any:
    """The same network in PyTorch, holding ``lm``'s weights: needle keeps W as (in, out)
    with the gates side by side in PyTorch's order i, f, g, o, so PyTorch's weights are
    needle's transposed."""
    nn = torch.nn
    param = torch_model.parameter

    class LM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(lm.embedding.num_embeddings, lm.embedding.embedding_dim)
            self.embedding.weight = param(torch, lm.embedding.weight)
            seq = lm.seq_model
            self.lstm = nn.LSTM(seq.input_size, seq.hidden_size, seq.num_layers)
            for layer, cell in enumerate(seq.lstm_cells):
                for name, p in (("weight_ih", cell.W_ih), ("weight_hh", cell.W_hh),
                                ("bias_ih", cell.bias_ih), ("bias_hh", cell.bias_hh)):
                    setattr(self.lstm, f"{name}_l{layer}", param(torch, p, transpose=p.ndim == 2))
            self.head = torch_model.linear(torch, lm.linear)

        def forward(self, ids: Any) -> Any:
            out, _ = self.lstm(self.embedding(ids))  # (T, N, H)
            return self.head(out.reshape(-1, out.shape[-1]))

    return LM()


def needle_step(ndl: Any, lm: Any, data: list) -> _harness.Step:
    lm.train()
    opt = ndl.optim.SGD(lm.parameters(), lr=LR)
    return _harness.train_step(lambda x: lm(x)[0], ndl.nn.SoftmaxLoss(), opt,
                               _harness.needle_batches(ndl, data))


def torch_step(torch: Any, net: Any, data: list) -> _harness.Step:
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    return _harness.train_step(net, torch.nn.functional.cross_entropy, opt,
                               _harness.torch_batches(torch, data))


def main(args: Any) -> None:
    import needle as ndl

    torch = _harness.import_torch(args.no_torch)
    _harness.print_machine_line(torch)
    report = _harness.Report("lstm_lm", args, torch)
    steps = 3 if args.quick else 40

    def step_fns(data: list) -> dict[str, _harness.Step]:
        fns = {"needle": needle_step(ndl, needle_model(ndl), data)}
        if torch is not None:
            fns["torch"] = torch_step(torch, torch_copy(torch, needle_model(ndl)), data)
        return fns

    def data(n: int, seed: int = 0) -> list:
        return batches(n, seed, vocab=VOCAB, seq=SEQ, batch=BATCH)

    if torch is not None:  # both train the same network: three steps' losses agree
        first = _harness.check_same_losses(step_fns(data(3, seed=1)), 3)
        print(f"# needle and torch losses agree over 3 steps: {', '.join(f'{v:.4f}' for v in first)}",
              flush=True)
    runs = _harness.compare(step_fns(data(steps)), steps, args.repeats, work=steps * SEQ * BATCH)
    pair = [("needle", "torch")]
    runs.record(report, {"vocab": VOCAB, "embedding": EMBED, "hidden": HIDDEN, "layers": LAYERS,
                         "seq": SEQ, "batch": BATCH, "optimizer": "sgd", "lr": LR,
                         "steps_per_repeat": steps}, "tokens/s", pair)
    rows = [[f"{LAYERS} layer, {SEQ}x{BATCH} tokens", runs.median("needle"), runs.median("torch"),
             runs.ratio(*pair[0]), runs.paired(*pair[0]), runs.stepwise(*pair[0])]]
    report.table(f"LSTM LM training, tokens/s (median of {args.repeats}, "
                 f"{_harness.bench_threads()} thread(s))",
                 ["config", "needle", "torch", "needle/torch", "paired", "by step"], rows,
                 ["ratios are speed ratios: above 1.0 needle trains faster",
                  "paired: median of per-repeat ratios; by step: the frameworks take turns step "
                  "by step (1 thread only)"])
    report.finish()
