"""Converting skeletons between joint layouts (MediaPipe world landmarks -> NTU / Kinect joints)."""

from __future__ import annotations

import numpy as np
import pytest

from lightact.data.skeleton.layouts import COCO17, MEDIAPIPE33, NTU25
from lightact.data.skeleton.retarget import (
    DEFAULT_DEPTH,
    MEDIAPIPE33_TO_NTU25,
    RetargetError,
    mediapipe33_to_ntu25,
    retarget,
    supported_mappings,
)
from lightact.data.synthetic.skeleton import render_clean, sample_params

N = {name: i for i, name in enumerate(NTU25.joints)}
P = {name: i for i, name in enumerate(MEDIAPIPE33.joints)}


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def ntu_to_mediapipe(ntu: np.ndarray) -> np.ndarray:
    """MediaPipe-style world landmarks ``[T, 33, 3]`` for NTU bodies ``[T, 25, 3]`` given in the
    pose extractor's convention (x to the image's right, y up, z away from the camera), centred on
    the mid-hip point as MediaPipe's world landmarks are. Face points are placed around the head
    from the body's own up / forward / left directions."""
    j = lambda name: ntu[:, N[name]]  # noqa: E731
    up = _unit(j("spine_shoulder") - j("spine_base"))
    left = j("shoulder_left") - j("shoulder_right")
    left = _unit(left - (left * up).sum(-1, keepdims=True) * up)
    forward = np.cross(up, left)  # x right, y up, z away is left-handed: up x left points forward
    head = j("head")
    out = np.zeros((len(ntu), 33, 3))
    out[:, P["nose"]] = head + 0.09 * forward - 0.02 * up
    for side, sign in (("left", 1.0), ("right", -1.0)):
        out[:, P[f"{side}_eye_inner"]] = head + 0.07 * forward + 0.02 * up + sign * 0.015 * left
        out[:, P[f"{side}_eye"]] = head + 0.07 * forward + 0.02 * up + sign * 0.03 * left
        out[:, P[f"{side}_eye_outer"]] = head + 0.065 * forward + 0.02 * up + sign * 0.045 * left
        out[:, P[f"{side}_ear"]] = head - 0.02 * forward + sign * 0.075 * left
        out[:, P[f"mouth_{side}"]] = head + 0.08 * forward - 0.06 * up + sign * 0.025 * left
        for part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle"):
            out[:, P[f"{side}_{part}"]] = j(f"{part}_{side}")
        out[:, P[f"{side}_index"]] = j(f"hand_tip_{side}")
        out[:, P[f"{side}_thumb"]] = j(f"thumb_{side}")
        # The pinky knuckle that makes the NTU hand the mean of wrist, index and pinky.
        out[:, P[f"{side}_pinky"]] = 3 * j(f"hand_{side}") - j(f"wrist_{side}") - j(f"hand_tip_{side}")
        out[:, P[f"{side}_foot_index"]] = j(f"foot_{side}")
        out[:, P[f"{side}_heel"]] = (
            j(f"ankle_{side}") - 0.3 * (j(f"foot_{side}") - j(f"ankle_{side}")) - 0.05 * up
        )
    mid_hip = (out[:, P["left_hip"]] + out[:, P["right_hip"]]) / 2
    return (out - mid_hip[:, None]).astype(np.float32)


@pytest.fixture(scope="module")
def ntu_bodies() -> list[np.ndarray]:
    """Noise-free synthetic bodies (first person, every 5th frame) of a few classes, in metres,
    turned from the generator's Kinect axes (x to the sensor's left) into the pose extractor's
    (x to the image's right) by negating x."""
    bodies = []
    for i, name in enumerate(("wave", "kick", "bend_down", "punch", "sit_down", "clap")):
        params = sample_params(np.random.default_rng(i))
        body = render_clean(name, params)[0, ::5].astype(np.float32)
        bodies.append(body * np.array([-1, 1, 1], dtype=np.float32))
    return bodies


def _chirality(body: np.ndarray) -> np.ndarray:
    """Sign of det[right - left shoulder, spine up, feet forward] per frame: +1 for a real body in a
    left-handed frame (x right, y up, z away), -1 in a right-handed one (Kinect camera space)."""
    right = body[:, N["shoulder_right"]] - body[:, N["shoulder_left"]]
    up = body[:, N["spine_shoulder"]] - body[:, N["spine_base"]]
    feet = (body[:, N["foot_left"]] - body[:, N["ankle_left"]]) + (
        body[:, N["foot_right"]] - body[:, N["ankle_right"]]
    )
    return np.sign(np.linalg.det(np.stack([right, up, feet], axis=1)))


def test_weights_are_affine_combinations():
    assert MEDIAPIPE33_TO_NTU25.shape == (25, 33)
    np.testing.assert_allclose(MEDIAPIPE33_TO_NTU25.sum(axis=1), 1.0, atol=1e-12)


def test_bone_directions_follow_the_body(ntu_bodies):
    for ntu in ntu_bodies:
        mp = ntu_to_mediapipe(ntu)
        # Same axes as the source (no mirror): every NTU bone should point where the original does.
        out = mediapipe33_to_ntu25(mp[None], mirror_x=False)[0]
        assert out.shape == (len(ntu), 25, 3) and out.dtype == np.float32
        for child, parent in NTU25.bones:
            original = _unit(ntu[:, child] - ntu[:, parent])
            mapped = _unit(out[:, child] - out[:, parent])
            cosine = (original * mapped).sum(-1)
            name = f"{NTU25.joints[parent]} -> {NTU25.joints[child]}"
            assert cosine.min() > 0.8, f"bone {name}: cosine {cosine.min():.2f}"
        # Limbs are copied joint for joint: only the hip-centring translation differs.
        shift = (ntu[:, N["hip_left"]] + ntu[:, N["hip_right"]]) / 2
        for joint in ("elbow_left", "wrist_right", "knee_left", "ankle_right", "hand_left"):
            np.testing.assert_allclose(
                out[:, N[joint]] - np.array([0, 0, DEFAULT_DEPTH]), ntu[:, N[joint]] - shift, atol=1e-5
            )


def test_kinect_axes_keep_left_left_and_head_up(ntu_bodies):
    for ntu in ntu_bodies:
        out = mediapipe33_to_ntu25(ntu_to_mediapipe(ntu)[None])[0]
        # The hip centre lands straight in front of the sensor at the nominal depth.
        mid_hip = (out[:, N["hip_left"]] + out[:, N["hip_right"]]) / 2
        np.testing.assert_allclose(mid_hip, np.tile([0.0, 0.0, DEFAULT_DEPTH], (len(out), 1)), atol=1e-5)
        assert np.all(out[:, N["spine_base"], 1] > mid_hip[:, 1])  # Kinect's hips hang below it
        # Head above neck above spine shoulder above spine mid above spine base (y up).
        ys = [out[:, N[j], 1] for j in ("spine_base", "spine_mid", "spine_shoulder", "neck", "head")]
        for lower, upper in zip(ys, ys[1:], strict=False):
            assert np.all(upper > lower)
        # Left joints stay the person's left: the body keeps its handedness, now in Kinect's
        # right-handed camera space (x to the sensor's left), where the source's is left-handed.
        assert np.all(_chirality(ntu) == 1)
        assert np.all(_chirality(out) == -1)
        # Negating x is an axis change, not a mirror: lengths and heights are untouched.
        same_axes = mediapipe33_to_ntu25(ntu_to_mediapipe(ntu)[None], mirror_x=False)[0]
        np.testing.assert_allclose(out[..., 0], -same_axes[..., 0], atol=1e-6)
        np.testing.assert_allclose(out[..., 1:], same_axes[..., 1:], atol=1e-6)


def test_person_facing_the_camera_has_right_shoulder_at_larger_kinect_x():
    # A T-pose facing the camera, as MediaPipe reports it: the person's left at the image's right.
    mp = np.zeros((1, 1, 33, 3), np.float32)
    for side, s in (("left", 1.0), ("right", -1.0)):
        mp[0, 0, P[f"{side}_hip"]] = (0.1 * s, 0, 0)
        mp[0, 0, P[f"{side}_shoulder"]] = (0.18 * s, 0.5, 0)
        mp[0, 0, P[f"{side}_ear"]] = (0.07 * s, 0.72, 0.02)
        mp[0, 0, P[f"{side}_foot_index"]] = (0.1 * s, -0.9, -0.12)  # toes towards the camera
    mp[0, 0, P["nose"]] = (0, 0.7, -0.09)
    out = mediapipe33_to_ntu25(mp)[0, 0]
    assert out[N["shoulder_right"], 0] > out[N["shoulder_left"], 0]
    assert out[N["head"], 1] > out[N["neck"], 1] > out[N["spine_shoulder"], 1]
    assert out[N["head"], 2] < DEFAULT_DEPTH  # the face is turned to the sensor
    assert out[N["foot_left"], 2] < DEFAULT_DEPTH  # so are the toes


def test_unseen_frames_and_persons_stay_zero(ntu_bodies):
    mp = ntu_to_mediapipe(ntu_bodies[0][:6])
    data = np.zeros((2, 8, 33, 3), np.float32)
    data[0, :6] = mp
    data[0, 3] = 0.0  # a dropped frame in the middle
    out = mediapipe33_to_ntu25(data, depth=2.5)
    assert out.shape == (2, 8, 25, 3)
    seen = np.any(out != 0, axis=(2, 3))
    np.testing.assert_array_equal(seen[0], [1, 1, 1, 0, 1, 1, 0, 0])
    assert not seen[1].any()
    mid_hip = (out[0, 0, N["hip_left"]] + out[0, 0, N["hip_right"]]) / 2
    np.testing.assert_allclose(mid_hip, [0, 0, 2.5], atol=1e-5)
    # Nobody at all, and no person slot at all.
    assert mediapipe33_to_ntu25(np.zeros((0, 5, 33, 3))).shape == (0, 5, 25, 3)


def test_wrong_shape_is_refused():
    with pytest.raises(RetargetError, match=r"\[M, T, 33, 3\]"):
        mediapipe33_to_ntu25(np.zeros((1, 4, 33, 2)))


def _mediapipe_annotation(bodies: np.ndarray) -> dict:
    m, t = bodies.shape[:2]
    return {
        "frame_dir": "clip",
        "total_frames": t,
        "label": -1,
        "keypoint": np.random.default_rng(0).uniform(0, 640, (m, t, 33, 2)).astype(np.float32),
        "keypoint_score": np.full((m, t, 33), 0.9, np.float32),
        "keypoint_3d": bodies,
        "img_shape": (480, 640),
        "original_shape": (480, 640),
        "fps": 25.0,
        "layout": "mediapipe33",
    }


def test_retarget_dispatch(ntu_bodies):
    ann = _mediapipe_annotation(ntu_to_mediapipe(ntu_bodies[0])[None])
    ntu = retarget(ann, "ntu25")
    assert ntu["layout"] == "ntu25" and ntu["fps"] == 25.0 and ntu["frame_dir"] == "clip"
    assert ntu["keypoint"].shape == (1, len(ntu_bodies[0]), 25, 3)
    assert "keypoint_score" not in ntu and "keypoint_3d" not in ntu
    np.testing.assert_array_equal(ntu["keypoint"], mediapipe33_to_ntu25(ann["keypoint_3d"]))
    assert ann["layout"] == "mediapipe33" and "keypoint_3d" in ann  # the input is left alone
    # Options reach the mapping.
    near = retarget(ann, "ntu25", depth=2.0)
    np.testing.assert_allclose(near["keypoint"][..., 2] - ntu["keypoint"][..., 2], -1.0, atol=1e-5)

    coco = retarget(ann, "coco17")
    assert coco["keypoint"].shape[2] == 17 and coco["keypoint_score"].shape[2] == 17
    idx = [P[name] for name in COCO17.joints]
    np.testing.assert_array_equal(coco["keypoint"], ann["keypoint"][:, :, idx])

    same = retarget(ann, "mediapipe33")
    assert same is not ann and same["keypoint"] is ann["keypoint"]
    assert ("mediapipe33", "ntu25") in supported_mappings()


def test_unsupported_pairs_and_missing_data_are_clear_errors():
    coco = {"keypoint": np.ones((1, 4, 17, 2), np.float32), "layout": "coco17"}
    with pytest.raises(RetargetError, match="a model trained on layout 'ntu25' cannot read layout 'coco17'"):
        retarget(coco, "ntu25")
    with pytest.raises(RetargetError, match="add a mapping"):
        retarget(coco, "openpose18")
    with pytest.raises(RetargetError, match="no 'layout' entry"):
        retarget({"keypoint": np.ones((1, 4, 33, 2))}, "ntu25")
    only_2d = {"keypoint": np.ones((1, 4, 33, 2), np.float32), "layout": "mediapipe33"}
    with pytest.raises(RetargetError, match="keypoint_3d"):
        retarget(only_2d, "ntu25")
