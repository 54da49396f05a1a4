"""Embedding: a lookup table of learned vectors."""

from __future__ import annotations

from typing import Any

from needle import Tensor, ops

from .. import init
from .module import Module, Parameter, describe


class Embedding(Module):
    """A lookup table: maps integer ids of any shape to rows of ``weight``.

    ``y[..., :] = weight[x[...], :]``. The course computes ``one_hot(x) @ weight``; indexing
    gives exactly the same numbers without the (ids × num_embeddings) matrix, and its
    gradient scatters back with repeats summed. ``weight`` starts as randn, as in the course.

    Shapes: ids of shape ``S`` (integers in ``[0, num_embeddings)``, as a Tensor or array),
    output ``(*S, embedding_dim)``.

    Args:
        num_embeddings (int): the number of rows (the vocabulary size).
        embedding_dim (int): the length of each vector.
        device (Device | None): where the table lives. Default: the default device.
        dtype (str): the table's dtype. Default: ``"float32"``.

    Examples:
        >>> emb = ndl.nn.Embedding(10, 4)
        >>> emb(np.array([[1, 2, 3], [4, 5, 6]])).shape
        (2, 3, 4)
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, device: Any = None,
                 dtype: Any = "float32") -> None:
        super().__init__()
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.weight = Parameter(init.randn(num_embeddings, embedding_dim, device=device,
                                           dtype=dtype))

    def forward(self, x: Any) -> Tensor:
        ids = ops.class_ids(x, self.num_embeddings, describe(self))
        return ops.embedding(ids, self.weight)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"
