"""Where the clips of a packed batch ``[sum F_i, ...]`` lie, as tensors (STAR's layers read it).

The clip lengths stay a tensor so that a compiled graph takes them as an input instead of being
specialised on them (``torch.compile`` would otherwise recompile for every new set of lengths);
only the eager per-segment loop reads them into Python, once per forward.
"""

from __future__ import annotations

from functools import cached_property

import torch
from torch import Tensor

from lightact.models.layers.linear_attention import segment_lengths


class Packing:
    """Clip ``n`` is the frames whose ``clip_ids`` are ``n`` (non-decreasing, zero-based, none
    empty); temporal attention runs in segments of at most ``segment_length`` frames of a clip
    (whole clips when None)."""

    def __init__(self, clip_ids: Tensor, segment_length: int | None = None) -> None:
        self.clip_ids = clip_ids
        self.lengths = torch.bincount(clip_ids)  # [N]
        self.segment_length = segment_length

    @property
    def num_clips(self) -> int:
        return self.lengths.shape[0]

    def positions(self) -> Tensor:
        """Index of every frame within its own clip: ``[0..F_0-1, 0..F_1-1, ...]``."""
        starts = torch.cumsum(self.lengths, 0) - self.lengths
        return torch.arange(len(self.clip_ids), device=self.clip_ids.device) - starts[self.clip_ids]

    @cached_property
    def segments(self) -> list[int]:
        """The attention segments' lengths in order (a host read; eager code only)."""
        return segment_lengths(self.lengths.tolist(), self.segment_length)
