"""Non-causal linear (kernel) attention over time, computed separately for each segment of a
packed sequence (STAR, temporal)."""

from __future__ import annotations

import torch
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
    """``elu(x) + 1`` written as ``exp(x - relu(x)) + relu(x)``: the same values (``exp(min(x, 0))
    + max(x, 0)``, to rounding) from vectorised passes, about 3x faster forward on CPU than
    ``elu``'s ``expm1``; ``relu``'s backward keeps the backward as cheap as ``elu``'s (``clamp``'s
    builds masks and was slower)."""
    positive = torch.relu(x)
    return torch.exp(x - positive) + positive


class SegmentedLinearAttention(nn.Module):
    """``out_t = φ(q_t)·KV_s / (φ(q_t)·Σk_s)`` with ``KV_s = Σ_{t∈s} φ(k_t) v_tᵀ``, per joint and head.

    Frames of different segments never mix; the cost is linear in the number of frames. The packed
    path keeps the projection's own layout ``[F, V·H, d]``: a segment is a slice of frames, and its
    two products (keys by values, queries by the segment's statistics) are batched matmuls over
    the joint-heads that BLAS reads in place; the normaliser rides along as one more column of the
    statistics, so a segment costs two matmuls and a sum.
    """

    def __init__(self, dim: int, heads: int, eps: float = 1e-6) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.eps = eps
        self.qkv = nn.Linear(dim, 3 * dim)

    def forward(self, x: Tensor, lengths: list[int] | int | None) -> Tensor:
        """``x: [F, V, C]`` -> ``[F, V, C]``.

        ``lengths`` says where segments end: a list of segment lengths summing to ``F`` (the packed
        batch); an int ``S``: one sequence cut into segments of ``S`` frames (the last one shorter);
        None: the whole sequence is one segment. The int and None forms use tensor operations only,
        so a tracer (ONNX export) follows them with a dynamic number of frames.
        """
        frames, joints, dim = x.shape
        if isinstance(lengths, int):
            return self._forward_fixed_segments(x, lengths)
        # view/reshape with sizes read from x.shape: the ONNX tracer keeps those dynamic (unflatten it
        # does not).
        qkv = self.qkv(x).view(frames, joints, 3, self.heads, dim // self.heads)
        # [F, V·H, d] each: the feature map reads q and k in place and writes them contiguous; v is
        # copied out of the projection.
        q, k, v = qkv.unbind(2)
        q, k = (feature_map(t).reshape(frames, joints * self.heads, -1) for t in (q, k))
        v = v.reshape(q.shape)
        if lengths is None:
            out = self._attend_frames(q, k, v)
        elif len(set(lengths)) == 1 and len(lengths) > 1:  # equal segments (resampled clips): one call

            def per_segment(t: Tensor) -> Tensor:  # [n * size, B, d] -> [size, n * B, d]
                return t.view(len(lengths), lengths[0], *t.shape[1:]).transpose(0, 1).flatten(1, 2)

            out = self._attend_frames(per_segment(q), per_segment(k), per_segment(v))
            out = out.reshape(lengths[0], len(lengths), *q.shape[1:]).transpose(0, 1)
        else:
            segments = zip(q.split(lengths), k.split(lengths), v.split(lengths), strict=True)
            out = torch.cat([self._attend_frames(qs, ks, vs) for qs, ks, vs in segments])
        return out.reshape(frames, joints, dim)  # the one copy out (none after the loop's cat)

    def _attend_frames(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        # One segment, [T, B, d] (frames first): the keys-by-values statistic and the keys' sum
        # side by side, [B, d, d + 1], read out by every query frame in one matmul.
        stats = torch.cat([torch.bmm(k.permute(1, 2, 0), v.transpose(0, 1)), k.sum(0).unsqueeze(-1)], -1)
        read = torch.bmm(q.transpose(0, 1), stats)  # [B, T, d + 1]
        return (read[..., :-1] / (read[..., -1:] + self.eps)).transpose(0, 1)  # [T, B, d], a view

    def _forward_fixed_segments(self, x: Tensor, size: int) -> Tensor:
        frames, joints, dim = x.shape
        qkv = self.qkv(x).view(frames, joints, 3, self.heads, dim // self.heads)
        qkv = qkv.permute(2, 1, 3, 0, 4).reshape(3, joints * self.heads, frames, dim // self.heads)
        q, k, v = qkv.unbind(0)  # [V·H, F, d] each
        out = self._attend_fixed_segments(feature_map(q), feature_map(k), v, size)
        out = out.view(joints, self.heads, frames, -1)
        return out.permute(2, 0, 1, 3).reshape(frames, joints, dim)

    def forward_padded(self, x: Tensor, valid: Tensor, segment_length: int | None = None) -> Tensor:
        """A padded batch ``x: [N, T, V, C]`` whose clip ``n`` holds ``valid[n].sum()`` real frames
        first (``valid: [N, T]`` bool) -> ``[N, T, V, C]``; each clip's real frames get what
        :meth:`forward` gives that clip alone (cut into segments of ``segment_length`` from its first
        frame, or whole), padded frames never reach a real one. Tensor operations only, so an
        exported graph keeps N and T dynamic."""
        clips, frames, joints, dim = x.shape
        qkv = self.qkv(x).view(clips, frames, joints, 3, self.heads, dim // self.heads)
        qkv = qkv.permute(3, 0, 2, 4, 1, 5).reshape(3, clips, joints * self.heads, frames, dim // self.heads)
        q, k, v = qkv.unbind(0)  # [N, V·H, T, d] each
        mask = valid.to(x.dtype)[:, None, :, None]
        q, k = feature_map(q), feature_map(k) * mask
        if segment_length is None:
            kv = k.transpose(-1, -2) @ v  # [N, V·H, d, d]
            out = (q @ kv) / (q @ k.sum(2, keepdim=True).transpose(-1, -2) + self.eps)
        else:
            out = self._attend_padded_segments(q, k, v, valid, segment_length)
        out = out.view(clips, joints, self.heads, frames, -1)
        return out.permute(0, 3, 1, 2, 4).reshape(clips, frames, joints, dim)

    def _attend_padded_segments(self, q: Tensor, k: Tensor, v: Tensor, valid: Tensor, size: int) -> Tensor:
        # As _attend_fixed_segments, per clip: a segment ends at the next multiple of ``size`` or at
        # the clip's own last real frame, whichever comes first.
        frame = torch.ones_like(q[0, 0, :, 0]).cumsum(0) - 1  # 0..T-1, T kept dynamic
        length = valid.to(q.dtype).sum(1, keepdim=True)  # [N, 1]
        start = torch.div(frame, size, rounding_mode="floor") * size  # [T]
        end = torch.minimum(start[None] + size, length).clamp(min=0)  # [N, T], exclusive
        start, end = start.long()[None].expand_as(end), end.long()
        kv = (k.unsqueeze(-1) * v.unsqueeze(-2)).cumsum(2)  # [N, B, T, d, d]
        ksum = k.cumsum(2)
        kv = torch.cat([torch.zeros_like(kv[:, :, :1]), kv], dim=2)
        ksum = torch.cat([torch.zeros_like(ksum[:, :, :1]), ksum], dim=2)
        # Index [N, T] broadcast over the heads and feature axes.
        at_end = end[:, None, :, None].expand(-1, kv.shape[1], -1, ksum.shape[-1])
        at_start = start[:, None, :, None].expand_as(at_end)
        ksum_segment = ksum.gather(2, at_end) - ksum.gather(2, at_start)  # [N, B, T, d]
        flat = kv.flatten(3)  # [N, B, T+1, d·d]
        wide_end = end[:, None, :, None].expand(-1, flat.shape[1], -1, flat.shape[-1])
        wide_start = start[:, None, :, None].expand_as(wide_end)
        kv_segment = (flat.gather(2, wide_end) - flat.gather(2, wide_start)).view(*ksum_segment.shape, -1)
        numerator = (q.unsqueeze(-2) @ kv_segment).squeeze(-2)
        normaliser = (q * ksum_segment).sum(-1, keepdim=True)
        return numerator / (normaliser + self.eps)

    def _attend_fixed_segments(self, q: Tensor, k: Tensor, v: Tensor, size: int) -> Tensor:
        # One sequence [B, T, d] cut into segments of ``size`` frames, without Python loops over them:
        # segment sums are differences of prefix sums, read at each frame's segment end and start.
        frame = torch.arange(q.shape[1], device=q.device, dtype=q.dtype)  # a tracer keeps T dynamic
        start = torch.div(frame, size, rounding_mode="floor") * size
        end = torch.minimum(start + size, frame[-1:] + 1)  # exclusive
        start, end = start.long(), end.long()
        kv = (k.unsqueeze(-1) * v.unsqueeze(-2)).cumsum(1)  # [B, T, d, d]
        ksum = k.cumsum(1)
        kv = torch.cat([torch.zeros_like(kv[:, :1]), kv], dim=1)  # kv[:, i] = sum of the first i frames
        ksum = torch.cat([torch.zeros_like(ksum[:, :1]), ksum], dim=1)
        kv_segment = kv[:, end] - kv[:, start]  # [B, T, d, d]
        ksum_segment = ksum[:, end] - ksum[:, start]  # [B, T, d]
        numerator = (q.unsqueeze(-2) @ kv_segment).squeeze(-2)
        normaliser = (q * ksum_segment).sum(-1, keepdim=True)
        return numerator / (normaliser + self.eps)
