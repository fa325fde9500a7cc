"""Non-causal linear (kernel) attention over time, computed separately for each segment of a
packed sequence (STAR, temporal)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from lightact.models.layers.packing import Packing


def segment_lengths(clip_lengths: list[int], segment_length: int | None) -> list[int]:
    """Split each clip into segments of at most ``segment_length`` frames (whole clips when None)."""
    if segment_length is None:
        return list(clip_lengths)
    out = []
    for n in clip_lengths:
        full, rest = divmod(n, segment_length)
        out += [segment_length] * full + ([rest] if rest else [])
    return out


def attend_frames(q: Tensor, k: Tensor, v: Tensor, eps: float) -> Tensor:
    """Linear attention within one segment, frames first: ``q, k`` (feature-mapped), ``v``
    ``[T, B, d]`` -> ``[T, B, d]`` (a view of a ``[B, T, d]`` result)."""
    # The keys-by-values statistic and the keys' sum side by side, [B, d, d + 1], read out by
    # every query frame in one matmul.
    stats = torch.cat([torch.bmm(k.permute(1, 2, 0), v.transpose(0, 1)), k.sum(0).unsqueeze(-1)], -1)
    read = torch.bmm(q.transpose(0, 1), stats)  # [B, T, d + 1]
    return (read[..., :-1] / (read[..., -1:] + eps)).transpose(0, 1)


def attend_frames_backward(
    grad: Tensor, q: Tensor, k: Tensor, v: Tensor, eps: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of :func:`attend_frames` with respect to ``q, k, v`` for the output gradient
    ``grad`` (all ``[T, B, d]``): with ``S = Σ k vᵀ`` and ``z = Σ k``, ``out = qS / (q·z + ε)``."""
    q, k, v, grad = (t.transpose(0, 1) for t in (q, k, v, grad))  # [B, T, d]
    kv = torch.bmm(k.transpose(1, 2), v)  # S, [B, d, d]
    ksum = k.sum(1, keepdim=True)  # z, [B, 1, d]
    denominator = (q * ksum).sum(-1, keepdim=True) + eps  # [B, T, 1]
    out = torch.bmm(q, kv) / denominator
    d_numerator = grad / denominator
    d_denominator = -(grad * out).sum(-1, keepdim=True) / denominator
    d_kv = torch.bmm(q.transpose(1, 2), d_numerator)  # [B, d, d]
    d_ksum = (d_denominator * q).sum(1, keepdim=True)
    dq = torch.bmm(d_numerator, kv.transpose(1, 2)) + d_denominator * ksum
    dk = torch.bmm(v, d_kv.transpose(1, 2)) + d_ksum
    dv = torch.bmm(k, d_kv)
    return dq.transpose(0, 1), dk.transpose(0, 1), dv.transpose(0, 1)


def _per_segment(
    fn: Callable[..., Tensor | tuple[Tensor, ...]], tensors: tuple[Tensor, ...], lengths: list[int]
) -> list[Tensor]:
    """``fn`` on every segment of the frames-first ``tensors`` ``[F, B, d]``, each of its results
    concatenated back along frames. Equal segments (resampled clips) go in one call, side by side
    in the batch axis; others in a loop over the segments."""
    if len(set(lengths)) == 1 and len(lengths) > 1:
        count, size = len(lengths), lengths[0]

        def side_by_side(t: Tensor) -> Tensor:  # [n * size, B, d] -> [size, n * B, d]
            return t.view(count, size, *t.shape[1:]).transpose(0, 1).flatten(1, 2)

        out = fn(*(side_by_side(t) for t in tensors))
        out = out if isinstance(out, tuple) else (out,)
        return [o.reshape(size, count, *tensors[0].shape[1:]).transpose(0, 1).flatten(0, 1) for o in out]
    pieces = []
    for segment in zip(*(t.split(lengths) for t in tensors), strict=True):
        out = fn(*segment)
        pieces.append(out if isinstance(out, tuple) else (out,))
    return [torch.cat(parts) for parts in zip(*pieces, strict=True)]


def attend_segments(q: Tensor, k: Tensor, v: Tensor, lengths: list[int], eps: float) -> Tensor:
    """:func:`attend_frames` in each segment of ``lengths`` frames of ``[F, B, d]`` inputs."""
    (out,) = _per_segment(lambda *t: attend_frames(*t, eps), (q, k, v), lengths)
    return out


# The packed attention as one operator for torch.compile: its loop over segments, and the host read
# of the lengths it needs, stay outside the graph, which takes the lengths as an input tensor
# instead of being specialised on them (a recompilation for every batch). Its backward is a second
# operator (a compiled graph cannot trace the loop either), written out by hand.
@torch.library.custom_op("lightact::segmented_linear_attention", mutates_args=())
def segmented_linear_attention(
    q: Tensor, k: Tensor, v: Tensor, clip_lengths: Tensor, segment_length: int | None, eps: float
) -> Tensor:
    """:func:`attend_segments` over clips of ``clip_lengths`` frames, each cut into segments of at
    most ``segment_length`` (whole clips when None); ``[F, B, d]`` each -> ``[F, B, d]``."""
    segments = segment_lengths(clip_lengths.tolist(), segment_length)
    return attend_segments(q, k, v, segments, eps).contiguous()


@segmented_linear_attention.register_fake
def _(q: Tensor, k: Tensor, v: Tensor, *lengths_and_constants: object) -> Tensor:
    return torch.empty_like(q)


@torch.library.custom_op("lightact::segmented_linear_attention_backward", mutates_args=())
def segmented_linear_attention_backward(
    grad: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    clip_lengths: Tensor,
    segment_length: int | None,
    eps: float,
) -> tuple[Tensor, Tensor, Tensor]:
    segments = segment_lengths(clip_lengths.tolist(), segment_length)
    grads = _per_segment(lambda *t: attend_frames_backward(*t, eps), (grad, q, k, v), segments)
    return tuple(g.contiguous() for g in grads)


@segmented_linear_attention_backward.register_fake
def _(
    grad: Tensor, q: Tensor, k: Tensor, v: Tensor, *lengths_and_constants: object
) -> tuple[Tensor, Tensor, Tensor]:
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def _save_for_backward(ctx, inputs: tuple, output: Tensor) -> None:
    q, k, v, clip_lengths, segment_length, eps = inputs
    ctx.save_for_backward(q, k, v, clip_lengths)
    ctx.segment_length, ctx.eps = segment_length, eps


def _backward(ctx, grad: Tensor) -> tuple:
    q, k, v, clip_lengths = ctx.saved_tensors
    dq, dk, dv = segmented_linear_attention_backward(
        grad.contiguous(), q, k, v, clip_lengths, ctx.segment_length, ctx.eps
    )
    return dq, dk, dv, None, None, None


segmented_linear_attention.register_autograd(_backward, setup_context=_save_for_backward)


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

    def forward(self, x: Tensor, lengths: Packing | list[int] | int | None) -> Tensor:
        """``x: [F, V, C]`` -> ``[F, V, C]``.

        ``lengths`` says where segments end: a :class:`~lightact.models.layers.packing.Packing` or
        a list of segment lengths summing to ``F`` (the packed batch); an int ``S``: one sequence
        cut into segments of ``S`` frames (the last one shorter); None: the whole sequence is one
        segment. The int and None forms use tensor operations only, so a tracer (ONNX export)
        follows them with a dynamic number of frames; under ``torch.compile`` a Packing goes
        through one opaque operator, so that the graph does not depend on the clip lengths.
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
            out = attend_frames(q, k, v, self.eps)
        elif isinstance(lengths, list):
            out = attend_segments(q, k, v, lengths, self.eps)
        elif torch.compiler.is_compiling():
            out = segmented_linear_attention(q, k, v, lengths.lengths, lengths.segment_length, self.eps)
        else:
            # Eager code runs the loop itself: autograd records it as it goes, where the operator's
            # backward would redo the per-segment products.
            out = attend_segments(q, k, v, lengths.segments, self.eps)
        return out.reshape(frames, joints, dim)  # the one copy out (none after the loop's cat)

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
