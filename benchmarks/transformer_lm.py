"""Training tokens/s of the course's (hw4_extra) Transformer language model: needle vs
PyTorch eager, the same architecture with the same initial weights.

The model: a 10,000-word vocabulary, embedding 256 = 8 heads × 32, MLP 512, 2 causal
prenorm blocks, learned positions, a linear head; batches of 32 tokens × 8 sequences,
Adam. PyTorch gets needle's initial weights (so the first losses agree, which the
benchmark checks before timing) and its fused ``scaled_dot_product_attention``, which
is what a PyTorch user would write. Token ids are synthetic (seeded): the step's cost
does not depend on which words they are. The frameworks take turns step by step, as in
``mlp_resnet.py``.
"""

from __future__ import annotations

from typing import Any

import _lm
import numpy as np
import torch_model

VOCAB, EMBED, HEADS, DIM_HEAD, HIDDEN, LAYERS = 10_000, 256, 8, 32, 512, 2
SEQ, BATCH = 32, 8
LR = 0.001
OPTIMIZER = ("Adam", {"lr": LR})  # name in needle.optim and torch.optim, arguments


def needle_model(ndl: Any, vocab: int = VOCAB, embed: int = EMBED, hidden: int = HIDDEN,
                 layers: int = LAYERS, seq: int = SEQ) -> Any:
    """needle's LanguageModel(seq_model="transformer"), seeded (8 heads × 32 by default)."""
    from needle.models import LanguageModel

    np.random.seed(0)  # needle's CPU backend draws its initial weights from NumPy's generator
    return LanguageModel(embed, vocab, hidden, num_layers=layers, seq_model="transformer",
                         seq_len=seq)


def torch_copy(torch: Any, lm: Any) -> Any:
    """The same network in PyTorch, holding ``lm``'s weights (needle keeps W as (in, out))."""
    nn, F = torch.nn, torch.nn.functional

    def linear(layer: Any) -> Any:
        return torch_model.linear(torch, layer)

    def tensor(p: Any) -> Any:
        return torch_model.parameter(torch, p)

    def layer_norm(ln: Any) -> Any:
        out = nn.LayerNorm(ln.dim, eps=ln.eps)
        out.weight, out.bias = tensor(ln.weight), tensor(ln.bias)
        return out

    class Block(nn.Module):
        def __init__(self, block: Any) -> None:
            super().__init__()
            a = block.attention
            self.heads, self.dim_head = a.num_head, a.dim_head
            self.ln_q, self.ln_k, self.ln_v = (layer_norm(n) for n in
                                               (a.prenorm_q, a.prenorm_k, a.prenorm_v))
            self.q, self.k, self.v, self.o = (linear(p) for p in (
                a.q_projection, a.k_projection, a.v_projection, a.out_projection))
            ln, lin1, _, _, lin2, _ = block.mlp.modules
            self.ln, self.lin1, self.lin2 = layer_norm(ln), linear(lin1), linear(lin2)

        def forward(self, x: Any) -> Any:
            b, t, _ = x.shape

            def heads(y: Any) -> Any:
                return y.reshape(b, t, self.heads, self.dim_head).transpose(1, 2)

            att = F.scaled_dot_product_attention(heads(self.q(self.ln_q(x))),
                                                 heads(self.k(self.ln_k(x))),
                                                 heads(self.v(self.ln_v(x))), is_causal=True)
            x = x + self.o(att.transpose(1, 2).reshape(b, t, -1))
            return x + self.lin2(F.relu(self.lin1(self.ln(x))))

    class LM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(lm.embedding.num_embeddings, lm.embedding.embedding_dim)
            self.embedding.weight = tensor(lm.embedding.weight)
            self.positions = tensor(lm.seq_model.positional_embedding.weight)
            self.blocks = nn.ModuleList(Block(b) for b in lm.seq_model.layers.modules)
            self.head = linear(lm.linear)

        def forward(self, ids: Any) -> Any:
            t = ids.shape[0]
            x = self.embedding(ids).transpose(0, 1) + self.positions[:t]  # (B, T, E)
            for block in self.blocks:
                x = block(x)
            return self.head(x.transpose(0, 1).reshape(-1, x.shape[-1]))

    return LM()


def main(args: Any) -> None:
    config = {"vocab": VOCAB, "embedding": EMBED, "heads": HEADS, "dim_head": DIM_HEAD,
              "hidden": HIDDEN, "layers": LAYERS, "seq": SEQ, "batch": BATCH,
              "optimizer": "adam", "lr": LR}
    _lm.main(args, "transformer_lm", "Transformer LM training", config, 3 if args.quick else 20,
             needle_model, torch_copy, OPTIMIZER,
             ["torch uses scaled_dot_product_attention (is_causal=True)"])
