"""Temporal Patch Shift (TPS) and Temporal Channel Shift (TCS) on timm's 2D transformers: PST.

TPS (Xiang et al., ECCV 2022, arXiv 2207.13259) turns a per-frame (2D) window attention into a
spatio-temporal one at almost no cost: inside every attention window the token at window position
(r, c) is replaced by the token at the same place of frame ``t - s(r, c)``, where ``s`` is a small
periodic mosaic (the *pattern*) tiled over the window. The time axis is cyclic. The shift happens
after the block's LayerNorm and before the QKV projection, and the attention output is shifted back
before the output projection, so the residual stream is never moved. Because a window now holds tokens
of several frames, the relative position bias is 3D and indexed with the tokens' true (shifted) time.
TCS (as in TSM) moves 1/8 of each head's channels from frame t-1 and 1/8 from frame t+1; PST
alternates TCS and TPS block by block.

Nothing of timm is forked: :class:`PST` builds ``timm.models.swin_transformer.SwinTransformer`` and
replaces the ``attn`` module of every block with :class:`TemporalWindowAttention`, which adopts the
original ``qkv``/``proj`` layers (state-dict keys stay timm's, so 2D Swin weights load after
:meth:`PST.adapt_state_dict`). The backbone runs on ``B*T`` frames; the head averages over space and
time. Unlike the authors' code (T=16 and 7x7 windows hard-coded), any number of frames, any window
size and any rectangular pattern work. The same wrapping works on a plain timm ViT
(:class:`PSTViT`), where the window is the whole patch grid.

Temporal modes, per block: ``"tps"``, ``"tcs"``, ``"none"`` (the 2D baseline) and ``"joint"`` (full
space-time attention inside a (T, h, w) window, the costly alternative the paper compares with).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightact.models.registry import register_model
from lightact.models.spec import ATTENTION_ONLY, CLIP_INPUT, ModelSpec, clip_export
from lightact.models.weights import Conversion

__all__ = [
    "BIAS_INDEXES",
    "PATTERNS",
    "PST",
    "PSTViT",
    "TemporalViTAttention",
    "TemporalWindowAttention",
    "channel_shift",
    "inflate_patch_embed",
    "inflate_rel_pos_table",
    "patch_shift",
    "pattern_shifts",
    "shift_index",
]

# Frame offsets s(r mod p, c mod p): the token at window position (r, c) is taken from frame t - s.
# C is the paper's default; A, B and D are the other patterns of its ablation.
PATTERNS: dict[str, tuple[tuple[int, ...], ...]] = {
    "A": ((0, 1), (-1, 0)),
    "B": ((0, 1), (-1, 2)),
    "C": ((-4, 1, 2), (-1, 0, 3), (-2, -3, 4)),
    "D": ((0, 1, 2, 3), (-1, -7, 4, 5), (-2, -4, 7, 6), (-3, -5, -6, 8)),
}

TEMPORAL_MODES = ("tps", "tcs", "none", "joint")
SCHEDULES = ("alternate", "tps", "tcs", "none", "joint")
# How TPS/TCS blocks read their relative-position table: "paper", the true time offset between the
# tokens (as the paper describes it), or "official", the authors' code (MartinXM/TPS), whose TPS
# blocks read keys as if they sat in frame 0's window and whose TCS blocks hold a 3-D table read at
# the query's frame (a learnt per-frame spatial bias). Their checkpoints need "official".
BIAS_INDEXES = ("paper", "official")


# ----------------------------------------------------------------------------- shift primitives


def pattern_shifts(pattern: str | Sequence[Sequence[int]], window: tuple[int, int]) -> Tensor:
    """Per window position shifts ``s[r * ww + c] = P[r % ph][c % pw]`` (long tensor of wh*ww)."""
    if isinstance(pattern, str) and pattern not in PATTERNS:
        raise ValueError(f"unknown shift pattern {pattern!r}; known: {', '.join(PATTERNS)}")
    grid = PATTERNS[pattern] if isinstance(pattern, str) else pattern
    rows = [list(map(int, row)) for row in grid]
    if not rows or not rows[0] or any(len(r) != len(rows[0]) for r in rows):
        raise ValueError(f"a shift pattern must be a non-empty rectangular grid of ints, got {grid!r}")
    table = torch.tensor(rows, dtype=torch.long)
    wh, ww = window
    r = torch.arange(wh).remainder(table.shape[0])
    c = torch.arange(ww).remainder(table.shape[1])
    return table[r[:, None], c[None, :]].reshape(-1)


def shift_index(shifts: Tensor, num_frames: int, num_windows: int, inverse: bool = False) -> Tensor:
    """Flat gather index over ``(T, windows, N)`` so that ``out[t, w, n] = x[(t - s[n]) mod T, w, n]``.

    ``inverse`` gives ``(t + s[n]) mod T``, which undoes the shift. One ``index_select`` with this index
    performs the whole patch shift (a single copy instead of one roll per shift value).
    """
    n = shifts.numel()
    sign = 1 if inverse else -1
    t = torch.arange(num_frames, device=shifts.device)
    source_t = (t[:, None] + sign * shifts[None, :]).remainder(num_frames)  # [T, N]
    w = torch.arange(num_windows, device=shifts.device)
    flat = source_t[:, None, :] * (num_windows * n) + w[None, :, None] * n + torch.arange(n, device=w.device)
    return flat.reshape(-1)


def patch_shift(
    x: Tensor, shifts: Tensor, num_frames: int, num_windows: int, inverse: bool = False
) -> Tensor:
    """Temporal patch shift of window tokens ``x[B*T*windows, N, C]`` (timm's window batch order).

    Token ``n`` of a window in frame ``t`` becomes the token ``n`` of the same window in frame
    ``(t - s[n]) mod T``; ``inverse=True`` moves it back.
    """
    rows, n, c = x.shape
    if rows % (num_frames * num_windows):
        raise ValueError(
            f"patch_shift: {rows} windows is not a multiple of {num_frames} frames x {num_windows} windows"
        )
    index = shift_index(shifts.to(x.device), num_frames, num_windows, inverse)
    flat = x.reshape(rows // (num_frames * num_windows), -1, c)
    return flat.index_select(1, index).reshape(rows, n, c)


def channel_shift(
    x: Tensor, num_frames: int, num_heads: int, fold_div: int = 8, num_windows: int = 1
) -> Tensor:
    """TCS on tokens ``x[B*T*windows, N, C]`` laid out frame-major (timm's window batch order).

    In every head, the first ``head_dim // fold_div`` channels come from frame t-1 and the next as many
    from frame t+1; the first/last frame keep their own values there (no wrap, no zeros).
    """
    rows, n, c = x.shape
    head_dim = c // num_heads
    fold = head_dim // fold_div
    if fold == 0:
        return x
    if rows % (num_frames * num_windows):
        raise ValueError(f"channel_shift: {rows} rows is not a multiple of {num_frames} x {num_windows}")
    v = x.reshape(rows // (num_frames * num_windows), num_frames, num_windows * n, num_heads, head_dim)
    past = torch.cat([v[:, :1, ..., :fold], v[:, :-1, ..., :fold]], dim=1)
    future = torch.cat([v[:, 1:, ..., fold : 2 * fold], v[:, -1:, ..., fold : 2 * fold]], dim=1)
    return torch.cat([past, future, v[..., 2 * fold :]], dim=-1).reshape(rows, n, c)


def _rel_index(
    t_query: Tensor, t_key: Tensor, r: Tensor, c: Tensor, frames: int, window: tuple[int, int]
) -> Tensor:
    """Index into a ((2F-1)(2wh-1)(2ww-1))-row table for tokens at window positions (r, c) [..., N],
    the queries read at times ``t_query`` and the keys at times ``t_key`` [..., N]."""
    wh, ww = window
    dt = t_query[..., :, None] - t_key[..., None, :] + frames - 1
    dr = r[..., :, None] - r[..., None, :] + wh - 1
    dc = c[..., :, None] - c[..., None, :] + ww - 1
    return (dt * (2 * wh - 1) + dr) * (2 * ww - 1) + dc


def inflate_rel_pos_table(table: Tensor, frames: int) -> Tensor:
    """A 2D relative position bias table repeated along time (time is the outer index)."""
    return table.repeat(2 * frames - 1, 1)


def inflate_patch_embed(weight: Tensor, tubelet: int) -> Tensor:
    """Conv2d patch-embedding weight [D, C, p, p] -> Conv3d [D, C, tubelet, p, p] (mean-preserving)."""
    return weight.unsqueeze(2).repeat(1, 1, tubelet, 1, 1) / tubelet


# ----------------------------------------------------------------------------- attention modules


class TemporalWindowAttention(nn.Module):
    """A timm ``WindowAttention`` made temporal; adopts its layers so state-dict keys do not change.

    Input is timm's window batch ``[B*T*windows, N, C]`` (frame-major), ``mask`` is Swin's shifted-
    window mask ``[windows, N, N]`` or None. ``num_frames`` is the number of temporal tokens T of the
    current call (set by the model); ``max_frames`` sizes the 3D bias table. ``bias_index`` is one of
    :data:`BIAS_INDEXES`.
    """

    def __init__(
        self,
        base: nn.Module,
        mode: str,
        num_windows: int,
        max_frames: int,
        pattern: str | Sequence[Sequence[int]] = "C",
        fold_div: int = 8,
        bias_index: str = "paper",
    ) -> None:
        super().__init__()
        if mode not in TEMPORAL_MODES:
            raise ValueError(f"temporal mode must be one of {TEMPORAL_MODES}, got {mode!r}")
        if bias_index not in BIAS_INDEXES:
            raise ValueError(f"bias_index must be one of {BIAS_INDEXES}, got {bias_index!r}")
        if bias_index == "official" and mode not in ("tps", "tcs"):
            raise ValueError(f"bias_index 'official' is the authors' TPS/TCS index; mode {mode!r} has none")
        self.mode = mode
        self.bias_index = bias_index
        self.num_heads = base.num_heads
        self.scale = base.scale
        self.window_size = tuple(base.window_size)
        self.window_area = self.window_size[0] * self.window_size[1]
        self.fused_attn = bool(base.fused_attn)
        self.num_windows = num_windows
        self.max_frames = max_frames
        self.num_frames = max_frames
        self.fold_div = fold_div
        self.qkv, self.proj = base.qkv, base.proj
        self.attn_drop, self.proj_drop = base.attn_drop, base.proj_drop
        table = base.relative_position_bias_table.detach()
        if self.temporal_table:
            table = inflate_rel_pos_table(table, max_frames)
        self.relative_position_bias_table = nn.Parameter(table.clone())
        self.register_buffer("shifts", pattern_shifts(pattern, self.window_size), persistent=False)
        self._index_cache: dict[tuple, Tensor] = {}

    @property
    def temporal_table(self) -> bool:
        """Whether the bias table has a time axis ((2T-1) 2D tables) rather than one 2D table."""
        return self.mode in ("tps", "joint") or (self.mode == "tcs" and self.bias_index == "official")

    def extra_repr(self) -> str:
        index = ", bias_index=official" if self.bias_index == "official" else ""
        return f"mode={self.mode}, window={self.window_size}, max_frames={self.max_frames}{index}"

    # --- relative position bias
    def relative_position_index(self, frames: int) -> Tensor:
        """Rows of the bias table each (query, key) pair reads: [N, N] (2D, TCS), [T, N, N] (TPS and
        the authors' TCS: per query frame) or [TN, TN] (joint)."""
        key = (self.mode, self.bias_index, frames, str(self.shifts.device))
        index = self._index_cache.get(key)
        if index is not None:
            return index
        wh, ww = self.window_size
        pos = torch.arange(self.window_area, device=self.shifts.device)
        r, c = pos // ww, pos % ww
        official = self.bias_index == "official"
        if self.mode == "tps":
            # The token at (r, c) of frame t's window really sits at time (t - s) mod T; the authors'
            # code reads every key at its time in frame 0's window instead.
            t = (torch.arange(frames, device=r.device)[:, None] - self.shifts[None, :]).remainder(frames)
            t_key = t[:1].expand_as(t) if official else t
            index = _rel_index(t, t_key, r.expand_as(t), c.expand_as(t), self.max_frames, self.window_size)
        elif self.mode == "tcs" and official:
            # The authors' TCS blocks: row (query frame t - 0) of the 3-D table, a per-frame bias.
            t = torch.arange(frames, device=r.device)[:, None].expand(frames, self.window_area)
            zero = torch.zeros_like(t)
            index = _rel_index(t, zero, r.expand_as(t), c.expand_as(t), self.max_frames, self.window_size)
        elif self.mode == "joint":
            t = torch.arange(frames, device=r.device).repeat_interleave(self.window_area)
            index = _rel_index(t, t, r.repeat(frames), c.repeat(frames), self.max_frames, self.window_size)
        else:
            zero = torch.zeros_like(r)
            index = _rel_index(zero, zero, r, c, 1, self.window_size)
        self._index_cache[key] = index
        return index

    def _bias(self, frames: int) -> Tensor:
        """[nH, N, N] (2D / TCS), [T, nH, N, N] (TPS, the authors' TCS: per frame) or [nH, TN, TN] (joint)."""
        index = self.relative_position_index(frames)
        bias = self.relative_position_bias_table[index.reshape(-1)]
        bias = bias.reshape(*index.shape, self.num_heads)
        # Heads in front of the (query, key) axes; the dims are spelled out because the ONNX
        # exporter writes movedim's negative dims into Transpose, which ONNX Runtime rejects.
        lead = list(range(bias.dim() - 3))
        return bias.permute(*lead, bias.dim() - 1, bias.dim() - 3, bias.dim() - 2).contiguous()

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, bias: Tensor, mask: Tensor | None) -> Tensor:
        """Attention with an additive ``bias`` (and Swin's shifted-window ``mask``, broadcastable)."""
        if self.fused_attn:
            p = self.attn_drop.p if self.training else 0.0
            full = bias if mask is None else bias + mask
            return F.scaled_dot_product_attention(q, k, v, attn_mask=full.to(q.dtype), dropout_p=p)
        attn = (q * self.scale) @ k.transpose(-2, -1) + bias
        if mask is not None:
            attn = attn + mask
        attn = self.attn_drop(attn.softmax(dim=-1))
        return attn @ v

    def _shift_index(self, frames: int, windows: int, inverse: bool, device: torch.device) -> Tensor:
        key = ("shift", frames, windows, inverse, str(device))
        index = self._index_cache.get(key)
        if index is None:
            index = self._index_cache[key] = shift_index(self.shifts.to(device), frames, windows, inverse)
        return index

    def _unshift_gather(self, frames: int, windows: int, device: torch.device) -> tuple[Tensor, ...]:
        """Index tensors that read ``[B, T, W, nH, N, d]`` attention outputs back into token order
        ``[B, T, W, N, nH, d]`` with the inverse roll, in one gather (batch index added per call)."""
        key = ("unshift", frames, windows, str(device))
        index = self._index_cache.get(key)
        if index is None:
            n = self.window_area
            t = torch.arange(frames, device=device)
            source = (t[:, None] + self.shifts.to(device)[None, :]).remainder(frames)  # [T, N]
            index = self._index_cache[key] = (
                source.view(1, frames, 1, n),
                torch.arange(windows, device=device).view(1, 1, windows, 1),
                torch.arange(n, device=device).view(1, 1, 1, n),
            )
        return index

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        rows, n, c = x.shape
        frames, windows = self.num_frames, self.num_windows
        if frames > self.max_frames and self.mode in ("tps", "joint"):
            raise ValueError(
                f"{frames} temporal tokens exceed the {self.max_frames} this model was built for"
            )
        if rows % (frames * windows):
            raise ValueError(f"got {rows} windows, not a multiple of {frames} frames x {windows} windows")
        batch = rows // (frames * windows)
        heads = self.num_heads
        if self.mode == "tps":
            index = self._shift_index(frames, windows, False, x.device)
            x = x.reshape(batch, -1, c).index_select(1, index).reshape(rows, n, c)
        elif self.mode == "tcs":
            x = channel_shift(x, frames, heads, self.fold_div, windows)
        if self.mode == "joint":
            # Every window attends over all T frames at once: [B*windows, T*N, C].
            x = (
                x.reshape(batch, frames, windows, n, c)
                .transpose(1, 2)
                .reshape(batch * windows, frames * n, c)
            )
        length = x.shape[1]
        qkv = self.qkv(x).reshape(x.shape[0], length, 3, heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # [rows', nH, L, d]
        bias = self._bias(frames)
        if self.mode == "joint":
            view = (batch, windows, heads, length, -1)
            if mask is not None:  # the spatial mask holds for every pair of frames
                mask = mask.repeat(1, frames, frames).unsqueeze(1)  # [windows, 1, TN, TN]
            out = self._attend(q.reshape(view), k.reshape(view), v.reshape(view), bias, mask)
            out = out.reshape(batch, windows, heads, frames, n, -1).permute(0, 3, 1, 4, 2, 5)
            return self.proj_drop(self.proj(out.reshape(rows, n, -1)))
        view = (batch, frames, windows, heads, n, -1)
        bias = bias.unsqueeze(1) if bias.dim() == 4 else bias  # [T, 1, nH, N, N] or [nH, N, N]
        mask = mask.unsqueeze(1) if mask is not None else None  # [windows, 1, N, N]
        out = self._attend(q.reshape(view), k.reshape(view), v.reshape(view), bias, mask)
        if self.mode == "tps":
            # inverse roll and the head/token transpose in one gather
            t_src, w_idx, n_idx = self._unshift_gather(frames, windows, out.device)
            b_idx = torch.arange(batch, device=out.device).view(batch, 1, 1, 1)
            out = out[b_idx, t_src, w_idx, :, n_idx, :]  # [B, T, W, N, nH, d]
        else:
            out = out.transpose(-3, -2)
        return self.proj_drop(self.proj(out.reshape(rows, n, -1)))


class TemporalViTAttention(nn.Module):
    """A timm ViT ``Attention`` with TPS or TCS over the frames; the window is the whole patch grid.

    Prefix tokens (class, registers) are never shifted. Keys of the adopted layers are unchanged.
    """

    def __init__(
        self,
        base: nn.Module,
        mode: str,
        grid: tuple[int, int],
        num_prefix_tokens: int,
        max_frames: int,
        pattern: str | Sequence[Sequence[int]] = "C",
        fold_div: int = 8,
    ) -> None:
        super().__init__()
        if mode not in ("tps", "tcs", "none"):
            raise ValueError(f"ViT temporal mode must be tps, tcs or none, got {mode!r}")
        self.mode, self.grid, self.prefix = mode, grid, num_prefix_tokens
        self.num_heads, self.head_dim, self.scale = base.num_heads, base.head_dim, base.scale
        self.fused_attn = bool(base.fused_attn)
        self.num_frames = self.max_frames = max_frames
        self.fold_div = fold_div
        for name in ("qkv", "q_norm", "k_norm", "attn_drop", "norm", "proj", "proj_drop"):
            setattr(self, name, getattr(base, name))
        self.gate = getattr(base, "gate", None)
        self.register_buffer("shifts", pattern_shifts(pattern, grid), persistent=False)

    def _shift(self, x: Tensor, inverse: bool) -> Tensor:
        head, tokens = x[:, : self.prefix], x[:, self.prefix :]
        tokens = patch_shift(tokens, self.shifts, self.num_frames, 1, inverse)
        return torch.cat([head, tokens], dim=1)

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, **_: object) -> Tensor:
        rows, n, _c = x.shape
        if self.mode == "tps":
            x = self._shift(x, inverse=False)
        elif self.mode == "tcs":
            x = channel_shift(x, self.num_frames, self.num_heads, self.fold_div)
        gate = self.gate(x).sigmoid() if self.gate is not None else None
        q, k, v = self.qkv(x).reshape(rows, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = self.q_norm(q), self.k_norm(k)
        if self.fused_attn:
            p = self.attn_drop.p if self.training else 0.0
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)
            if attn_mask is not None:
                attn = attn + attn_mask
            out = self.attn_drop(attn.softmax(dim=-1)) @ v
        out = self.norm(out.transpose(1, 2).reshape(rows, n, -1))
        if gate is not None:
            out = out * gate
        if self.mode == "tps":
            out = self._shift(out, inverse=True)
        return self.proj_drop(self.proj(out))


def _block_modes(schedule: str, depths: Sequence[int]) -> list[list[str]]:
    """Temporal mode of every block. ``alternate``: TCS on even blocks of a stage, TPS on odd ones."""
    if schedule not in SCHEDULES:
        raise ValueError(f"temporal schedule must be one of {SCHEDULES}, got {schedule!r}")
    if schedule == "alternate":
        return [["tcs" if i % 2 == 0 else "tps" for i in range(d)] for d in depths]
    return [[schedule] * d for d in depths]


def _set_frames(model: nn.Module, frames: int) -> None:
    for m in model.modules():
        if isinstance(m, (TemporalWindowAttention, TemporalViTAttention)):
            m.num_frames = frames


def _check_clip(x: Tensor, channels: int, frames: int, size: tuple[int, int], name: str) -> None:
    if x.dim() != 5:
        raise ValueError(f"{name} expects clips [B, {channels}, T, H, W], got shape {tuple(x.shape)}")
    if x.shape[1] != channels or tuple(x.shape[3:]) != size:
        raise ValueError(
            f"{name} was built for [B, {channels}, T, {size[0]}, {size[1]}] clips, got {tuple(x.shape)}"
        )
    if x.shape[2] != frames:
        raise ValueError(f"{name} was built for {frames} frames per clip, got {x.shape[2]}")


# ----------------------------------------------------------------------------- PST on Swin


class PST(nn.Module):
    """Patch Shift Transformer: timm's Swin applied to every (tubelet of) frame(s), TPS/TCS inside.

    ``temporal``: ``"alternate"`` (PST: TCS and TPS alternate block by block), ``"tps"``, ``"tcs"``,
    ``"none"`` (the 2D baseline, same weights) or ``"joint"`` (space-time windows over all frames).
    ``tubelet_size`` frames are merged by the Conv3d patch embedding (the paper: 2), so the blocks see
    ``num_frames // tubelet_size`` temporal tokens. Input ``[B, 3, T, H, W]``, output logits.
    ``grad_checkpointing`` recomputes each block's activations in the backward pass instead of
    keeping them (timm's mechanism; training only): PST-T at 224 px, 32-bit, 61 % less allocated
    memory for 9-19 % more time per step (BENCHMARKS.md). ``bias_index``: ``"paper"`` (the true
    time offset) or ``"official"`` (the authors' index, for their checkpoints; :data:`BIAS_INDEXES`).
    """

    def __init__(
        self,
        num_classes: int = 400,
        num_frames: int = 8,
        img_size: int = 64,
        patch_size: int = 4,
        tubelet_size: int = 1,
        in_chans: int = 3,
        embed_dim: int = 96,
        depths: tuple[int, ...] = (2, 2, 6, 2),
        num_heads: tuple[int, ...] = (3, 6, 12, 24),
        window_size: int | tuple[int, int] = 7,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.1,
        dropout: float = 0.0,
        temporal: str = "alternate",
        pattern: str | list[list[int]] = "C",
        fold_div: int = 8,
        fused_attn: bool = False,
        grad_checkpointing: bool = False,
        bias_index: str = "paper",
    ) -> None:
        super().__init__()
        from timm.models.swin_transformer import SwinTransformer

        if num_frames < 1 or tubelet_size < 1 or num_frames % tubelet_size:
            raise ValueError(f"num_frames ({num_frames}) must be a positive multiple of tubelet_size")
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {depths} and num_heads {num_heads} must have the same length")
        self.num_classes, self.num_frames, self.in_chans = num_classes, num_frames, in_chans
        self.img_size = (img_size, img_size)
        self.tubelet_size, self.temporal = tubelet_size, temporal
        self.grad_checkpointing = grad_checkpointing
        self.time_tokens = num_frames // tubelet_size
        swin = SwinTransformer(
            img_size=img_size,
            patch_size=patch_size,
            in_chans=in_chans,
            num_classes=0,
            embed_dim=embed_dim,
            depths=tuple(depths),
            num_heads=tuple(num_heads),
            window_size=window_size,
            mlp_ratio=mlp_ratio,
            drop_path_rate=drop_path_rate,
        )
        # The 2D patch embedding becomes a Conv3d over (tubelet, p, p); the keys stay timm's.
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv3d(
            in_chans,
            embed_dim,
            (tubelet_size, patch_size, patch_size),
            (tubelet_size, patch_size, patch_size),
        )
        with torch.no_grad():
            self.patch_embed.proj.weight.copy_(
                inflate_patch_embed(swin.patch_embed.proj.weight, tubelet_size)
            )
            self.patch_embed.proj.bias.copy_(swin.patch_embed.proj.bias)
        self.patch_embed.norm = swin.patch_embed.norm
        self.grid = tuple(swin.patch_embed.grid_size)
        self.layers, self.norm = swin.layers, swin.norm
        self.num_features = swin.num_features
        for stage, modes in zip(self.layers, _block_modes(temporal, depths), strict=True):
            for block, mode in zip(stage.blocks, modes, strict=True):
                h, w = block.input_resolution
                wh, ww = block.window_size
                windows = math.ceil(h / wh) * math.ceil(w / ww)
                base = block.attn
                base.fused_attn = fused_attn
                block.attn = TemporalWindowAttention(
                    base, mode, windows, self.time_tokens, pattern, fold_div, bias_index
                )
        self.head_drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.num_features, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        self.train()

    def train(self, mode: bool = True) -> PST:
        # Checkpointing only while training, so evaluation, tracing and export see plain blocks.
        super().train(mode)
        for stage in self.layers:
            stage.grad_checkpointing = self.grad_checkpointing and mode
        return self

    def forward_features(self, x: Tensor) -> Tensor:
        """Clip [B, 3, T, H, W] -> pooled features [B, D] (mean over space, then over time)."""
        _check_clip(x, self.in_chans, self.num_frames, self.img_size, type(self).__name__)
        batch = x.shape[0]
        x = self.patch_embed.proj(x)  # [B, D, T', h, w]
        frames = x.shape[2]
        _set_frames(self, frames)
        x = x.permute(0, 2, 3, 4, 1).flatten(0, 1)  # [B*T', h, w, D]: a 2D backbone on every frame
        x = self.norm(self.layers(self.patch_embed.norm(x)))
        return x.mean(dim=(1, 2)).reshape(batch, frames, -1).mean(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.head_drop(self.forward_features(x)))

    def adapt_state_dict(
        self, state: dict[str, Tensor], conversion: Conversion | None = None
    ) -> dict[str, Tensor]:
        """Map a Swin or PST state dict of any known layout onto this model.

        * Original (Microsoft) Swin and mmaction files (the authors' TPS) merge patches at the end
          of stage i, timm at the start of stage i+1: ``layers.i.downsample`` -> ``layers.{i+1}``.
          Their classifiers (``head``, timm's ``head.fc``, mmaction's ``cls_head.fc_cls``) -> ``head``.
        * A Conv2d patch embedding is inflated over the tubelet (weights / tubelet); 2D relative-
          position tables are resized to this window (timm's interpolation) and repeated along time
          where a block's table is temporal.
        * Index buffers and masks are rebuilt, not read; the authors' index buffers are compared with
          the index this model computes, so a file made for another pattern, window or frame count,
          or one read with the other ``bias_index``, is reported in ``conversion.problems``.
        """
        from timm.layers import resize_rel_pos_bias_table

        from lightact.models.weights import detect_layout

        conversion = conversion if conversion is not None else Conversion()
        layout = detect_layout(state)
        state = {k.removeprefix("backbone.").removeprefix("encoder."): v for k, v in state.items()}
        end_of_stage = layout in ("swin-original", "tps-official", "swin3d-mmaction")
        if end_of_stage:
            # Hand-written rather than timm's checkpoint_filter_fn: that filter needs a 2D model
            # (a Conv2d embedding, 2D tables), and PST has neither.
            state = {
                re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m[1]) + 1}.downsample", k): v
                for k, v in state.items()
            }
            conversion.notes.append(
                "patch merging moved from the end of stage i to the start of stage i+1 (layers.i.downsample "
                f"-> layers.(i+1).downsample, {sum('.downsample.' in k for k in state)} tensors)"
            )
        renames = {"head.fc.": "head.", "cls_head.fc_cls.": "head.", "cls_head.fc.": "head."}
        for key in list(state):
            prefix = next((p for p in renames if key.startswith(p)), None)
            if prefix is not None:
                state[renames[prefix] + key[len(prefix) :]] = state.pop(key)
                conversion.notes.append(f"{key} -> {renames[prefix]}{key[len(prefix) :]}")
        if layout in ("tps-official", "swin3d-mmaction"):
            self._check_official_index(state, conversion, layout)

        own = self.state_dict()
        out: dict[str, Tensor] = {}
        rebuilt = inflated = resized = 0
        for key, value in state.items():
            if key.endswith(("relative_position_index", "relative_position_index_old", "attn_mask")):
                rebuilt += 1
                continue
            target = own.get(key)
            if target is not None and key == "patch_embed.proj.weight" and value.dim() == 4:
                value = inflate_patch_embed(value, self.tubelet_size)
                conversion.notes.append(f"2D patch embedding inflated over a tubelet of {self.tubelet_size}")
            elif target is not None and key.endswith("relative_position_bias_table"):
                attn = self.get_submodule(key.rsplit(".", 1)[0])
                wh, ww = attn.window_size
                per_frame = (2 * wh - 1) * (2 * ww - 1)
                rows = value.shape[0]
                side = int(round(math.sqrt(rows)))
                if rows != per_frame and side * side == rows and side % 2 == 1:
                    # a 2D table of another window size: timm's interpolation to this window
                    value = resize_rel_pos_bias_table(
                        value,
                        new_window_size=(wh, ww),
                        new_bias_shape=(per_frame, value.shape[1]),
                        old_window_size=((side + 1) // 2,) * 2,
                    )
                    rows = per_frame
                    resized += 1
                if rows == per_frame and target.shape[0] != per_frame:
                    value = inflate_rel_pos_table(value, attn.max_frames)
                    inflated += 1
            out[key] = value
        if resized:
            conversion.notes.append(f"{resized} relative-position tables resized to this model's windows")
        if inflated:
            conversion.notes.append(
                f"{inflated} 2D relative-position tables repeated along {self.time_tokens} frames"
            )
        if rebuilt:
            conversion.notes.append(f"{rebuilt} index/mask buffers dropped (this model computes its own)")
        return out

    def _check_official_index(self, state: dict[str, Tensor], conversion: Conversion, layout: str) -> None:
        """The authors' TPS checkpoints are read with their index: the model must use it, and its
        index must be the one stored in the file (their TPS blocks keep it in
        ``relative_position_index``, their TCS blocks in ``relative_position_index_old``)."""
        temporal = [
            (f"layers.{i}.blocks.{j}.attn", block.attn)
            for i, stage in enumerate(self.layers)
            for j, block in enumerate(stage.blocks)
            if block.attn.mode in ("tps", "tcs")
        ]
        if any(attn.bias_index != "official" for _, attn in temporal) or not temporal:
            conversion.problems.append(
                f"the file is {layout}, whose bias tables are read with the authors' index: set "
                "model.bias_index: official (the default, the paper's true offset, reads them at other rows)"
            )
            return
        differing = []
        for name, attn in temporal:
            suffix = "relative_position_index" if attn.mode == "tps" else "relative_position_index_old"
            # Their blocks sit in stages numbered like timm's; only the patch merging moved.
            stored = state.get(f"{name}.{suffix}")
            ours = attn.relative_position_index(attn.max_frames)
            if stored is None or ours.is_meta:
                continue
            if stored.shape != ours.shape or not torch.equal(stored.to(ours.dtype), ours):
                differing.append(name)
        if differing:
            conversion.problems.append(
                f"the index stored in the file differs from the authors' index of this model in "
                f"{len(differing)} blocks (e.g. {differing[0]}): another shift pattern, window or frame count"
            )
        else:
            conversion.notes.append(
                f"bias index read the authors' way (bias_index official) in {len(temporal)} blocks"
            )


# ----------------------------------------------------------------------------- TPS on a plain ViT


class PSTViT(nn.Module):
    """TPS/TCS on a plain timm ViT applied to every frame (window = the whole patch grid).

    The ViT's absolute position embedding is kept; the only temporal mixing comes from the shifts.
    ``grad_checkpointing`` as in :class:`PST`.
    """

    def __init__(
        self,
        num_classes: int = 400,
        num_frames: int = 8,
        img_size: int = 64,
        patch_size: int = 8,
        in_chans: int = 3,
        embed_dim: int = 192,
        depth: int = 12,
        num_heads: int = 3,
        temporal: str = "alternate",
        pattern: str | list[list[int]] = "C",
        drop_path_rate: float = 0.1,
        grad_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        from timm.models.vision_transformer import VisionTransformer

        self.num_frames, self.in_chans, self.img_size = num_frames, in_chans, (img_size, img_size)
        self.vit = VisionTransformer(
            img_size=img_size,
            patch_size=patch_size,
            in_chans=in_chans,
            num_classes=num_classes,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            drop_path_rate=drop_path_rate,
        )
        grid = tuple(self.vit.patch_embed.grid_size)
        for block, mode in zip(self.vit.blocks, _block_modes(temporal, [depth])[0], strict=True):
            block.attn = TemporalViTAttention(
                block.attn, mode, grid, self.vit.num_prefix_tokens, num_frames, pattern
            )
        self.grad_checkpointing = grad_checkpointing
        self.train()

    def train(self, mode: bool = True) -> PSTViT:
        super().train(mode)
        self.vit.set_grad_checkpointing(self.grad_checkpointing and mode)
        return self

    def forward(self, x: Tensor) -> Tensor:
        _check_clip(x, self.in_chans, self.num_frames, self.img_size, type(self).__name__)
        batch, frames = x.shape[0], x.shape[2]
        _set_frames(self, frames)
        frames_2d = x.transpose(1, 2).flatten(0, 1)  # [B*T, 3, H, W]
        feats = self.vit.forward_head(self.vit.forward_features(frames_2d), pre_logits=True)
        return self.vit.head(feats.reshape(batch, frames, -1).mean(dim=1))


# ----------------------------------------------------------------------------- spec and variants

_XS = {
    "img_size": 32,
    "num_frames": 8,
    "patch_size": 4,
    "embed_dim": 32,
    "depths": (2, 2),
    "num_heads": (2, 4),
    "window_size": 4,
    "drop_path_rate": 0.0,
}
_TINY = {"embed_dim": 96, "depths": (2, 2, 6, 2), "num_heads": (3, 6, 12, 24)}
_BASE = {"embed_dim": 128, "depths": (2, 2, 18, 2), "num_heads": (4, 8, 16, 32)}
_PAPER = {"img_size": 224, "num_frames": 32, "tubelet_size": 2, "window_size": 7, "drop_path_rate": 0.1}

# Built for one clip length and size (the data's): their shift pattern and 3D position bias depend on it.
_SPEC = ModelSpec(
    modality="video", input_format="clip", data_args=("num_classes", "num_frames", "img_size"),
    example_input=CLIP_INPUT, export=clip_export, efficiency_class=ATTENTION_ONLY,
)  # fmt: skip


@register_model("pst_t", _SPEC)
def pst_t(**kwargs) -> PST:
    """PST on Swin-T (the paper's PST-T: 32 frames, tubelet 2, 224 px, 7x7 windows, pattern C)."""
    return PST(**{**_PAPER, **_TINY, **kwargs})


@register_model("pst_b", _SPEC)
def pst_b(**kwargs) -> PST:
    """PST on Swin-B (the paper's PST-B: 32 frames, tubelet 2, 224 px, 7x7 windows, pattern C)."""
    return PST(**{**_PAPER, **_BASE, **kwargs})


@register_model("pst_xs", _SPEC)
def pst_xs(**kwargs) -> PST:
    """PST, CPU-sized (2 stages, width 32, 4x4 windows, 8 frames at 32 px): the embedded data's model."""
    return PST(**{**_XS, **kwargs})


@register_model("swin2d_xs", _SPEC)
def swin2d_xs(**kwargs) -> PST:
    """pst_xs's backbone without any temporal shift: per-frame Swin + temporal average (2D baseline)."""
    return PST(**{**_XS, "temporal": "none", **kwargs})


@register_model("swin3d_joint_xs", _SPEC)
def swin3d_joint_xs(**kwargs) -> PST:
    """pst_xs's backbone with joint space-time window attention over all frames (the costly option)."""
    return PST(**{**_XS, "temporal": "joint", **kwargs})


@register_model("pst_vit_xs", _SPEC)
def pst_vit_xs(**kwargs) -> PSTViT:
    """TPS/TCS on a small plain ViT (window = whole grid), 8 frames at 64 px."""
    return PSTViT(**{"embed_dim": 96, "depth": 6, "num_heads": 3, **kwargs})
