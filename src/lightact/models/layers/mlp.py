"""The transformer feed-forward layer."""

from __future__ import annotations

from torch import nn


class FeedForward(nn.Sequential):
    """``Linear(dim, hidden) -> GELU -> Dropout -> Linear(hidden, dim)``.

    A ``Sequential``, so its parameters are ``0.*`` and ``3.*``: the keys of the weights saved by
    every model that uses it.
    """

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
