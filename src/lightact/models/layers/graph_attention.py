"""Attention over a skeleton's joints restricted to a sparse neighbourhood graph (STAR, spatial)."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

# The narrowest score row the masked kernel lets softmax see (see SparseGraphAttention).
MIN_SCORE_WIDTH = 16


def k_hop_neighbours(hop_distance: np.ndarray, hops: int) -> tuple[Tensor, Tensor]:
    """Neighbour table of the ``hops``-hop graph (self included) as ``(index [V, K], valid [V, K])``.

    Rows are padded to the largest neighbourhood K with the joint itself and marked invalid, so
    attention can gather a fixed-width table instead of scoring all V x V pairs.
    """
    reach = hop_distance <= hops
    width = int(reach.sum(axis=1).max())
    v = len(reach)
    index = np.tile(np.arange(v)[:, None], (1, width))
    valid = np.zeros((v, width), dtype=bool)
    for joint in range(v):
        neighbours = np.flatnonzero(reach[joint])
        index[joint, : len(neighbours)] = neighbours
        valid[joint, : len(neighbours)] = True
    return torch.from_numpy(index), torch.from_numpy(valid)


class SparseGraphAttention(nn.Module):
    """Multi-head attention where joint i attends only to the joints within k hops of it.

    Two kernels compute the same function:

    * ``"gather"`` scores only the K listed neighbours (O(V·K) work; what pays off on large graphs);
    * ``"masked"`` scores all V x V pairs with batched matmuls and masks the rest out with an
      additive bias.

    On skeletons (V ≤ ~50) the dense product is faster on CPU than gathering, because gathering
    copies K x the keys and values (on NTU-25 with 3 hops, K = 13 of 25 joints, several times
    slower: ``benchmarks/star_speed.py --kernels``); ``"auto"`` picks by graph size.

    The masked kernel scores at least :data:`MIN_SCORE_WIDTH` keys per joint: a smaller skeleton
    (SBU's 15, an 8-joint upper body) gets padding keys that every joint is masked from, because
    torch's CPU softmax over rows narrower than one vector register (16 floats with AVX-512) takes
    a scalar path, measured about 10x slower per element forward and backward than rows of 16
    (``benchmarks/softmax_width.py``).
    """

    def __init__(self, dim: int, heads: int, neighbours: Tensor, valid: Tensor, kernel: str = "auto") -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        if kernel not in ("auto", "gather", "masked"):
            raise ValueError(f"unknown sparse attention kernel {kernel!r}")
        joints = len(neighbours)
        self.kernel = kernel if kernel != "auto" else ("masked" if joints <= 64 else "gather")
        self.heads = heads
        self.scale = 1.0 / math.sqrt(dim // heads)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.register_buffer("neighbours", neighbours.flatten(), persistent=False)
        self.register_buffer("invalid", ~valid[:, None, :], persistent=False)  # [V, 1, K]
        allowed = torch.zeros(joints, joints, dtype=torch.bool)
        allowed[torch.arange(joints)[:, None].expand_as(neighbours)[valid], neighbours[valid]] = True
        # The same mask as an additive bias, added by the score matmul itself (baddbmm). The
        # lowest finite float, not -inf: softmax gives the same exact zeros, and weight averaging
        # (EMA: lerp of every floating buffer) keeps it, where -inf + w·(-inf - -inf) is NaN.
        # Padding keys (see the class notes) are allowed to nobody: exact zeros after softmax.
        bias = torch.full((joints, max(joints, MIN_SCORE_WIDTH)), torch.finfo(torch.float32).min)
        bias[:, :joints].masked_fill_(allowed, 0.0)
        self.register_buffer("bias", bias, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """``x: [F, V, C]`` -> ``[F, V, C]``."""
        frames, joints, dim = x.shape
        qkv = self.qkv(x).view(frames, joints, 3, self.heads, dim // self.heads)
        if self.kernel == "masked":
            return self._masked(qkv).reshape(frames, joints, dim)
        q, k, v = qkv.unbind(2)
        width = self.invalid.shape[-1]
        k = k.index_select(1, self.neighbours).view(frames, joints, width, self.heads, -1)
        v = v.index_select(1, self.neighbours).view(frames, joints, width, self.heads, -1)
        scores = torch.einsum("fjhd,fjkhd->fjhk", q * self.scale, k)
        attn = scores.masked_fill(self.invalid, float("-inf")).softmax(dim=-1)
        return torch.einsum("fjhk,fjkhd->fjhd", attn, v).reshape(frames, joints, dim)

    def _masked(self, qkv: Tensor) -> Tensor:
        # q, k, v copied once to [F·H, V, d], then three batched calls (scores with the bias added
        # by the matmul, softmax, weighted sum). A fused attention call runs slower on CPU for
        # these 25 x 25 problems, forward and backward; per-head matmuls on strided views of the
        # projection skip the copy but their backward runs slower (benchmarks/star_speed.py).
        frames, joints, _, heads, width = qkv.shape
        keys = self.bias.shape[-1]
        qkv = qkv.permute(2, 0, 3, 1, 4)  # [3, F, H, V, d]
        if keys == joints:
            q, k, v = qkv.reshape(3, frames * heads, joints, width).unbind(0)
        else:  # a small skeleton: keys and values padded in their one copy (F.pad writes a new tensor)
            q = qkv[0].reshape(frames * heads, joints, width)
            k, v = F.pad(qkv[1:], (0, 0, 0, keys - joints)).view(2, frames * heads, keys, width).unbind(0)
        scores = torch.baddbmm(self.bias, q, k.transpose(1, 2), alpha=self.scale)
        out = torch.bmm(scores.softmax(-1), v)  # [F·H, V, d]
        return out.view(frames, heads, joints, width).transpose(1, 2)  # [F, V, H, d]
