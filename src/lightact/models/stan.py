"""STAN: a two-stream transformer over cached features of long videos (arXiv 2208.01753, BMVC 2022).

A long video arrives as two sequences of pre-computed features (see
:mod:`lightact.data.longvideo`): *static* features of frames sampled sparsely (about 1 fps) by an
image encoder, and *temporal* features of short clips by a video encoder, each with its time in
seconds. STAN runs a small transformer with a class token over each stream, lets the streams
exchange information with cross attention (``cross_depth`` layers: every static token attends to the
video's temporal tokens and vice versa), and classifies (or regresses) from both class tokens.

Batches: packed tokens, padded only inside attention
----------------------------------------------------
Every model here takes a batch of videos of different lengths as *packed* tensors,
``model(frames [sum Nf, Df], frame_times [sum Nf], frame_lengths [B], clips [sum Nc, Dc],
clip_times [sum Nc], clip_lengths [B])``: nothing is padded in the data. Inside the network the
point-wise work (projections, feed-forward layers, norms: most of the FLOPs at these lengths) runs on
the packed tokens, so no compute goes to padding there. Only the attention kernel sees the videos
padded to the longest one in the batch, with a key-padding mask. Why not one packed sequence with a
block-diagonal mask: scaled-dot-product attention on CPU computes the full ``(sum L)^2`` score matrix
whatever the mask says, ``B`` times the work of padded attention for equal lengths; a Python loop
over videos has no waste but no batching either. With padded attention the waste is only
``B * Lmax^2 - sum L^2`` scores, and a masked key gets exactly zero weight, so a video's output does
not depend on what else is in its batch (tested: packed batch == one video at a time).

Time is encoded as a sinusoidal code of the time in seconds, the same for both streams, so that
cross attention can relate a frame to the clips around it. A stream may be empty for a video (a
video shorter than one clip has no clip features): its class token is then all it has.

Regression (LVU's like ratio and view count): ``task="regression"``, ``num_classes`` outputs, and
``target_mean`` / ``target_std`` (from the training targets) scale the raw output, so the model
predicts in the target's units from the first step on.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightact.models.layers import CrossAttentionBlock
from lightact.models.registry import register_model
from lightact.models.spec import COMPOSITE, LINEAR, ExampleInput, ModelSpec, random_input

__all__ = ["STAN", "MeanPoolLinear", "PaddedIndex", "SingleStreamTransformer", "time_code"]

MAX_PERIOD_S = 2000.0  # longest period of the time code: well beyond LVU's 3-minute clips


def time_code(seconds: Tensor, dim: int, max_period: float = MAX_PERIOD_S) -> Tensor:
    """Sinusoidal code of times in seconds, ``[N] -> [N, dim]``; periods from 1 s to ``max_period``."""
    half = dim // 2
    periods = torch.exp(
        torch.linspace(0.0, math.log(max_period), half, device=seconds.device, dtype=torch.float32)
    )
    angle = seconds.float()[:, None] * (2 * math.pi / periods)[None]
    code = torch.cat([angle.sin(), angle.cos()], dim=-1)
    return F.pad(code, (0, dim - 2 * half))


class PaddedIndex:
    """Where each packed token goes in a ``[B, Lmax]`` padded layout, and the key mask.

    ``lengths`` are tokens per video (a class token counts). :meth:`pad` scatters packed ``[N, D]``
    into zeros ``[B, Lmax, D]``; :meth:`unpad` gathers back; ``mask`` is ``[B, Lmax]``, True = real.
    """

    def __init__(self, lengths: Tensor, times: Tensor | None = None) -> None:
        lengths = lengths.long()
        self.batch = len(lengths)
        self.max_len = int(lengths.max()) if len(lengths) else 0
        self.rows = torch.repeat_interleave(torch.arange(self.batch, device=lengths.device), lengths)
        starts = torch.cumsum(lengths, 0) - lengths
        self.cols = torch.arange(len(self.rows), device=lengths.device) - starts[self.rows]
        self.mask = torch.arange(self.max_len, device=lengths.device)[None] < lengths[:, None]
        # Token times in seconds, padded ``[B, Lmax]``; NaN for class tokens and padding.
        self.times = None
        self._buckets: dict[int, Tensor] = {}  # relative-time buckets against another index, per forward
        if times is not None:
            self.times = self.pad(times.float()).masked_fill_(~self.mask, float("nan"))

    def pad(self, x: Tensor) -> Tensor:
        out = x.new_zeros((self.batch, self.max_len, *x.shape[1:]))
        out[self.rows, self.cols] = x
        return out

    def unpad(self, y: Tensor) -> Tensor:
        return y[self.rows, self.cols]

    def time_buckets(self, keys: PaddedIndex) -> Tensor:
        """:func:`relative_time_bucket` of every (query here, key there) pair, ``[B, Lq, Lk]``;
        computed once per forward and shared by every layer that attends between the two."""
        if id(keys) not in self._buckets:
            self._buckets[id(keys)] = relative_time_bucket(keys.times[:, None, :] - self.times[:, :, None])
        return self._buckets[id(keys)]


NUM_TIME_BUCKETS = 18
PAST_FUTURE_INIT = 3.0


def relative_time_bucket(dt: Tensor) -> Tensor:
    """Bucket of a time difference (key time - query time, seconds): 0 when a class token is
    involved (NaN), 1 for "the same moment" (|dt| < 0.5 s), then 8 log2-spaced distances
    (0.5-1 s, 1-2 s, ..., >= 64 s) for keys before the query (2-9) and after it (10-17)."""
    magnitude = torch.floor(torch.log2(dt.abs().clamp(min=0.5))).clamp(-1, 6).long() + 1
    bucket = 2 + magnitude + 8 * (dt > 0).long()
    bucket = torch.where(dt.abs() < 0.5, torch.ones_like(bucket), bucket)
    return torch.where(torch.isnan(dt), torch.zeros_like(bucket), bucket)


class MaskedAttention(nn.Module):
    """Multi-head attention from packed queries to packed keys/values of the same video.

    With ``time_bias`` each head adds a learned bias by the bucketed time difference between
    query and key (:func:`relative_time_bucket`): whether a key lies before or after the query,
    and how far, in the video's seconds (T5's relative buckets, in time rather than positions). It
    starts at zero, i.e. as plain attention; it makes "what happened before / after this" cheap to
    learn, which is what order-dependent labels need.
    """

    def __init__(self, dim: int, heads: int, dropout: float, time_bias: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout
        self.time_bias = nn.Embedding(NUM_TIME_BUCKETS, heads) if time_bias else None
        if self.time_bias is not None:
            nn.init.zeros_(self.time_bias.weight)
            if heads >= 2:
                # The first head starts looking at the past, the second at the future (the rest
                # unbiased), so "what came before / after" is there from the first step.
                with torch.no_grad():
                    self.time_bias.weight[2:10, 0] = PAST_FUTURE_INIT
                    self.time_bias.weight[10:18, 1] = PAST_FUTURE_INIT

    def _mask(self, x_index: PaddedIndex, c_index: PaddedIndex, dtype: torch.dtype) -> Tensor:
        keep = c_index.mask[:, None, None, :]
        if self.time_bias is None or x_index.times is None or c_index.times is None:
            return keep
        bias = self.time_bias(x_index.time_buckets(c_index)).permute(0, 3, 1, 2).to(dtype)  # [B, H, Lq, Lk]
        return bias.masked_fill(~keep, float("-inf"))

    def forward(self, x: Tensor, x_index: PaddedIndex, context: Tensor, c_index: PaddedIndex) -> Tensor:
        b, h = x_index.batch, self.heads
        q = x_index.pad(self.q(x)).view(b, x_index.max_len, h, -1).transpose(1, 2)
        k, v = c_index.pad(self.kv(context)).view(b, c_index.max_len, 2, h, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=self._mask(x_index, c_index, q.dtype),
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.out(x_index.unpad(out.transpose(1, 2).flatten(2)))


def _block(
    dim: int, heads: int, mlp_ratio: int, dropout: float, time_bias: bool, cross: bool = False
) -> CrossAttentionBlock:
    """One pre-norm layer over packed tokens (self or cross attention, see :class:`CrossAttentionBlock`)."""
    attention = MaskedAttention(dim, heads, dropout, time_bias)
    return CrossAttentionBlock(dim, attention, dim * mlp_ratio, dropout, cross=cross)


def _check_stream(name: str, features: Tensor, times: Tensor, lengths: Tensor, dim: int) -> None:
    if features.dim() != 2 or features.shape[1] != dim:
        raise ValueError(f"{name} features must be [tokens, {dim}], got {list(features.shape)}")
    if times.shape != features.shape[:1]:
        raise ValueError(f"{name} times must be [{features.shape[0]}], got {list(times.shape)}")
    if lengths.dim() != 1 or int(lengths.sum()) != features.shape[0]:
        raise ValueError(
            f"{name} lengths sum to {int(lengths.sum())}, but there are {features.shape[0]} tokens"
        )


class FeatureNorm(nn.BatchNorm1d):
    """Per-feature standardisation of packed encoder features ``[N, D]`` with batch statistics
    in training and running statistics in evaluation (like STAR's input norm).

    Frozen encoders give features whose scales differ wildly between dimensions, and the ones that
    matter may vary little next to nuisances (lighting, colour); standardising each dimension over
    the data, not each token over its dimensions, keeps those small differences visible. In
    evaluation every video is normalised alone with the same statistics, so packing cannot change
    a video's output. A training batch with fewer than two tokens uses the running statistics.
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.training and x.shape[0] < 2:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        return super().forward(x)


class _Head(nn.Module):
    """Classification logits, or regression outputs in the target's units."""

    def __init__(
        self,
        in_dim: int,
        num_outputs: int,
        task: str,
        dropout: float,
        target_mean: float | list[float],
        target_std: float | list[float],
    ) -> None:
        super().__init__()
        if task not in ("classification", "regression"):
            raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
        self.task = task
        self.norm = nn.LayerNorm(in_dim)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(in_dim, num_outputs)
        mean = torch.as_tensor(target_mean, dtype=torch.float32).expand(num_outputs).clone()
        std = torch.as_tensor(target_std, dtype=torch.float32).expand(num_outputs).clone()
        if task == "regression":
            nn.init.zeros_(self.fc.weight)  # starts at the mean target: a sane first loss
            nn.init.zeros_(self.fc.bias)
        self.register_buffer("target_mean", mean)
        self.register_buffer("target_std", std)

    def forward(self, x: Tensor) -> Tensor:
        out = self.fc(self.drop(self.norm(x)))
        if self.task == "regression":
            out = out * self.target_std + self.target_mean
        return out


class _StreamEmbed(nn.Module):
    """Features -> tokens: per-feature standardisation (:class:`FeatureNorm`), a linear map, the
    time code; a learned class token is put in front of every video's tokens."""

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.norm = FeatureNorm(in_dim)
        self.proj = nn.Linear(in_dim, dim)
        self.cls = nn.Parameter(torch.zeros(dim))
        nn.init.trunc_normal_(self.cls, std=0.02)

    def forward(self, features: Tensor, times: Tensor, lengths: Tensor) -> tuple[Tensor, PaddedIndex, Tensor]:
        """Packed tokens with class tokens, their padded index, and where each class token is."""
        tokens = self.proj(self.norm(features)) + time_code(times, self.proj.out_features).to(features.dtype)
        with_cls = lengths.long() + 1
        cls_pos = torch.cumsum(with_cls, 0) - with_cls
        is_cls = torch.zeros(int(with_cls.sum()), dtype=torch.bool, device=features.device)
        is_cls[cls_pos] = True
        out = tokens.new_empty((len(is_cls), tokens.shape[1]))
        out[is_cls] = self.cls.to(tokens.dtype)
        out[~is_cls] = tokens
        token_times = torch.full((len(is_cls),), float("nan"), device=features.device)
        token_times[~is_cls] = times.float()
        return out, PaddedIndex(with_cls, token_times), cls_pos


class STAN(nn.Module):
    """Two-stream transformer: static (frame) and temporal (clip) streams, cross-attention exchange.

    ``depth`` self-attention layers per stream, then ``cross_depth`` exchange layers (each: both
    streams cross-attend to the other's tokens of the same video, then self-attend), then a head on
    the concatenated class tokens. Inputs are packed; see the module docstring.
    """

    def __init__(
        self,
        num_classes: int = 10,
        frame_dim: int = 512,
        clip_dim: int = 512,
        dim: int = 128,
        depth: int = 2,
        cross_depth: int = 1,
        heads: int = 4,
        mlp_ratio: int = 2,
        dropout: float = 0.1,
        head_dropout: float = 0.3,
        time_bias: bool = True,
        task: Literal["classification", "regression"] = "classification",
        target_mean: float | list[float] = 0.0,
        target_std: float | list[float] = 1.0,
    ) -> None:
        super().__init__()
        self.frame_dim, self.clip_dim = frame_dim, clip_dim
        self.static_embed = _StreamEmbed(frame_dim, dim)
        self.temporal_embed = _StreamEmbed(clip_dim, dim)

        def blocks(n: int, cross: bool = False) -> nn.ModuleList:
            return nn.ModuleList(_block(dim, heads, mlp_ratio, dropout, time_bias, cross) for _ in range(n))

        self.static_blocks, self.temporal_blocks = blocks(depth), blocks(depth)
        self.static_cross, self.temporal_cross = blocks(cross_depth, True), blocks(cross_depth, True)
        self.static_self, self.temporal_self = blocks(cross_depth), blocks(cross_depth)
        self.head = _Head(2 * dim, num_classes, task, head_dropout, target_mean, target_std)

    def forward(
        self,
        frames: Tensor,
        frame_times: Tensor,
        frame_lengths: Tensor,
        clips: Tensor,
        clip_times: Tensor,
        clip_lengths: Tensor,
    ) -> Tensor:
        _check_stream("frame", frames, frame_times, frame_lengths, self.frame_dim)
        _check_stream("clip", clips, clip_times, clip_lengths, self.clip_dim)
        s, s_index, s_cls = self.static_embed(frames, frame_times, frame_lengths)
        t, t_index, t_cls = self.temporal_embed(clips, clip_times, clip_lengths)
        for static_block, temporal_block in zip(self.static_blocks, self.temporal_blocks, strict=True):
            s, t = static_block(s, s_index), temporal_block(t, t_index)
        for layer in range(len(self.static_cross)):
            # Both directions read the other stream as it was before this layer (a symmetric exchange).
            s, t = (
                self.static_cross[layer](s, s_index, t, t_index),
                self.temporal_cross[layer](t, t_index, s, s_index),
            )
            s, t = self.static_self[layer](s, s_index), self.temporal_self[layer](t, t_index)
        return self.head(torch.cat([s[s_cls], t[t_cls]], dim=-1))


def _segment_mean(x: Tensor, lengths: Tensor) -> Tensor:
    """Per-video mean of packed rows ``[N, D]`` -> ``[B, D]``; zeros for a video with no rows."""
    ids = torch.repeat_interleave(torch.arange(len(lengths), device=x.device), lengths.long())
    sums = x.new_zeros((len(lengths), x.shape[1])).index_add_(0, ids, x)
    return sums / lengths.clamp(min=1).to(x.dtype)[:, None]


class MeanPoolLinear(nn.Module):
    """Baseline: each stream's features averaged over the video, normalised, concatenated, one
    linear layer. Sees what is in the video, not when."""

    def __init__(
        self,
        num_classes: int = 10,
        frame_dim: int = 512,
        clip_dim: int = 512,
        dropout: float = 0.0,
        task: Literal["classification", "regression"] = "classification",
        target_mean: float | list[float] = 0.0,
        target_std: float | list[float] = 1.0,
    ) -> None:
        super().__init__()
        self.frame_dim, self.clip_dim = frame_dim, clip_dim
        self.frame_norm = FeatureNorm(frame_dim)
        self.clip_norm = FeatureNorm(clip_dim)
        self.head = _Head(frame_dim + clip_dim, num_classes, task, dropout, target_mean, target_std)

    def forward(
        self,
        frames: Tensor,
        frame_times: Tensor,
        frame_lengths: Tensor,
        clips: Tensor,
        clip_times: Tensor,
        clip_lengths: Tensor,
    ) -> Tensor:
        _check_stream("frame", frames, frame_times, frame_lengths, self.frame_dim)
        _check_stream("clip", clips, clip_times, clip_lengths, self.clip_dim)
        pooled = torch.cat(
            [
                _segment_mean(self.frame_norm(frames), frame_lengths),
                _segment_mean(self.clip_norm(clips), clip_lengths),
            ],
            dim=-1,
        )
        return self.head(pooled)


class SingleStreamTransformer(nn.Module):
    """Baseline: both streams' tokens (each with a stream embedding and the time code) concatenated
    into one sequence per video, one transformer with one class token, the same head as STAN."""

    def __init__(
        self,
        num_classes: int = 10,
        frame_dim: int = 512,
        clip_dim: int = 512,
        dim: int = 128,
        depth: int = 6,
        heads: int = 4,
        mlp_ratio: int = 2,
        dropout: float = 0.1,
        head_dropout: float = 0.3,
        time_bias: bool = True,
        task: Literal["classification", "regression"] = "classification",
        target_mean: float | list[float] = 0.0,
        target_std: float | list[float] = 1.0,
    ) -> None:
        super().__init__()
        self.frame_dim, self.clip_dim = frame_dim, clip_dim
        self.frame_norm = FeatureNorm(frame_dim)
        self.clip_norm = FeatureNorm(clip_dim)
        self.frame_proj = nn.Linear(frame_dim, dim)
        self.clip_proj = nn.Linear(clip_dim, dim)
        self.stream_embed = nn.Parameter(torch.zeros(2, dim))
        self.cls = nn.Parameter(torch.zeros(dim))
        nn.init.trunc_normal_(self.stream_embed, std=0.02)
        nn.init.trunc_normal_(self.cls, std=0.02)
        self.blocks = nn.ModuleList(_block(dim, heads, mlp_ratio, dropout, time_bias) for _ in range(depth))
        self.head = _Head(dim, num_classes, task, head_dropout, target_mean, target_std)

    def forward(
        self,
        frames: Tensor,
        frame_times: Tensor,
        frame_lengths: Tensor,
        clips: Tensor,
        clip_times: Tensor,
        clip_lengths: Tensor,
    ) -> Tensor:
        _check_stream("frame", frames, frame_times, frame_lengths, self.frame_dim)
        _check_stream("clip", clips, clip_times, clip_lengths, self.clip_dim)
        dim = self.cls.shape[0]
        f = self.frame_proj(self.frame_norm(frames)) + time_code(frame_times, dim) + self.stream_embed[0]
        c = self.clip_proj(self.clip_norm(clips)) + time_code(clip_times, dim) + self.stream_embed[1]
        # Per video: [class token, its frames, its clips], packed one video after another.
        batch = len(frame_lengths)
        lengths = frame_lengths.long() + clip_lengths.long() + 1
        starts = torch.cumsum(lengths, 0) - lengths
        frame_video = torch.repeat_interleave(torch.arange(batch, device=f.device), frame_lengths.long())
        clip_video = torch.repeat_interleave(torch.arange(batch, device=f.device), clip_lengths.long())
        frame_starts = torch.cumsum(frame_lengths.long(), 0) - frame_lengths.long()
        clip_starts = torch.cumsum(clip_lengths.long(), 0) - clip_lengths.long()
        frame_pos = (
            starts[frame_video] + 1 + torch.arange(len(f), device=f.device) - frame_starts[frame_video]
        )
        clip_pos = (
            starts[clip_video]
            + 1
            + frame_lengths.long()[clip_video]
            + torch.arange(len(c), device=f.device)
            - clip_starts[clip_video]
        )
        x = f.new_empty((int(lengths.sum()), dim))
        x[starts] = self.cls.to(f.dtype)
        x[frame_pos] = f
        x[clip_pos] = c
        times = torch.full((len(x),), float("nan"), device=f.device)
        times[frame_pos] = frame_times.float()
        times[clip_pos] = clip_times.float()
        index = PaddedIndex(lengths, times)
        for block in self.blocks:
            x = block(x, index)
        return self.head(x[starts])


# ----------------------------------------------------------------------------- spec and variants


class PackedFeatures(ExampleInput):
    """``batch`` videos of two minutes as the embedded set encodes them: 120 frame features (1 fps)
    and 60 clip features (one clip every 2 s), packed, with their times and per-video lengths."""

    frames, clips = 120, 60

    def shape(self, model: nn.Module) -> tuple[int, ...]:
        return (self.frames, model.frame_dim)

    def __call__(
        self, model: nn.Module, batch: int, shape: tuple[int, ...] | None = None
    ) -> tuple[Tensor, ...]:
        if shape is not None:
            raise ValueError("long-video models take packed features of whole videos; give no sample shape")
        frame_times = (torch.arange(self.frames) + 0.5).repeat(batch)
        clip_times = (2.0 * torch.arange(self.clips) + 1.0).repeat(batch)
        return (
            random_input((batch * self.frames, model.frame_dim)),
            frame_times,
            torch.full((batch,), self.frames),
            random_input((batch * self.clips, model.clip_dim), seed=1),
            clip_times,
            torch.full((batch,), self.clips),
        )

    def describe(self, shape: tuple[int, ...]) -> str:
        return f"{self.frames} frame + {self.clips} clip features per video (packed)"


_SPEC = ModelSpec(
    modality="longvideo",
    input_format="features",
    data_args=("num_classes", "frame_dim", "clip_dim", "task", "target_mean", "target_std"),
    example_input=PackedFeatures(),
    export=(
        "long-video models take several packed inputs (frame and clip features with their times "
        "and per-video lengths) and the ONNX path handles one-input models; the per-video encoders "
        "that make those features (timm/<name>, tv/<name>, video models) do export"
    ),
    # Transformers over CNN features (cached by `lightact extract-features`): the study's composite design.
    efficiency_class=COMPOSITE,
)


@register_model(
    "stan",
    _SPEC,
    description="STAN two-stream, packed variable-length batches of cached frame and clip features",
)
def stan(**kwargs) -> STAN:
    """STAN: static + temporal transformer streams with cross-attention exchange."""
    return STAN(**kwargs)


@register_model(
    "meanpool_linear", replace(_SPEC, efficiency_class=LINEAR), description="mean-pooled features + linear"
)
def meanpool_linear(**kwargs) -> MeanPoolLinear:
    """Baseline: mean-pooled frame and clip features, one linear layer."""
    return MeanPoolLinear(**kwargs)


@register_model("single_stream", _SPEC, description="one transformer over both streams' tokens concatenated")
def single_stream(**kwargs) -> SingleStreamTransformer:
    """Baseline: one transformer over the concatenated frame and clip tokens."""
    return SingleStreamTransformer(**kwargs)
