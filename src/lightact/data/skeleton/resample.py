"""Poses taken at one rate (or at irregular times) onto the regular frame rate a model was trained on.

Pose estimation is the expensive step from video to answer, so it may run at a lower rate than the
video's (``lightact predict --pose-fps``) while the model still expects the frame rate of its
training data (30 fps for NTU RGB+D and the embedded set). :func:`resample_poses` puts every
per-frame array of an annotation on the grid ``0, 1/fps, 2/fps, ...`` over the posed span: a person
seen at both neighbouring pose times is interpolated linearly (joints, scores and 3D alike); seen at
only one of them, the nearer pose is held for up to half the gap; seen at neither, the person is
absent there (zeros), as in the pose output itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["PER_FRAME_KEYS", "resample_poses"]

PER_FRAME_KEYS = ("keypoint", "keypoint_score", "keypoint_3d")  # [M, T, ...] arrays of an annotation


def resample_poses(annotation: dict[str, Any], fps: float) -> dict[str, Any]:
    """``annotation`` with its per-frame arrays resampled to ``fps``. The pose times are its
    ``frame_times`` (seconds), else every frame at its own ``fps``. Returns a new dict with ``fps``
    set, ``total_frames`` updated and ``frame_times`` gone; unchanged arrays when the times already
    lie on the grid."""
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    keypoint = np.asarray(annotation["keypoint"])
    frames = keypoint.shape[1]
    if "frame_times" in annotation:
        times = np.asarray(annotation["frame_times"], dtype=np.float64)
    else:
        times = np.arange(frames) / float(annotation.get("fps") or fps)
    if len(times) != frames:
        raise ValueError(f"{len(times)} frame times for {frames} frames")
    out = {k: v for k, v in annotation.items() if k != "frame_times"}
    out["fps"] = float(fps)
    if frames == 0 or keypoint.shape[0] == 0:
        return out  # nothing to place on a grid (and nobody to classify)
    times = np.maximum.accumulate(times)  # a timestamp glitch never runs the clock backwards
    grid = np.arange(int(np.floor(times[-1] * fps + 1e-6)) + 1) / fps
    if len(grid) == frames and np.allclose(grid, times, atol=1e-6):
        return out
    right = np.clip(np.searchsorted(times, grid, side="right"), 1, max(frames - 1, 1))
    left = right - 1 if frames > 1 else np.zeros_like(right)
    right = np.minimum(right, frames - 1)
    gap = np.maximum(times[right] - times[left], 1e-9)
    weight = np.clip((grid - times[left]) / gap, 0.0, 1.0)
    present = np.abs(keypoint).reshape(*keypoint.shape[:2], -1).sum(-1) > 0  # [M, T], M > 0
    at_left, at_right = present[:, left], present[:, right]  # [M, G]
    both = at_left & at_right
    # One side seen: hold it while the grid point is in its half of the gap.
    hold_left = at_left & ~at_right & (weight <= 0.5)
    hold_right = at_right & ~at_left & (weight > 0.5)
    w = np.where(both, weight, np.where(hold_right, 1.0, 0.0))  # [M, G] weight of the right pose
    keep = both | hold_left | hold_right
    for key in PER_FRAME_KEYS:
        if key not in annotation:
            continue
        array = np.asarray(annotation[key], dtype=np.float32)
        shape = (*w.shape, *[1] * (array.ndim - 2))
        mixed = array[:, left] * (1 - w.reshape(shape)) + array[:, right] * w.reshape(shape)
        out[key] = np.where(keep.reshape(shape), mixed, 0.0).astype(np.float32)
    out["total_frames"] = len(grid)
    return out
