"""Pre-norm transformer layers: ``x += attention(LN x); x += FFN(LN x)``.

Two blocks, because their attention differs and their parameter names are part of saved weights:

* :class:`SelfAttentionBlock`: self attention over dense token sequences ``[N, L, C]`` with a fused
  QKV projection (the composite video models' temporal transformer);
* :class:`CrossAttentionBlock`: around an attention module given by the model, which receives the
  queries and keys/values with their token layouts (STAN's packed, padded-inside attention): self
  attention when no context is given, cross attention otherwise.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from lightact.models.layers.mlp import FeedForward


class SelfAttentionBlock(nn.Module):
    """Pre-norm transformer block over a sequence of tokens ``[N, L, C]``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, int(dim * mlp_ratio), dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        n, length, dim = x.shape
        qkv = self.qkv(self.norm1(x)).view(n, length, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # [N, H, L, d] each
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, length, dim)
        x = x + self.drop(self.proj(attended))
        return x + self.drop(self.mlp(self.norm2(x)))


class CrossAttentionBlock(nn.Module):
    """Pre-norm transformer layer: ``x += attention(LN x, LN context); x += FFN(LN x)``.

    ``attention(q, q_layout, kv, kv_layout)`` gets the normalised queries and keys/values and where
    their tokens are (whatever the model's attention needs, e.g. a padded index of packed tokens).
    A ``cross`` block reads a ``context`` (its own normalisation); otherwise it is self attention and
    the queries' normalisation serves both sides.
    """

    def __init__(
        self, dim: int, attention: nn.Module, hidden: int, dropout: float, cross: bool = False
    ) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        # Only where there is a context to normalise: a parameter no forward uses would make DDP
        # search every step for the gradients that never come (find_unused_parameters).
        self.norm_kv = nn.LayerNorm(dim) if cross else None
        self.attention = attention
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, hidden, dropout)
        self.drop = nn.Dropout(dropout)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        if self.norm_kv is None:  # files from before self blocks lost their unused norm_kv
            for key in [k for k in state_dict if k.startswith(prefix + "norm_kv.")]:
                del state_dict[key]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(
        self, x: Tensor, layout: Any, context: Tensor | None = None, context_layout: Any = None
    ) -> Tensor:
        q = self.norm_q(x)
        if (context is None) != (self.norm_kv is None):
            raise ValueError("a cross block needs a context and a self block takes none")
        kv = q if self.norm_kv is None else self.norm_kv(context)
        x = x + self.drop(self.attention(q, layout, kv, layout if context_layout is None else context_layout))
        return x + self.drop(self.ffn(self.norm_ffn(x)))
