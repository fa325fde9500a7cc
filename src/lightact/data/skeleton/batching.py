"""Batching variable-length skeleton clips: packed along time (STAR) or padded (GCN baselines)."""

from __future__ import annotations

import torch
from torch import Tensor

from lightact.data.batch import Batch


def pack_clips(clips: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Concatenate ``[T_i, V, C]`` clips along time; return them with each frame's clip id.

    No frame is added: the cost of a batch is the sum of its clips' lengths, not N x the longest.
    """
    if not clips:
        raise ValueError("cannot pack an empty list of clips")
    lengths = torch.tensor([len(c) for c in clips])
    if (lengths == 0).any():
        raise ValueError("cannot pack a clip with no frames")
    clip_ids = torch.repeat_interleave(torch.arange(len(clips)), lengths)
    return torch.cat(clips, dim=0), clip_ids


def pad_clips(clips: list[Tensor], length: int | None = None) -> Tensor:
    """Stack ``[C, T_i, V, M]`` clips into ``[N, C, T, V, M]``, zero-padding (or cutting) time to
    ``length`` (the batch's longest when None)."""
    if not clips:
        raise ValueError("cannot pad an empty list of clips")
    t = length or max(c.shape[1] for c in clips)
    c0, _, v, m = clips[0].shape
    out = clips[0].new_zeros((len(clips), c0, t, v, m))
    for i, clip in enumerate(clips):
        n = min(t, clip.shape[1])
        out[i, :, :n] = clip[:, :n]
    return out


def collate_packed(items: list[dict]) -> Batch:
    x, clip_ids = pack_clips([item["frames"] for item in items])
    return Batch((x, clip_ids), *_labels(items))


def make_collate_padded(length: int | None):
    def collate_padded(items: list[dict]) -> Batch:
        return Batch((pad_clips([item["frames"] for item in items], length),), *_labels(items))

    return collate_padded


def _labels(items: list[dict]) -> tuple[Tensor, Tensor]:
    labels = torch.tensor([item["label"] for item in items], dtype=torch.long)
    index = torch.tensor([item["index"] for item in items], dtype=torch.long)
    return labels, index
