"""STAR: Sparse Transformer-based Action Recognition (arXiv 2107.07089).

A batch is every clip concatenated along time, ``x: [sum F_i, V, C]``, with a per-frame clip id;
nothing is padded. Each layer runs two branches in parallel and sums them:

* spatial: per frame, each joint attends to the joints within ``hops`` bones (sparse graph);
* temporal: per joint, linear attention over the frames of each clip (or fixed sub-segments).

Clips are then pooled with a gated mean and classified from the flattened joints.

Compile. ``torch.compile(model, dynamic=True)`` compiles once for all batches: the clip count is
read from the clip ids at the start (a data-dependent size: one graph break), after which the clip
lengths reach the layers as a tensor (:class:`~lightact.models.layers.packing.Packing`) and the
temporal attention's loop over clips, the one place that needs them in Python, is one opaque
operator in the graph (``lightact::segmented_linear_attention``, with its backward). New lengths or
clip counts reuse the graphs; only a single clip (a batch of one) gets its own.

Export. The packed forward reads the clip lengths into Python and loops over the clips, which a
tracer records as constants: an ONNX graph traced that way would only accept the
exact clip lengths it was traced with. :class:`PaddedSTAR` is the exported form: several clips per
call as a padded batch ``[N, T, V, C]`` with each clip's length, every per-clip quantity (position
code, temporal attention, pooling) computed with tensor operations and masks, so the number of clips
and the padded length are dynamic axes of the graph. :class:`SingleClipSTAR` is the same for one
clip ``[F, V, C]`` (the earlier export form, kept for callers that feed one clip at a time).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightact.data.skeleton.layouts import Layout, get_layout
from lightact.models.layers import (
    FeedForward,
    PackedTemporalConv,
    Packing,
    SegmentedLinearAttention,
    SparseGraphAttention,
    k_hop_neighbours,
    sinusoidal_code,
)
from lightact.models.registry import register_model
from lightact.models.spec import ATTENTION_ONLY, ExampleInput, ExportTarget, ModelSpec, random_input


class AttentionBranch(nn.Module):
    """Post-norm transformer sub-layer: ``h = LN(x + attn(x)); LN(h + FFN(h))``."""

    def __init__(self, attention: nn.Module, dim: int, dropout: float) -> None:
        super().__init__()
        self.attention = attention
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, dim, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, *context) -> Tensor:
        return self.finish(x, self.attention(x, *context))

    def finish(self, x: Tensor, attended: Tensor) -> Tensor:
        """The sub-layer around an attention output computed elsewhere (STAR's padded form)."""
        h = self.norm1(x + self.drop(attended))
        return self.norm2(h + self.drop(self.ffn(h)))


class LocalGlobalTemporal(nn.Module):
    """Segmented linear attention plus a short depthwise convolution over each clip's frames."""

    def __init__(self, dim: int, heads: int, kernel: int) -> None:
        super().__init__()
        self.attention = SegmentedLinearAttention(dim, heads)
        self.local = PackedTemporalConv(dim, kernel)

    def forward(self, x: Tensor, segments: Packing | int | None, packing: Packing | None) -> Tensor:
        return self.attention(x, segments) + self.local(x, packing)

    def forward_padded(self, x: Tensor, valid: Tensor, segment_length: int | None = None) -> Tensor:
        """The padded batch form (STAR's export), as the attention's."""
        return self.attention.forward_padded(x, valid, segment_length) + self.local.forward_padded(x, valid)


class STARBlock(nn.Module):
    def __init__(
        self,
        dim: int,
        heads: int,
        neighbours: Tensor,
        valid: Tensor,
        dropout: float,
        temporal_kernel: int = 0,
    ) -> None:
        super().__init__()
        self.spatial = AttentionBranch(SparseGraphAttention(dim, heads, neighbours, valid), dim, dropout)
        temporal = (
            LocalGlobalTemporal(dim, heads, temporal_kernel)
            if temporal_kernel
            else SegmentedLinearAttention(dim, heads)
        )
        self.temporal = AttentionBranch(temporal, dim, dropout)
        self.local_temporal = bool(temporal_kernel)

    def forward(self, x: Tensor, packing: Packing | None, segment_length: int | None = None) -> Tensor:
        """``packing``: where the clips of ``x`` lie (its own segment length); None: ``x`` is one
        clip, its attention in segments of ``segment_length`` frames (whole when None)."""
        segments = packing if packing is not None else segment_length
        context = (segments, packing) if self.local_temporal else (segments,)
        return self.spatial(x) + self.temporal(x, *context)


class GatedMeanPool(nn.Module):
    """Per clip: context ``c = tanh(W·mean_t x)``, gate ``g_t = σ(<x_t, c>)``, output ``mean_t g_t x_t``.

    The gate lets informative frames weigh more than idle ones without attention over time.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.context = nn.Linear(dim, dim)

    def forward_padded(self, x: Tensor, valid: Tensor) -> Tensor:
        """The same pooling for a padded batch ``[N, T, V, C]`` with its real frames ``valid [N, T]``
        -> ``[N, V, C]``; padded frames take no part."""
        mask = valid.to(x.dtype)[:, :, None, None]
        counts = mask.sum(1)
        context = torch.tanh(self.context((x * mask).sum(1) / counts))
        gate = torch.sigmoid((x * context[:, None]).sum(-1, keepdim=True))
        return (gate * x * mask).sum(1) / counts

    def forward(self, x: Tensor, packing: Packing) -> Tensor:
        clip_ids, shape = packing.clip_ids, (packing.num_clips, *x.shape[1:])
        counts = packing.lengths.to(x.dtype)[:, None, None]
        mean = x.new_zeros(shape).index_add_(0, clip_ids, x) / counts
        context = torch.tanh(self.context(mean))
        gate = torch.sigmoid((x * context[clip_ids]).sum(-1, keepdim=True))
        return x.new_zeros(shape).index_add_(0, clip_ids, gate * x) / counts

    def forward_single(self, x: Tensor) -> Tensor:
        """The same pooling for one clip ``[F, V, C]`` -> ``[1, V, C]``, as reductions over dim 0."""
        context = torch.tanh(self.context(x.mean(0, keepdim=True)))
        gate = torch.sigmoid((x * context).sum(-1, keepdim=True))
        return (gate * x).mean(0, keepdim=True)


class STAR(nn.Module):
    """Sparse spatial + segmented linear temporal transformer over packed skeleton clips.

    ``forward(x, clip_ids)``: ``x`` is ``[sum F_i, V, in_channels]`` (joint, bone and motion
    features), ``clip_ids`` the non-decreasing clip index of each frame; returns ``[N, num_classes]``.

    ``dropout`` acts in the classifier head, as in the authors' recipe; ``block_dropout`` inside the
    transformer blocks is off by default because on CPU drawing a mask for every joint of every
    frame costs as much as the attention itself.

    ``joint_embedding`` adds a learned vector per joint to the embedded input (the authors' code has
    none: there the shared ``Linear(9 -> C)`` gives symmetric joints the same embedding for the
    same coordinates, so attention can tell a left hand from a right one only by where it is).
    ``temporal_kernel`` > 0 adds a depthwise convolution of that many frames to every temporal
    branch (:class:`PackedTemporalConv`): linear attention alone sees frame order only through the
    position code.
    """

    def __init__(
        self,
        num_classes: int = 60,
        layout: str | Layout = "ntu25",
        in_channels: int = 9,
        dim: int = 64,
        depth: int = 5,
        heads: int = 8,
        hops: int = 3,
        segment_length: int | None = None,
        head_hidden: int = 128,
        dropout: float = 0.4,
        block_dropout: float = 0.0,
        joint_embedding: bool = False,
        temporal_kernel: int = 0,
    ) -> None:
        super().__init__()
        layout = get_layout(layout) if isinstance(layout, str) else layout
        self.num_joints = layout.num_joints
        self.in_channels = in_channels
        self.segment_length = segment_length
        neighbours, valid = k_hop_neighbours(layout.hop_distance(), hops)

        self.input_norm = nn.BatchNorm1d(self.num_joints * in_channels)
        self.embed = nn.Linear(in_channels, dim)
        self.joint_embed = nn.Parameter(torch.zeros(self.num_joints, dim)) if joint_embedding else None
        if self.joint_embed is not None:
            nn.init.trunc_normal_(self.joint_embed, std=0.02)
        self.blocks = nn.ModuleList(
            STARBlock(dim, heads, neighbours, valid, block_dropout, temporal_kernel) for _ in range(depth)
        )
        self.pool = GatedMeanPool(dim)
        self.head = nn.Sequential(
            nn.Flatten(1),
            nn.Linear(self.num_joints * dim, head_hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(head_hidden, num_classes),
        )

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != self.num_joints or x.shape[2] != self.in_channels:
            raise ValueError(
                f"STAR expects [frames, {self.num_joints} joints, {self.in_channels} channels], "
                f"got {list(x.shape)}: is the data's joint layout the one the model was built for?"
            )

    def _embed(self, x: Tensor, positions: Tensor) -> Tensor:
        """``[F, V, C_in]`` and each frame's index in its clip -> tokens ``[F, V, dim]`` (also a
        padded ``[N, T, V, C_in]`` with the positions ``[T]`` of its frames)."""
        x = self.embed(x) + sinusoidal_code(positions, self.embed.out_features)[:, None]
        return x if self.joint_embed is None else x + self.joint_embed

    def forward_clip(self, x: Tensor) -> Tensor:
        """One clip ``[F, V, C]`` -> logits ``[1, num_classes]``; equal to ``forward`` with all-zero
        clip ids, but built from tensor operations only, so that tracing keeps ``F`` dynamic."""
        self._check_input(x)
        x = self.input_norm(x.flatten(1)).view_as(x)
        positions = torch.ones_like(x[:, 0, 0]).cumsum(0) - 1  # 0..F-1 without reading F into Python
        x = self._embed(x, positions)
        for block in self.blocks:
            x = block(x, None, self.segment_length)
        return self.head(self.pool.forward_single(x))

    def forward_padded(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Clips ``n`` = ``x[n, :lengths[n]]`` of a padded batch ``[N, T, V, C]`` -> logits
        ``[N, num_classes]``, each equal to ``forward`` on that clip alone; tensor operations only,
        so that tracing keeps ``N`` and ``T`` dynamic (what frames past a clip's length hold does
        not matter)."""
        clips, frames, joints, channels = x.shape
        if joints != self.num_joints or channels != self.in_channels:
            raise ValueError(
                f"STAR expects [clips, frames, {self.num_joints} joints, {self.in_channels} channels], "
                f"got {list(x.shape)}"
            )
        positions = torch.ones_like(x[0, :, 0, 0]).cumsum(0) - 1  # 0..T-1
        valid = positions[None] < lengths[:, None].to(positions.dtype)  # [N, T]
        x = self.input_norm(x.reshape(clips * frames, joints * channels)).view_as(x)
        x = self._embed(x, positions)
        for block in self.blocks:
            spatial = block.spatial(x.flatten(0, 1)).view_as(x)
            temporal = block.temporal.attention.forward_padded(x, valid, self.segment_length)
            x = spatial + block.temporal.finish(x, temporal)
        return self.head(self.pool.forward_padded(x, valid))

    def forward(self, x: Tensor, clip_ids: Tensor) -> Tensor:
        self._check_input(x)
        frames, joints, channels = x.shape
        packing = Packing(clip_ids, self.segment_length)
        x = self.input_norm(x.reshape(frames, -1)).view(frames, joints, channels)
        x = self._embed(x, packing.positions())
        for block in self.blocks:
            x = block(x, packing)
        return self.head(self.pool(x, packing))


class PaddedSTAR(nn.Module):
    """Exportable STAR for several clips per call: ``forward(x [N, T, V, C], lengths [N])`` ->
    ``[N, num_classes]`` (:meth:`STAR.forward_padded`); shares the wrapped model's parameters."""

    def __init__(self, star: STAR) -> None:
        super().__init__()
        self.star = star

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        return self.star.forward_padded(x, lengths)


def pad_packed(x: Tensor, clip_ids: Tensor) -> tuple[Tensor, Tensor]:
    """A packed batch ``(x [sum F_i, V, C], clip_ids)`` as :class:`PaddedSTAR`'s ``(x [N, T, V, C],
    lengths [N])``, zero-padded to the longest clip."""
    lengths = torch.bincount(clip_ids)
    clips = x.split(lengths.tolist())
    padded = x.new_zeros((len(clips), int(lengths.max()), *x.shape[1:]))
    for n, clip in enumerate(clips):
        padded[n, : len(clip)] = clip
    return padded, lengths


def example_lengths(x: Tensor) -> tuple[Tensor]:
    """Clip lengths for an example padded batch: the first clip full, each next one shorter (so that
    the parity check sees padding)."""
    clips, frames = x.shape[:2]
    return (frames - (torch.arange(clips) * 7) % frames,)


class SingleClipSTAR(nn.Module):
    """Exportable STAR: ``forward(x [F, V, C]) -> [1, num_classes]`` for one clip of any length.

    Shares the parameters of the wrapped :class:`STAR`; see the module docstring for why the
    exported graph takes one clip at a time.
    """

    def __init__(self, star: STAR) -> None:
        super().__init__()
        self.star = star

    def forward(self, x: Tensor) -> Tensor:
        return self.star.forward_clip(x)


# ----------------------------------------------------------------------------- spec and variants

# A canonical sample: one NTU clip of 2 persons x 100 frames, the persons concatenated along time.
CANONICAL_FRAMES = 200
EXPORT_NOTE = (
    "STAR exports as PaddedSTAR: several clips per call, x [clips, frames, joints, 9] zero-padded to "
    "the longest clip with lengths [clips] (int64) -> [clips, classes]. The packed batch reads clip "
    "lengths into Python and loops over clips, which a tracer would freeze to the traced lengths; the "
    "padded form computes every per-clip quantity with tensor operations and masks, so the number of "
    "clips and the frame count stay dynamic."
)


class PackedClips(ExampleInput):
    """``batch`` clips of ``frames x joints x channels`` packed along time, with their clip ids."""

    def shape(self, model: nn.Module) -> tuple[int, ...]:
        return (CANONICAL_FRAMES, model.num_joints, model.in_channels)

    def __call__(
        self, model: nn.Module, batch: int, shape: tuple[int, ...] | None = None
    ) -> tuple[Tensor, ...]:
        frames, joints, channels = shape or self.shape(model)
        return random_input((batch * frames, joints, channels)), torch.arange(batch).repeat_interleave(frames)

    def describe(self, shape: tuple[int, ...]) -> str:
        return f"{super().describe(shape)} (2 persons x {shape[0] // 2} frames, packed)"


def _export_target(model: STAR) -> ExportTarget:
    return ExportTarget(
        PaddedSTAR(model).eval(),
        canonical=(2, CANONICAL_FRAMES, model.num_joints, model.in_channels),
        axes={0: "batch", 1: "frames"},
        alternate={"batch": 3, "frames": 137},
        note=EXPORT_NOTE,
        feeds=lambda inputs: [pad_packed(*inputs)],
        extra_inputs=example_lengths,
        extra_names=("lengths",),
        extra_axes={"lengths": {0: "batch"}},
    )


_SPEC = ModelSpec(
    modality="skeleton", input_format="packed", data_args=("num_classes", "layout", "in_channels"),
    example_input=PackedClips(), export=_export_target, efficiency_class=ATTENTION_ONLY,
)  # fmt: skip


@register_model("star_64", _SPEC)
def star_64(**kwargs) -> STAR:
    """STAR, width 64 (~0.43 M parameters on NTU-60)."""
    return STAR(**{"dim": 64, **kwargs})


@register_model("star_128", _SPEC)
def star_128(**kwargs) -> STAR:
    """STAR, width 128 (~1.26 M parameters on NTU-60)."""
    return STAR(**{"dim": 128, **kwargs})


@register_model("star_64_paper", _SPEC)
def star_64_paper(**kwargs) -> STAR:
    """STAR-64 as the paper and its code have it: no joint embedding, no temporal convolution."""
    return STAR(**{"dim": 64, "joint_embedding": False, "temporal_kernel": 0, **kwargs})


@register_model("star_128_paper", _SPEC)
def star_128_paper(**kwargs) -> STAR:
    """STAR-128 as the paper and its code have it: no joint embedding, no temporal convolution."""
    return STAR(**{"dim": 128, "joint_embedding": False, "temporal_kernel": 0, **kwargs})
