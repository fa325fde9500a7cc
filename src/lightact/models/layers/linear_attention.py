"""Non-causal linear (kernel) attention over time, computed separately for each segment of a
packed sequence (STAR, temporal)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def segment_lengths(clip_lengths: list[int], segment_length: int | None) -> list[int]:
    """Split each clip into segments of at most ``segment_length`` frames (whole clips when None)."""
    if segment_length is None:
        return list(clip_lengths)
    out = []
    for n in clip_lengths:
        full, rest = divmod(n, segment_length)
        out += [segment_length] * full + ([rest] if rest else [])
    return out


def feature_map(x: Tensor) -> Tensor:
    return F.elu(x) + 1.0


class SegmentedLinearAttention(nn.Module):
    """``out_t = φ(q_t)·KV_s / (φ(q_t)·Σk_s)`` with ``KV_s = Σ_{t∈s} φ(k_t) v_tᵀ``, per joint and head.

    Frames of different segments never mix; the cost is linear in the number of frames. Tensors
    are laid out ``[V·H, F, d]`` so that every segment is a strided view that batched matmul reads
    in place: one copy in, one copy out, whatever the number of segments.
    """

    def __init__(self, dim: int, heads: int, eps: float = 1e-6) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.eps = eps
        self.qkv = nn.Linear(dim, 3 * dim)

    def forward(self, x: Tensor, lengths: list[int]) -> Tensor:
        """``x: [F, V, C]`` with ``F == sum(lengths)`` -> ``[F, V, C]``."""
        frames, joints, dim = x.shape
        qkv = self.qkv(x).view(frames, joints, 3, self.heads, dim // self.heads)
        qkv = qkv.permute(2, 1, 3, 0, 4).reshape(3, joints * self.heads, frames, dim // self.heads)
        q, k, v = qkv.unbind(0)  # [V·H, F, d] each
        q, k = feature_map(q), feature_map(k)
        segments = zip(q.split(lengths, 1), k.split(lengths, 1), v.split(lengths, 1), strict=True)
        out = [self._attend(qs, ks, vs) for qs, ks, vs in segments]
        out = torch.cat(out, dim=1).view(joints, self.heads, frames, -1)
        return out.permute(2, 0, 1, 3).reshape(frames, joints, dim)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        # One segment, [B, T, d]: summarise keys and values once, then read out per query frame.
        kv = k.transpose(1, 2) @ v  # [B, d, d]
        normaliser = q @ k.sum(1, keepdim=True).transpose(1, 2)  # [B, T, 1]
        return (q @ kv) / (normaliser + self.eps)
