"""Built-in joint layouts and user layouts from YAML."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from lightact.data.skeleton.layouts import (
    COCO17,
    MEDIAPIPE33,
    NTU25,
    OPENPOSE18,
    Layout,
    get_layout,
    list_layouts,
    load_layout_yaml,
)

EXAMPLE_YAML = Path(__file__).resolve().parents[1] / "configs" / "layouts" / "upper_body8.yaml"


def swap_side(name: str) -> str:
    return re.sub(r"left|right", lambda m: "right" if m.group() == "left" else "left", name)


def test_builtins_are_registered():
    assert {"ntu25", "coco17", "openpose18", "mediapipe33"} <= set(list_layouts())
    assert get_layout("coco17") is COCO17
    assert get_layout("openpose18") is OPENPOSE18
    assert get_layout("mediapipe33") is MEDIAPIPE33


@pytest.mark.parametrize("name", ["ntu25", "coco17", "openpose18", "mediapipe33"])
def test_builtin_is_a_connected_tree(name):
    layout = get_layout(name)
    assert len(layout.bones) == layout.num_joints - 1
    assert np.isfinite(layout.hop_distance()).all()
    assert (layout.parents < 0).sum() == 1


@pytest.mark.parametrize("name", ["ntu25", "coco17", "openpose18", "mediapipe33"])
def test_flip_permutation_swaps_sides(name):
    layout = get_layout(name)
    perm = layout.flip_permutation()
    np.testing.assert_array_equal(perm[perm], np.arange(layout.num_joints))
    for joint, image in enumerate(perm):
        assert layout.joints[image] == swap_side(layout.joints[joint])
    assert any("left" in joint for joint in layout.joints)
    # Every side-less joint, the centre included, maps to itself.
    assert perm[layout.center] == layout.center


def test_joint_orders():
    assert COCO17.joints[:3] == ("nose", "left_eye", "right_eye")
    assert COCO17.joints[5] == "left_shoulder" and COCO17.joints[16] == "right_ankle"
    assert OPENPOSE18.joints[:5] == ("nose", "neck", "right_shoulder", "right_elbow", "right_wrist")
    assert OPENPOSE18.joints[14:] == ("right_eye", "left_eye", "right_ear", "left_ear")
    assert OPENPOSE18.joints[OPENPOSE18.center] == "neck"
    assert MEDIAPIPE33.num_joints == 33
    assert MEDIAPIPE33.joints[1:7] == (
        "left_eye_inner",
        "left_eye",
        "left_eye_outer",
        "right_eye_inner",
        "right_eye",
        "right_eye_outer",
    )
    assert MEDIAPIPE33.joints[9:13] == ("mouth_left", "mouth_right", "left_shoulder", "right_shoulder")
    assert MEDIAPIPE33.joints[23] == "left_hip" and MEDIAPIPE33.joints[32] == "right_foot_index"


def test_mediapipe_bones_follow_pose_connections():
    pose_connections = {
        (0, 1),
        (1, 2),
        (2, 3),
        (3, 7),
        (0, 4),
        (4, 5),
        (5, 6),
        (6, 8),
        (9, 10),
        (11, 12),
        (11, 13),
        (13, 15),
        (15, 17),
        (15, 19),
        (15, 21),
        (17, 19),
        (12, 14),
        (14, 16),
        (16, 18),
        (16, 20),
        (16, 22),
        (18, 20),
        (11, 23),
        (12, 24),
        (23, 24),
        (23, 25),
        (24, 26),
        (25, 27),
        (26, 28),
        (27, 29),
        (28, 30),
        (29, 31),
        (30, 32),
        (27, 31),
        (28, 32),
    }
    bridges = {(0, 9), (0, 10), (0, 11), (0, 12)}  # face to body: not in POSE_CONNECTIONS
    for child, parent in MEDIAPIPE33.bones:
        assert tuple(sorted((child, parent))) in pose_connections | bridges


@pytest.mark.parametrize("name", ["ntu25", "coco17", "openpose18", "mediapipe33"])
def test_layout_survives_json_through_to_dict_and_from_dict(name):
    """How a trained model's metadata carries its layout (checkpoint meta is JSON)."""
    layout = get_layout(name)
    data = json.loads(json.dumps(layout.to_dict()))
    assert set(data) == {"name", "joints", "bones", "center", "flip_pairs"}
    assert Layout.from_dict(data) == layout


def test_from_dict_validates_like_the_constructor():
    data = {**NTU25.to_dict(), "center": 99}
    with pytest.raises(ValueError, match="centre joint 99 is out of range"):
        Layout.from_dict(data)


def test_example_yaml_equals_hand_built_layout():
    expected = Layout(
        name="upper_body8",
        joints=(
            "head",
            "neck",
            "left_shoulder",
            "left_elbow",
            "left_wrist",
            "right_shoulder",
            "right_elbow",
            "right_wrist",
        ),
        bones=((0, 1), (2, 1), (3, 2), (4, 3), (5, 1), (6, 5), (7, 6)),
        center=1,
        flip_pairs=((2, 5), (3, 6), (4, 7)),
    )
    assert load_layout_yaml(EXAMPLE_YAML) == expected
    assert get_layout(str(EXAMPLE_YAML)) == expected
    assert np.isfinite(expected.hop_distance()).all()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "layout.yaml"
    path.write_text(text)
    return path


def test_yaml_unknown_joint(tmp_path):
    path = write(tmp_path, "joints: [a, b]\nbones: [[a, elbow]]\ncenter: a\n")
    with pytest.raises(ValueError, match="unknown joint 'elbow'"):
        load_layout_yaml(path)


def test_yaml_cycle(tmp_path):
    path = write(tmp_path, "joints: [a, b, c]\nbones: [[a, b], [b, c], [c, a]]\ncenter: a\n")
    with pytest.raises(ValueError, match="cycle"):
        load_layout_yaml(path)


def test_yaml_two_parents(tmp_path):
    path = write(tmp_path, "joints: [a, b, c]\nbones: [[a, b], [a, c]]\ncenter: a\n")
    with pytest.raises(ValueError, match="more than one parent"):
        load_layout_yaml(path)


def test_yaml_unknown_key(tmp_path):
    path = write(tmp_path, "joints: [a, b]\nbones: [[a, b]]\ncenter: a\nmirror: []\n")
    with pytest.raises(ValueError, match="mirror"):
        load_layout_yaml(path)


def test_yaml_missing_key(tmp_path):
    path = write(tmp_path, "joints: [a, b]\nbones: [[a, b]]\n")
    with pytest.raises(ValueError, match="center"):
        load_layout_yaml(path)


def test_ntu25_unchanged():
    assert NTU25.num_joints == 25 and NTU25.joints[NTU25.center] == "spine_shoulder"
