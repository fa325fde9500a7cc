"""Converting skeletons between joint layouts, so a model can read poses from another source.

The main built-in mapping turns MediaPipe Pose *world* landmarks (``mediapipe33``, what
:func:`lightact.data.skeleton.pose.extract_pose` stores as ``keypoint_3d``) into approximate Kinect v2
joints (``ntu25``), so a model trained on NTU RGB+D can classify a person filmed with an ordinary
camera. MediaPipe's 2D image keypoints also give COCO's 17 (a subset with the same names). Other
pairs can be added with :func:`register_mapping`; :func:`retarget` refuses the rest with a
:class:`RetargetError` rather than feeding a model joints it was not trained on.

Coordinates
-----------
``extract_pose`` gives world landmarks in metres, centred on the mid-hip point, with x to the image's
right, y up and z away from the camera. NTU RGB+D stores Kinect v2 camera space: metres, y up, z away
from the sensor, but x growing to the *sensor's* left, i.e. to the image's left (Microsoft's
``CameraSpacePoint`` documentation), so a person facing the sensor has the right shoulder at larger x.
By default x is therefore negated (``mirror_x=True``). This changes the axis, not the body: left
joints stay the person's left joints and the result is as right-handed as Kinect's. Data written in
an x-right convention (lightact's synthetic generator draws its bodies that way) needs
``mirror_x=False`` to keep the same handedness.

World landmarks carry no camera distance, while NTU's absolute joint positions (which the models see
as the "joint" feature unless a ``center`` transform removes them) have the body a few metres in
front of the sensor. The hip centre is therefore put at ``(0, 0, depth)`` with ``depth = 3`` m by
default: straight in front of the sensor, near the middle of NTU's capture range (and of the
synthetic generator's 2.6-3.6 m), at about the sensor's height (NTU's and the synthetic data's
spine-base height is spread around y = 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lightact.data.skeleton.layouts import COCO17, MEDIAPIPE33, NTU25

__all__ = [
    "DEFAULT_DEPTH",
    "RetargetError",
    "mediapipe33_to_ntu25",
    "register_mapping",
    "retarget",
    "supported_mappings",
]

DEFAULT_DEPTH = 3.0  # metres between the sensor and the hip centre of a retargeted body

Annotation = dict[str, Any]
Mapping = Callable[..., Annotation]


class RetargetError(ValueError):
    """No mapping exists between two joint layouts, or the data lacks what the mapping needs."""


# ---------------------------------------------------------------------------------------------------
# MediaPipe 33 -> NTU 25


def _mediapipe33_to_ntu25_weights() -> np.ndarray:
    """``[25, 33]`` matrix whose row ``v`` gives NTU joint ``v`` as a weighted mean of MediaPipe
    landmarks. Every row sums to 1 (an affine combination), so the mapping commutes with
    translation and an unseen (all-zero) frame maps to zero."""
    mp = {name: i for i, name in enumerate(MEDIAPIPE33.joints)}

    def one(name: str) -> np.ndarray:
        e = np.zeros(MEDIAPIPE33.num_joints)
        e[mp[name]] = 1.0
        return e

    def mean(*names: str) -> np.ndarray:
        return sum(one(n) for n in names) / len(names)

    mid_hip = mean("left_hip", "right_hip")
    mid_shoulder = mean("left_shoulder", "right_shoulder")
    # Kinect's spine-shoulder joint sits at the base of the neck, a little above the line between
    # MediaPipe's shoulder landmarks: lift it by 5 % of the torso (hip centre -> shoulder centre).
    spine_shoulder = mid_shoulder + 0.05 * (mid_shoulder - mid_hip)
    # Kinect's hip joints hang below and beside its spine-base joint (by ~3 % of the body height in
    # lightact's synthetic bodies, ~10 % of the torso): lift the spine base above the hip centre.
    spine_base = mid_hip + 0.1 * (mid_shoulder - mid_hip)
    # Kinect's spine-mid joint is a little below half-way up the spine (0.45, as in the synthetic
    # bodies: lower spine 0.12, upper spine 0.15 of the body height).
    spine_mid = spine_base + 0.45 * (spine_shoulder - spine_base)
    # Kinect's head joint is the centre of the head: between the ears, pulled a third of the way
    # towards the nose (the ears are at the back half of the skull).
    head = (2.0 / 3.0) * mean("left_ear", "right_ear") + (1.0 / 3.0) * one("nose")
    # The neck joint is ~40 % of the way from spine-shoulder to the head centre.
    neck = spine_shoulder + 0.4 * (head - spine_shoulder)

    rows: dict[str, np.ndarray] = {
        "spine_base": spine_base,
        "spine_mid": spine_mid,
        "neck": neck,
        "head": head,
        "spine_shoulder": spine_shoulder,
    }
    for side in ("left", "right"):
        rows[f"shoulder_{side}"] = one(f"{side}_shoulder")
        rows[f"elbow_{side}"] = one(f"{side}_elbow")
        rows[f"wrist_{side}"] = one(f"{side}_wrist")
        # Kinect's hand joint is the middle of the palm: the mean of the wrist and the index and
        # pinky knuckles. MediaPipe's index / thumb landmarks are the nearest it has to Kinect's hand
        # tip and thumb.
        rows[f"hand_{side}"] = mean(f"{side}_wrist", f"{side}_index", f"{side}_pinky")
        rows[f"hand_tip_{side}"] = one(f"{side}_index")
        rows[f"thumb_{side}"] = one(f"{side}_thumb")
        rows[f"hip_{side}"] = one(f"{side}_hip")
        rows[f"knee_{side}"] = one(f"{side}_knee")
        rows[f"ankle_{side}"] = one(f"{side}_ankle")
        rows[f"foot_{side}"] = one(f"{side}_foot_index")
    missing = set(NTU25.joints) - set(rows)
    assert not missing, f"no MediaPipe mapping for NTU joints {sorted(missing)}"
    return np.stack([rows[name] for name in NTU25.joints])


MEDIAPIPE33_TO_NTU25 = _mediapipe33_to_ntu25_weights()


def mediapipe33_to_ntu25(
    keypoint_3d: np.ndarray, depth: float = DEFAULT_DEPTH, mirror_x: bool = True
) -> np.ndarray:
    """Approximate NTU RGB+D / Kinect v2 joints ``[M, T, 25, 3]`` from MediaPipe world landmarks
    ``[M, T, 33, 3]`` (metres, hip-centred, x to the image's right, y up, z away from the camera).

    Joints (torso = hip centre -> shoulder centre): spine base = hip centre lifted by 10 % of the
    torso (Kinect's hips hang below it); spine shoulder = shoulder centre lifted by 5 % of the torso;
    spine mid 45 % of the way up between them; head = between the ears, a third of the way to the nose; neck
    40 % of the way from spine shoulder to head; shoulders, elbows, wrists, hips, knees, ankles as
    they are; hand = mean of wrist, index and pinky knuckles; hand tip = index; thumb = thumb; foot =
    foot index (toes).

    The result is in Kinect camera space: x negated when ``mirror_x`` (Kinect's x grows to the
    image's left; see the module notes) and the hip centre (MediaPipe's origin, the mean of the two
    hip joints) of each frame moved to ``(0, 0, depth)``. A person's frame whose landmarks are all
    zero (not seen) stays all zero.
    """
    keypoint_3d = np.asarray(keypoint_3d)
    if keypoint_3d.ndim != 4 or keypoint_3d.shape[2:] != (MEDIAPIPE33.num_joints, 3):
        raise RetargetError(
            f"MediaPipe world landmarks must be [M, T, {MEDIAPIPE33.num_joints}, 3], "
            f"got shape {keypoint_3d.shape}"
        )
    coords = keypoint_3d.astype(np.float64)
    seen = np.any(coords != 0, axis=(2, 3))
    out = np.einsum("vj,mtjc->mtvc", MEDIAPIPE33_TO_NTU25, coords)
    if mirror_x:
        out[..., 0] = 0.0 - out[..., 0]
    out[..., 2] += depth
    return np.where(seen[:, :, None, None], out, 0.0).astype(np.float32)


def _annotation_mediapipe33_to_coco17(annotation: Annotation, **options: Any) -> Annotation:
    """COCO's 17 keypoints are a subset of MediaPipe's 33 (same names, same image coordinates)."""
    if options:
        raise RetargetError(f"mapping mediapipe33 to coco17 takes no options, got {sorted(options)}")
    index = [MEDIAPIPE33.joints.index(name) for name in COCO17.joints]
    out = {k: v for k, v in annotation.items() if k != "keypoint_3d"}
    out["keypoint"] = np.ascontiguousarray(np.asarray(annotation["keypoint"])[:, :, index])
    if annotation.get("keypoint_score") is not None:
        out["keypoint_score"] = np.ascontiguousarray(np.asarray(annotation["keypoint_score"])[:, :, index])
    out["layout"] = COCO17.name
    return out


def _annotation_mediapipe33_to_ntu25(annotation: Annotation, **options: Any) -> Annotation:
    if "keypoint_3d" not in annotation or annotation["keypoint_3d"] is None:
        raise RetargetError(
            "mapping mediapipe33 to ntu25 needs MediaPipe's 3D world landmarks ('keypoint_3d', as "
            "extract_pose writes them); this annotation has only 2D image keypoints"
        )
    out = {k: v for k, v in annotation.items() if k not in ("keypoint_score", "keypoint_3d")}
    # Kinect's 3D joints come without a confidence: NTU models are trained on x, y, z only.
    out["keypoint"] = mediapipe33_to_ntu25(annotation["keypoint_3d"], **options)
    out["layout"] = NTU25.name
    return out


# ---------------------------------------------------------------------------------------------------
# dispatch

_MAPPINGS: dict[tuple[str, str], Mapping] = {
    (MEDIAPIPE33.name, NTU25.name): _annotation_mediapipe33_to_ntu25,
    (MEDIAPIPE33.name, COCO17.name): _annotation_mediapipe33_to_coco17,
}


def register_mapping(source: str, target: str, mapping: Mapping) -> Mapping:
    """Make :func:`retarget` convert annotations of layout ``source`` to ``target`` with
    ``mapping(annotation, **options) -> annotation`` (a new dict; the input must not be changed)."""
    _MAPPINGS[(source, target)] = mapping
    return mapping


def supported_mappings() -> list[tuple[str, str]]:
    """The (source, target) layout pairs :func:`retarget` can convert."""
    return sorted(_MAPPINGS)


def retarget(annotation: Annotation, target_layout_name: str, **options: Any) -> Annotation:
    """A copy of ``annotation`` (pickle schema) converted to the joint layout ``target_layout_name``.

    The source layout is the annotation's ``layout`` entry. An annotation already in the target
    layout is returned as a shallow copy. ``options`` go to the mapping (for mediapipe33 -> ntu25:
    ``depth`` and ``mirror_x``). Raises :class:`RetargetError` for a pair without a mapping.
    """
    source = annotation.get("layout")
    if source is None:
        raise RetargetError(
            "the annotation does not say which joint layout it uses (no 'layout' entry), so it "
            f"cannot be converted to layout {target_layout_name!r}"
        )
    if source == target_layout_name:
        return dict(annotation)
    mapping = _MAPPINGS.get((source, target_layout_name))
    if mapping is None:
        known = ", ".join(f"{s} -> {t}" for s, t in supported_mappings()) or "none"
        raise RetargetError(
            f"a model trained on layout {target_layout_name!r} cannot read layout {source!r}; train on "
            f"the pose-extracted data or add a mapping (known mappings: {known})"
        )
    return mapping(annotation, **options)
