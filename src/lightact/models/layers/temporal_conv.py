"""Depthwise convolution over time inside each clip of a packed sequence ``[F, V, C]``."""

from __future__ import annotations

import torch
from torch import Tensor, nn


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

    def forward(self, x: Tensor, lengths: list[int] | None = None) -> Tensor:
        """``x: [F, V, C]``; ``lengths``: the clips' frame counts (None: one clip) -> ``[F, V, C]``."""
        seq = x.permute(1, 2, 0)  # [V, C, F]: joints are the batch
        if lengths is None or len(lengths) == 1:
            return self.conv(seq).permute(2, 0, 1)
        clip = torch.repeat_interleave(
            torch.arange(len(lengths), device=x.device), torch.tensor(lengths, device=x.device)
        )
        where = torch.arange(len(clip), device=x.device) + self.pad * clip  # frame t's place with gaps
        gapped = seq.new_zeros((*seq.shape[:2], len(clip) + self.pad * (len(lengths) - 1)))
        gapped[..., where] = seq
        return self.conv(gapped)[..., where].permute(2, 0, 1)
