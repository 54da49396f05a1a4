"""Embedding: a lookup table of learned vectors."""

from __future__ import annotations

from typing import Any

from needle import Tensor, ops

from .. import init
from ..init.init_basic import class_ids
from .module import Module, Parameter, describe


class Embedding(Module):
    """Maps integer ids of any shape to rows of ``weight`` (num_embeddings, embedding_dim).

    The course computes one_hot(x) @ weight; indexing ``weight[x]`` gives exactly the
    same numbers (each row picked is multiplied by 1 and added to zeros) without the
    (ids × num_embeddings) matrix, and its gradient scatters back with repeats summed.
    ``weight`` starts as randn, as in the course.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, device: Any = None,
                 dtype: Any = "float32") -> None:
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.weight = Parameter(init.randn(num_embeddings, embedding_dim, device=device,
                                           dtype=dtype))

    def forward(self, x: Any) -> Tensor:
        ids = class_ids(x, self.num_embeddings, describe(self))
        dev = self.weight.device
        index = dev.backend.array(ids.reshape(-1), ids.dtype)
        rows = ops.get_item(self.weight, index)
        return rows.reshape((*ids.shape, self.embedding_dim))

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"
