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

import _lm
import numpy as np
import torch_model

VOCAB, EMBED, HIDDEN, LAYERS = 10_000, 100, 100, 1
SEQ, BATCH = 20, 16
LR = 4.0
OPTIMIZER = ("SGD", {"lr": LR})  # name in needle.optim and torch.optim, arguments


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


def main(args: Any) -> None:
    config = {"vocab": VOCAB, "embedding": EMBED, "hidden": HIDDEN, "layers": LAYERS,
              "seq": SEQ, "batch": BATCH, "optimizer": "sgd", "lr": LR}
    _lm.main(args, "lstm_lm", "LSTM LM training", config, 3 if args.quick else 40,
             needle_model, torch_copy, OPTIMIZER,
             ["both start every step from a zero state"])
