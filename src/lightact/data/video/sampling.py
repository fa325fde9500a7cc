"""Which frames of a video make a clip: uniform segments (TSN / SSv2 style) or dense (Kinetics style).

Every function returns frame indices into ``[0, num_frames)`` as an int64 array of length
``clip_len``; randomness comes from the ``numpy.random.Generator`` the caller passes (seeded per
sample, epoch and view by the datasets, so a resumed run samples the same frames).

* ``uniform``: the video is cut into ``clip_len`` equal segments and one frame is taken from each:
  a random one in training, the middle one at test. With ``num_clips`` test views, view ``k`` takes the
  frame at fraction ``(k + 0.5) / num_clips`` of every segment.
* ``dense``: ``clip_len`` frames ``frame_interval`` apart, starting at a random position in training;
  at test the ``num_clips`` views start at evenly spaced positions over the video. A video shorter than
  the span loops (as MMAction2's ``out_of_bound_opt="loop"``).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ["SamplingMode", "clip_indices", "dense_indices", "uniform_indices"]

SamplingMode = Literal["uniform", "dense"]


def _check(num_frames: int, clip_len: int) -> None:
    if num_frames < 1:
        raise ValueError(f"cannot sample from a video of {num_frames} frames")
    if clip_len < 1:
        raise ValueError(f"clip_len must be positive, got {clip_len}")


def uniform_indices(
    num_frames: int,
    clip_len: int,
    train: bool,
    rng: np.random.Generator | None = None,
    view: int = 0,
    num_views: int = 1,
) -> np.ndarray:
    """One frame per segment of ``num_frames / clip_len`` frames (segments may be < 1 frame long)."""
    _check(num_frames, clip_len)
    starts = np.arange(clip_len) * num_frames / clip_len
    length = num_frames / clip_len
    if train:
        if rng is None:
            raise ValueError("training sampling needs a random generator")
        offsets = rng.random(clip_len) * length
    else:
        if not 0 <= view < num_views:
            raise ValueError(f"view {view} out of range for {num_views} views")
        offsets = np.full(clip_len, (view + 0.5) / num_views * length)
    return np.minimum(np.floor(starts + offsets).astype(np.int64), num_frames - 1)


def dense_indices(
    num_frames: int,
    clip_len: int,
    frame_interval: int,
    train: bool,
    rng: np.random.Generator | None = None,
    view: int = 0,
    num_views: int = 1,
) -> np.ndarray:
    """``clip_len`` frames ``frame_interval`` apart; the start is random (train) or spread (test)."""
    _check(num_frames, clip_len)
    if frame_interval < 1:
        raise ValueError(f"frame_interval must be positive, got {frame_interval}")
    span = (clip_len - 1) * frame_interval + 1
    room = max(num_frames - span, 0)
    if train:
        if rng is None:
            raise ValueError("training sampling needs a random generator")
        start = int(rng.integers(0, room + 1))
    else:
        if not 0 <= view < num_views:
            raise ValueError(f"view {view} out of range for {num_views} views")
        # test views spread evenly; a single view is the centre clip
        start = int(round(room * (view + 0.5) / num_views)) if num_views > 1 else room // 2
    return (start + np.arange(clip_len) * frame_interval) % num_frames


def clip_indices(
    mode: SamplingMode,
    num_frames: int,
    clip_len: int,
    train: bool,
    rng: np.random.Generator | None = None,
    frame_interval: int = 1,
    view: int = 0,
    num_views: int = 1,
) -> np.ndarray:
    """Dispatch on ``mode`` ("uniform" or "dense")."""
    if mode == "uniform":
        return uniform_indices(num_frames, clip_len, train, rng, view, num_views)
    if mode == "dense":
        return dense_indices(num_frames, clip_len, frame_interval, train, rng, view, num_views)
    raise ValueError(f"unknown sampling mode {mode!r}; use 'uniform' or 'dense'")
