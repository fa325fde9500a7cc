"""Per-joint input features computed from raw keypoints."""

from __future__ import annotations

import numpy as np


def person_frames(keypoint: np.ndarray) -> list[np.ndarray]:
    """Split ``[M, T, V, C]`` keypoints into the persons' non-empty frame runs.

    A frame where every coordinate of a person is zero means "not seen"; it is dropped, as STAR does,
    rather than fed to the model as a body at the origin. Persons with no frame left are omitted.
    """
    out = []
    for person in keypoint:
        seen = np.abs(person).reshape(len(person), -1).sum(axis=1) > 0
        if seen.any():
            out.append(person[seen])
    return out


def joint_bone_motion(frames: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """``[T, V, C]`` -> ``[T, V, 3C]``: joint position, bone vector (joint minus parent; roots 0) and
    motion (next frame minus this one; the last frame repeats the previous motion)."""
    frames = frames.astype(np.float32, copy=False)
    bone = np.zeros_like(frames)
    has_parent = parents >= 0
    bone[:, has_parent] = frames[:, has_parent] - frames[:, parents[has_parent]]
    motion = np.zeros_like(frames)
    if len(frames) > 1:
        motion[:-1] = frames[1:] - frames[:-1]
        motion[-1] = motion[-2]
    return np.concatenate([frames, bone, motion], axis=-1)


def with_scores(keypoint: np.ndarray, score: np.ndarray | None) -> np.ndarray:
    """Append 2D keypoint scores as a third coordinate so 2D and 3D data give the same channel count."""
    if score is None:
        return keypoint
    return np.concatenate([keypoint, score[..., None].astype(keypoint.dtype)], axis=-1)


def clip_features(keypoint: np.ndarray, parents: np.ndarray, representation: str) -> np.ndarray:
    """One clip's model input from its ``[M, T, V, C]`` keypoints (scores already appended):
    ``"packed"`` gives joint/bone/motion features ``[F, V, 3C]`` of the persons' seen frames
    concatenated along time (STAR); ``"padded"`` the raw coordinates ``[C, T, V, M]`` (GCN baselines)."""
    if representation == "padded":
        return np.ascontiguousarray(keypoint.transpose(3, 1, 2, 0))
    persons = person_frames(keypoint)
    if not persons:  # every seen frame was cropped away by an augmentation
        persons = [np.zeros((1, *keypoint.shape[2:]), dtype=np.float32)]
    return np.concatenate([joint_bone_motion(p, parents) for p in persons])


def pad_time(clips: list[np.ndarray], axis: int, length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stack clips zero-padded (or cut) along their time ``axis`` to ``length`` (default: the
    longest); returns the batch and each clip's length before padding."""
    if not clips:
        raise ValueError("cannot pad an empty list of clips")
    lengths = np.array([c.shape[axis] for c in clips], dtype=np.int64)
    t = int(length or lengths.max())
    shape = list(clips[0].shape)
    shape[axis] = t
    out = np.zeros((len(clips), *shape), dtype=clips[0].dtype)
    for i, clip in enumerate(clips):
        n = min(t, clip.shape[axis])
        index = [slice(None)] * clip.ndim
        index[axis] = slice(0, n)
        out[(i, *index)] = clip[tuple(index)]
    return out, lengths
