"""Depthwise convolution over time inside each clip of a packed sequence ``[F, V, C]``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightact.models.layers.packing import Packing


class PackedTemporalConv(nn.Module):
    """``kernel``-frame depthwise convolution over time, per joint (weights shared by the joints),
    that never mixes frames of different clips.

    Linear attention summarises a clip into one key-value statistic per joint, so on its own it
    sees the order of frames only through the position code; a short convolution gives every layer
    local motion patterns (the shape of a hand's path) directly. Packed clips are laid out with
    ``kernel // 2`` zero frames between them, convolved in one call, and read back, which equals
    zero-padding each clip on its own.
    """

    def __init__(self, dim: int, kernel: int) -> None:
        super().__init__()
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"the temporal kernel must be a positive odd number, got {kernel}")
        self.pad = kernel // 2
        self.conv = nn.Conv1d(dim, dim, kernel, padding=self.pad, groups=dim)

    def forward(self, x: Tensor, packing: Packing | None = None) -> Tensor:
        """``x: [F, V, C]``; ``packing``: where its clips lie (None: one clip) -> ``[F, V, C]``."""
        seq = x.permute(1, 2, 0)  # [V, C, F]: joints are the batch
        if packing is None or packing.num_clips == 1:
            return self.conv(seq).permute(2, 0, 1)
        # Frame t's place with the gaps; tensor operations on the clip ids only, so that a compiled
        # graph does not depend on the clip lengths.
        where = torch.arange(len(packing.clip_ids), device=x.device) + self.pad * packing.clip_ids
        gapped = seq.new_zeros((*seq.shape[:2], len(packing.clip_ids) + self.pad * (packing.num_clips - 1)))
        gapped[..., where] = seq
        return self.conv(gapped)[..., where].permute(2, 0, 1)

    def forward_padded(self, x: Tensor, valid: Tensor) -> Tensor:
        """The same for a padded batch ``x: [N, T, V, C]`` whose clip ``n`` holds its real frames
        where ``valid [N, T]`` is true (first): padded frames are zeroed before the convolution, so
        each clip's real frames get what :meth:`forward` gives them; tensor operations only."""
        clips, frames, joints, dim = x.shape
        real = x * valid.to(x.dtype)[:, :, None, None]
        seq = real.permute(0, 2, 3, 1).reshape(clips * joints, dim, frames)
        return self.conv(seq).view(clips, joints, dim, frames).permute(0, 3, 1, 2)
