"""Composable pre-processing and augmentation transforms for skeleton samples.

A sample is a dict holding ``keypoint``, a float ``[M, T, V, C]`` array (M persons, T frames, V joints,
C = 2 or 3 coordinates), optionally ``keypoint_score`` ``[M, T, V]``, and anything else (``label``,
``total_frames``, ...), which is passed through. A person's frame whose coordinates are all zero means
"not seen" (the person is absent or was not detected); every transform keeps such frames exactly zero,
so they never turn into a body standing somewhere.

Each transform is a callable ``transform(sample, rng) -> sample`` returning a new dict with a float32
``keypoint``; the input dict and its arrays are not modified. Random transforms draw only from ``rng``
(a :class:`numpy.random.Generator`), so the same seed gives the same output; ``rng=None`` uses a fresh
unseeded generator. Spatial transforms act about the origin, so put :class:`Center` first.

Transforms that need a body reference (centre, spine, shoulders) take it from the *reference person*:
person 0, or the first person who is seen at all when person 0 never is.

:func:`build_transforms` builds a :class:`Compose` from config entries such as
``[{"name": "random_rotate", "max_deg": 15}, "center"]``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from lightact.data.skeleton.layouts import Layout
from lightact.utils import is_number

Sample = dict[str, Any]
# A joint given by index or name, or a group of them standing for their mean (e.g. mid-hip).
JointRef = int | str | Sequence[int | str]
_Group = tuple[int, ...]

_EPS = 1e-8


class Transform(Protocol):
    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample: ...


# ---------------------------------------------------------------------------------------------------
# helpers


def seen_mask(keypoint: np.ndarray) -> np.ndarray:
    """``[M, T]`` boolean: whether each person's frame has any non-zero coordinate."""
    return np.any(keypoint != 0, axis=(2, 3))


def _keypoint(sample: Sample) -> np.ndarray:
    if "keypoint" not in sample:
        raise KeyError("the sample has no 'keypoint' array")
    keypoint = np.asarray(sample["keypoint"])
    if keypoint.ndim != 4 or keypoint.shape[-1] not in (2, 3):
        raise ValueError(f"'keypoint' must be [M, T, V, C] with C = 2 or 3, got shape {keypoint.shape}")
    return keypoint


def _check_joint_count(layout: Layout, keypoint: np.ndarray) -> None:
    if keypoint.shape[2] != layout.num_joints:
        raise ValueError(
            f"layout {layout.name!r} has {layout.num_joints} joints, "
            f"but the keypoints have {keypoint.shape[2]}"
        )


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    return rng if rng is not None else np.random.default_rng()


def _with_coords(sample: Sample, coords: np.ndarray, seen: np.ndarray) -> Sample:
    """A copy of ``sample`` holding ``coords`` as float32, with unseen frames reset to exact zeros."""
    out = dict(sample)
    out["keypoint"] = np.where(seen[:, :, None, None], coords, 0.0).astype(np.float32)
    return out


def _reference_frame(seen: np.ndarray) -> tuple[int, int] | None:
    """(person, frame) of the reference person's first seen frame; ``None`` if nobody is ever seen."""
    persons = np.flatnonzero(seen.any(axis=1))
    if len(persons) == 0:
        return None
    person = int(persons[0])
    return person, int(np.flatnonzero(seen[person])[0])


def _reference_person(seen: np.ndarray) -> int | None:
    ref = _reference_frame(seen)
    return None if ref is None else ref[0]


def _resolve(layout: Layout, ref: JointRef, what: str) -> _Group:
    items = [ref] if isinstance(ref, (int, str, np.integer)) else list(ref)
    if not items:
        raise ValueError(f"{what}: an empty joint group")
    out = []
    for item in items:
        if isinstance(item, str):
            if item not in layout.joints:
                raise ValueError(f"{what}: layout {layout.name!r} has no joint named {item!r}")
            out.append(layout.joints.index(item))
        elif is_number(item, whole=True):
            if not 0 <= item < layout.num_joints:
                raise ValueError(
                    f"{what}: joint index {item} is out of range for layout {layout.name!r} "
                    f"({layout.num_joints} joints)"
                )
            out.append(int(item))
        else:
            raise TypeError(f"{what}: a joint is given by name or index, not {item!r}")
    return tuple(out)


def _point(frames: np.ndarray, group: _Group) -> np.ndarray:
    """Mean position of a joint group: ``[..., V, C]`` -> ``[..., C]``."""
    return frames[..., list(group), :].mean(axis=-2)


# Names looked up, in order, when a transform's joint pair is not given. A tuple is a group whose mean
# is used, e.g. mid-hip for layouts without a pelvis joint.
_SPINE_BOTTOM: tuple[str | tuple[str, ...], ...] = (
    "spine_base",
    "pelvis",
    "mid_hip",
    ("left_hip", "right_hip"),
    ("hip_left", "hip_right"),
)
_SPINE_TOP: tuple[str | tuple[str, ...], ...] = (
    "spine_shoulder",
    "neck",
    ("left_shoulder", "right_shoulder"),
    ("shoulder_left", "shoulder_right"),
)
_LEFT_SHOULDER = ("left_shoulder", "shoulder_left")
_RIGHT_SHOULDER = ("right_shoulder", "shoulder_right")


def _find(layout: Layout, candidates: Sequence[str | tuple[str, ...]]) -> str | tuple[str, ...] | None:
    for candidate in candidates:
        names = (candidate,) if isinstance(candidate, str) else candidate
        if all(name in layout.joints for name in names):
            return candidate
    return None


def default_spine(layout: Layout) -> tuple[JointRef, JointRef] | None:
    """(bottom, top) of the spine: the layout's own ``spine`` when it names one, else found by joint
    name, or ``None``.

    NTU25: spine_base -> spine_shoulder; OpenPose18: mid-hip -> neck; COCO17 / MediaPipe33:
    mid-hip -> mid-shoulder.
    """
    if layout.spine is not None:
        return layout.spine
    bottom, top = _find(layout, _SPINE_BOTTOM), _find(layout, _SPINE_TOP)
    return None if bottom is None or top is None else (bottom, top)


def default_shoulders(layout: Layout) -> tuple[JointRef, JointRef] | None:
    """(left, right) shoulders: the layout's own ``shoulders`` when it names them, else found by
    joint name, or ``None``."""
    if layout.shoulders is not None:
        return layout.shoulders
    left, right = _find(layout, _LEFT_SHOULDER), _find(layout, _RIGHT_SHOULDER)
    return None if left is None or right is None else (left, right)


def _joint_pair(
    layout: Layout,
    given: Sequence[JointRef] | None,
    default: Callable[[Layout], tuple[JointRef, JointRef] | None],
    arg: str,
    owner: str,
) -> tuple[_Group, _Group]:
    if given is None:
        found = default(layout)
        if found is None:
            raise ValueError(
                f"{owner}: layout {layout.name!r} has no joints named like a {arg} "
                f"(looked for {default.__name__}'s names); name them in the layout YAML ({arg}: [a, b]) "
                f"or pass {arg}=(a, b) with joint names or indices"
            )
        given = found
    if isinstance(given, (str, int)) or len(given) != 2:
        raise ValueError(f"{owner}: {arg} must be a pair (a, b) of joints, got {given!r}")
    return _resolve(layout, given[0], f"{owner} {arg}"), _resolve(layout, given[1], f"{owner} {arg}")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _rotation_2d(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def _rotation_3d(ax: float, ay: float, az: float) -> np.ndarray:
    """Rotation by ``ax`` about x, then ``ay`` about y, then ``az`` about z (radians)."""
    cx, sx = math.cos(ax), math.sin(ax)
    cy, sy = math.cos(ay), math.sin(ay)
    cz, sz = math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


# ---------------------------------------------------------------------------------------------------
# normalisation


@dataclass
class Center:
    """Translate so the layout's centre joint is at the origin.

    By default every person is shifted by the same vector: the centre joint of the reference person
    in its first seen frame (NTU-style pre-normalisation, as in pyskl's ``PreNormalize3D``); the body's
    motion and the persons' relative positions are kept. With ``per_frame=True`` each person's own
    centre joint is put at the origin in every frame, which removes global motion altogether.
    """

    layout: Layout = field(repr=False)
    per_frame: bool = False

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        keypoint = _keypoint(sample)
        _check_joint_count(self.layout, keypoint)
        seen = seen_mask(keypoint)
        coords = keypoint.astype(np.float64)
        c = self.layout.center
        if self.per_frame:
            origin = coords[:, :, c : c + 1, :]
        else:
            ref = _reference_frame(seen)
            origin = coords[ref[0], ref[1], c] if ref is not None else np.zeros(coords.shape[-1])
        return _with_coords(sample, coords - origin, seen)


@dataclass
class AlignView:
    """Rotate about the origin into a body-centred view, from the reference person's first seen frame.

    3D: the spine ``a -> b`` becomes parallel to +y and the shoulder line ``l -> r`` lies in the xy
    plane pointing to +x (exactly parallel to +x when it is perpendicular to the spine). This is a proper
    rotation, never a mirror. The default ``shoulders`` is (left, right): in Kinect camera space (x to
    the sensor's left, y up, z away from the sensor) a person facing the camera has the right shoulder
    at larger x, so the aligned body faces the camera (pyskl's ``PreNormalize3D`` uses right -> left,
    which turns it to face away). 2D: rotate in the image plane so the spine is vertical, pointing to
    +y or -y, whichever is nearer, so an upright body stays upright whether y grows up or down.

    ``spine`` and ``shoulders`` are pairs of joints; each end is a name, an index, or a group of them
    (their mean). Left out, they are found by name: NTU25 spine_base -> spine_shoulder, OpenPose18
    mid-hip -> neck, COCO17 / MediaPipe33 mid-hip -> mid-shoulder; shoulders left_shoulder ->
    right_shoulder (NTU25: shoulder_left -> shoulder_right). A layout without such names needs them
    explicitly. Samples whose reference spine or shoulder line is degenerate are left as they are.
    """

    layout: Layout = field(repr=False)
    spine: Sequence[JointRef] | None = None
    shoulders: Sequence[JointRef] | None = None
    _spine: tuple[_Group, _Group] = field(init=False, repr=False)
    _shoulders: tuple[_Group, _Group] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        layout = self.layout
        self._spine = _joint_pair(layout, self.spine, default_spine, "spine", "AlignView")
        self._shoulders = _joint_pair(layout, self.shoulders, default_shoulders, "shoulders", "AlignView")

    def _matrix(self, frame: np.ndarray) -> np.ndarray | None:
        up = _point(frame, self._spine[1]) - _point(frame, self._spine[0])
        if np.linalg.norm(up) < _EPS:
            return None
        if frame.shape[-1] == 2:
            angle = math.atan2(up[1], up[0])
            target = math.pi / 2 if up[1] >= 0 else -math.pi / 2
            return _rotation_2d(target - angle)
        y = up / np.linalg.norm(up)
        right = _point(frame, self._shoulders[1]) - _point(frame, self._shoulders[0])
        x = right - (right @ y) * y
        if np.linalg.norm(x) < _EPS:
            return None
        x = x / np.linalg.norm(x)
        return np.stack([x, y, np.cross(x, y)])

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        keypoint = _keypoint(sample)
        _check_joint_count(self.layout, keypoint)
        seen = seen_mask(keypoint)
        coords = keypoint.astype(np.float64)
        ref = _reference_frame(seen)
        matrix = None if ref is None else self._matrix(coords[ref[0], ref[1]])
        if matrix is not None:
            coords = coords @ matrix.T
        return _with_coords(sample, coords, seen)


_MEASURES = ("spine", "shoulders", "bbox")


@dataclass
class NormalizeScale:
    """Divide all coordinates by a body-size measure of the reference person, so that it becomes 1.

    ``measure``: ``"spine"`` (mean spine length over the person's seen frames), ``"shoulders"`` (mean
    shoulder width) or ``"bbox"`` (largest side of the box holding all its seen joints). ``spine`` and
    ``shoulders`` pick the joints as in :class:`AlignView`. Scaling is about the origin; a sample whose
    measure is zero is left as it is.
    """

    layout: Layout = field(repr=False)
    measure: str = "spine"
    spine: Sequence[JointRef] | None = None
    shoulders: Sequence[JointRef] | None = None
    _pair: tuple[_Group, _Group] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check(
            self.measure in _MEASURES,
            f"NormalizeScale: measure must be one of {', '.join(_MEASURES)}, got {self.measure!r}",
        )
        layout = self.layout
        if self.measure == "spine":
            self._pair = _joint_pair(layout, self.spine, default_spine, "spine", "NormalizeScale")
        elif self.measure == "shoulders":
            self._pair = _joint_pair(layout, self.shoulders, default_shoulders, "shoulders", "NormalizeScale")
        else:
            self._pair = None

    def size(self, keypoint: np.ndarray) -> float:
        """The body-size measure of ``keypoint``'s reference person (0 if nobody is seen)."""
        seen = seen_mask(keypoint)
        person = _reference_person(seen)
        if person is None:
            return 0.0
        frames = keypoint[person, seen[person]].astype(np.float64)
        if self._pair is None:
            points = frames.reshape(-1, frames.shape[-1])
            return float((points.max(axis=0) - points.min(axis=0)).max())
        a, b = self._pair
        return float(np.linalg.norm(_point(frames, b) - _point(frames, a), axis=-1).mean())

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        keypoint = _keypoint(sample)
        _check_joint_count(self.layout, keypoint)
        seen = seen_mask(keypoint)
        size = self.size(keypoint)
        coords = keypoint.astype(np.float64)
        if size > _EPS:
            coords = coords / size
        return _with_coords(sample, coords, seen)


# ---------------------------------------------------------------------------------------------------
# spatial augmentation


class _RandomLinear:
    """Multiply every seen coordinate vector by a random matrix drawn per sample."""

    def matrix(self, dims: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        keypoint = _keypoint(sample)
        matrix = self.matrix(keypoint.shape[-1], _rng(rng))
        return _with_coords(sample, keypoint.astype(np.float64) @ matrix.T, seen_mask(keypoint))


@dataclass
class RandomRotate(_RandomLinear):
    """Rotate about the origin: 3D by angles drawn uniformly from ``[-max_deg, max_deg]`` about x, y
    and z (applied in that order); 2D by one such angle in the plane."""

    max_deg: float = 15.0

    def __post_init__(self) -> None:
        _check(self.max_deg >= 0, f"RandomRotate: max_deg must be >= 0, got {self.max_deg}")

    def matrix(self, dims: int, rng: np.random.Generator) -> np.ndarray:
        limit = math.radians(self.max_deg)
        if dims == 2:
            return _rotation_2d(rng.uniform(-limit, limit))
        return _rotation_3d(*rng.uniform(-limit, limit, size=3))


@dataclass
class RandomScale(_RandomLinear):
    """Scale about the origin by a factor drawn uniformly from ``scale_range``; one factor per axis
    when ``anisotropic``."""

    scale_range: Sequence[float] = (0.9, 1.1)
    anisotropic: bool = False

    def __post_init__(self) -> None:
        _check(
            len(self.scale_range) == 2 and 0 < self.scale_range[0] <= self.scale_range[1],
            f"RandomScale: scale_range must be (low, high) with 0 < low <= high, got {self.scale_range!r}",
        )
        self.scale_range = (float(self.scale_range[0]), float(self.scale_range[1]))

    def matrix(self, dims: int, rng: np.random.Generator) -> np.ndarray:
        low, high = self.scale_range
        factors = rng.uniform(low, high, size=dims if self.anisotropic else 1)
        return np.diag(np.broadcast_to(factors, (dims,)))


@dataclass
class RandomShear(_RandomLinear):
    """Shear: the identity plus off-diagonal terms drawn uniformly from ``[-max_shear, max_shear]``
    (as in 2s-AGCN / CTR-GCN's shear augmentation)."""

    max_shear: float = 0.3

    def __post_init__(self) -> None:
        _check(self.max_shear >= 0, f"RandomShear: max_shear must be >= 0, got {self.max_shear}")

    def matrix(self, dims: int, rng: np.random.Generator) -> np.ndarray:
        shear = rng.uniform(-self.max_shear, self.max_shear, size=(dims, dims))
        np.fill_diagonal(shear, 0.0)
        return np.eye(dims) + shear


@dataclass
class GaussianNoise:
    """Add independent ``N(0, std^2)`` noise to every coordinate of every seen frame."""

    std: float = 0.01

    def __post_init__(self) -> None:
        _check(self.std >= 0, f"GaussianNoise: std must be >= 0, got {self.std}")

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        keypoint = _keypoint(sample)
        noise = _rng(rng).normal(0.0, self.std, size=keypoint.shape)
        return _with_coords(sample, keypoint.astype(np.float64) + noise, seen_mask(keypoint))


@dataclass
class RandomFlip:
    """With probability ``p``, mirror x about 0 and swap left and right joints (and their scores)."""

    layout: Layout = field(repr=False)
    p: float = 0.5

    def __post_init__(self) -> None:
        _check(0 <= self.p <= 1, f"RandomFlip: p must be in [0, 1], got {self.p}")
        if not self.layout.flip_pairs:
            raise ValueError(
                f"RandomFlip: layout {self.layout.name!r} has no flip_pairs, so it cannot be mirrored"
            )

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        keypoint = _keypoint(sample)
        _check_joint_count(self.layout, keypoint)
        if _rng(rng).random() >= self.p:
            return _with_coords(sample, keypoint, seen_mask(keypoint))
        return flip(sample, self.layout)


def flip(sample: Sample, layout: Layout) -> Sample:
    """Mirror x about 0 and swap left and right joints (and their scores); its own inverse."""
    keypoint = _keypoint(sample)
    _check_joint_count(layout, keypoint)
    perm = layout.flip_permutation()
    coords = keypoint[:, :, perm].astype(np.float64)
    coords[..., 0] = 0.0 - coords[..., 0]  # 0 - x rather than -x: no negative zeros
    out = _with_coords(sample, coords, seen_mask(keypoint))
    if out.get("keypoint_score") is not None:
        out["keypoint_score"] = np.asarray(out["keypoint_score"])[:, :, perm]
    return out


# ---------------------------------------------------------------------------------------------------
# temporal


def _take_frames(sample: Sample, frames: np.ndarray) -> Sample:
    out = dict(sample)
    out["keypoint"] = np.ascontiguousarray(_keypoint(sample)[:, frames], dtype=np.float32)
    if out.get("keypoint_score") is not None:
        out["keypoint_score"] = np.ascontiguousarray(np.asarray(out["keypoint_score"])[:, frames])
    if "total_frames" in out:
        out["total_frames"] = len(frames)
    return out


def _num_frames(sample: Sample, owner: str) -> int:
    frames = _keypoint(sample).shape[1]
    if frames == 0:
        raise ValueError(f"{owner}: the sample has no frames")
    return frames


@dataclass
class RandomTemporalCrop:
    """Keep a random run of contiguous frames, ``round(ratio * T)`` long (at least 1) with ``ratio``
    drawn uniformly from ``[min_ratio, max_ratio]``, starting anywhere it fits. ``total_frames`` is
    updated when the sample has it."""

    min_ratio: float = 0.5
    max_ratio: float = 1.0

    def __post_init__(self) -> None:
        _check(
            0 < self.min_ratio <= self.max_ratio <= 1,
            "RandomTemporalCrop: need 0 < min_ratio <= max_ratio <= 1, "
            f"got min_ratio={self.min_ratio}, max_ratio={self.max_ratio}",
        )

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        total = _num_frames(sample, "RandomTemporalCrop")
        rng = _rng(rng)
        length = min(total, max(1, round(rng.uniform(self.min_ratio, self.max_ratio) * total)))
        start = int(rng.integers(0, total - length + 1))
        return _take_frames(sample, np.arange(start, start + length))


@dataclass
class TemporalResample:
    """Resample to ``length`` frames (pyskl's ``UniformSampleFrames``, one clip).

    The T frames are split into ``length`` equal segments and one frame is taken from each: a random
    one with ``random_offset``, else the middle one. Short clips repeat frames. With
    ``random_offset=False`` and ``length == T`` this is the identity.
    """

    length: int
    random_offset: bool = True

    def __post_init__(self) -> None:
        _check(
            isinstance(self.length, (int, np.integer)) and self.length >= 1,
            f"TemporalResample: length must be a positive integer, got {self.length!r}",
        )

    def indices(self, total: int, rng: np.random.Generator | None = None) -> np.ndarray:
        offsets = _rng(rng).random(self.length) if self.random_offset else np.full(self.length, 0.5)
        frames = np.floor((np.arange(self.length) + offsets) * total / self.length).astype(np.int64)
        return np.clip(frames, 0, total - 1)

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        return _take_frames(sample, self.indices(_num_frames(sample, "TemporalResample"), rng))


@dataclass
class DropUnseenFrames:
    """Remove the frames in which no person is seen (all coordinates zero), e.g. the runs a Kinect
    lost track in, so that resampling or padding never spends frames on nothing. A sample with no
    seen frame at all is left as it is."""

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        seen = seen_mask(_keypoint(sample)).any(axis=0)
        if seen.all() or not seen.any():
            return _take_frames(sample, np.arange(len(seen)))
        return _take_frames(sample, np.flatnonzero(seen))


# ---------------------------------------------------------------------------------------------------
# composition and config


class Compose:
    """Apply transforms in order, all drawing from one generator."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        rng = _rng(rng)
        for transform in self.transforms:
            sample = transform(sample, rng)
        return sample

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


TRANSFORMS: dict[str, type] = {
    "center": Center,
    "align_view": AlignView,
    "normalize_scale": NormalizeScale,
    "random_rotate": RandomRotate,
    "random_scale": RandomScale,
    "random_shear": RandomShear,
    "gaussian_noise": GaussianNoise,
    "random_flip": RandomFlip,
    "random_temporal_crop": RandomTemporalCrop,
    "temporal_resample": TemporalResample,
    "drop_unseen_frames": DropUnseenFrames,
}


def build_transforms(spec: Sequence[Mapping[str, Any] | str] | None, layout: Layout | None = None) -> Compose:
    """Build a :class:`Compose` from config entries: a transform's name, or a mapping with ``name`` and
    its arguments, e.g. ``[{"name": "random_rotate", "max_deg": 15}, "center"]``. Transforms that take a
    ``layout`` get ``layout``."""
    if isinstance(spec, (str, Mapping)):
        raise TypeError("transforms must be given as a list of entries")
    transforms = []
    for position, entry in enumerate(spec or []):
        if isinstance(entry, str):
            name, kwargs = entry, {}
        elif isinstance(entry, Mapping):
            if "name" not in entry:
                raise ValueError(f"transform entry {position} has no 'name': {dict(entry)!r}")
            name, kwargs = entry["name"], {k: v for k, v in entry.items() if k != "name"}
        else:
            raise TypeError(f"transform entry {position} must be a name or a mapping, not {entry!r}")
        transforms.append(_build_one(str(name), dict(kwargs), layout))
    return Compose(transforms)


def _build_one(name: str, kwargs: dict[str, Any], layout: Layout | None) -> Transform:
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r}; known: {', '.join(sorted(TRANSFORMS))}")
    cls = TRANSFORMS[name]
    params = inspect.signature(cls).parameters
    accepted = [p for p in params if p != "layout"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"transform {name!r}: unknown argument(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(accepted) or 'none'}"
        )
    if "layout" in params:
        if layout is None:
            raise ValueError(f"transform {name!r} needs a joint layout, but none was given")
        kwargs["layout"] = layout
    required = [p.name for p in params.values() if p.default is inspect.Parameter.empty]
    missing = [p for p in required if p not in kwargs]
    if missing:
        raise ValueError(f"transform {name!r}: missing required argument(s) {', '.join(missing)}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"transform {name!r}: {error}") from error
