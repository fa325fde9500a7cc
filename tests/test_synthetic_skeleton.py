"""Tests for the procedural skeleton-action generator."""

from __future__ import annotations

import re

import numpy as np
import pytest

from lightact.data.skeleton.layouts import NTU25
from lightact.data.synthetic.skeleton import (
    INTERACTION_CLASSES,
    REVERSED_PAIRS,
    SKELETON_CLASSES,
    MotionParams,
    generate_skeleton_dataset,
    render_clean,
    sample_params,
)

SAMPLES = 4


@pytest.fixture(scope="module")
def dataset() -> dict:
    return generate_skeleton_dataset(samples_per_class=SAMPLES, seed=3)


def _random_params(n: int, seed: int = 0) -> list[MotionParams]:
    rng = np.random.default_rng(seed)
    return [sample_params(rng) for _ in range(n)]


def test_class_lists_are_consistent():
    assert len(SKELETON_CLASSES) >= 12
    assert len(set(SKELETON_CLASSES)) == len(SKELETON_CLASSES)
    assert len(INTERACTION_CLASSES) >= 2
    assert set(INTERACTION_CLASSES) <= set(SKELETON_CLASSES)
    assert len(REVERSED_PAIRS) >= 3
    in_pairs = [c for pair in REVERSED_PAIRS for c in pair]
    assert len(set(in_pairs)) == len(in_pairs)
    assert set(in_pairs) <= set(SKELETON_CLASSES)


def test_schema(dataset):
    assert set(dataset) == {"split", "annotations", "classes"}
    assert dataset["classes"] == list(SKELETON_CLASSES)
    annotations = dataset["annotations"]
    assert len(annotations) == SAMPLES * len(SKELETON_CLASSES)
    for ann in annotations:
        assert set(ann) == {"frame_dir", "total_frames", "label", "keypoint"}
        kp = ann["keypoint"]
        assert kp.dtype == np.float32
        assert kp.ndim == 4 and kp.shape[0] == 2 and kp.shape[2:] == (25, 3)
        assert ann["total_frames"] == kp.shape[1]
        assert 30 <= kp.shape[1] <= 300
        assert 0 <= ann["label"] < len(SKELETON_CLASSES)
        assert np.isfinite(kp).all()
        assert re.fullmatch(rf"synth_s3_c{ann['label']:02d}_\d{{4}}", ann["frame_dir"])
        # In front of the camera, at a Kinect-like distance.
        seen = kp[0][np.abs(kp[0]).sum(-1) > 0]
        assert 1.5 < np.median(seen[:, 2]) < 5.0


def test_split_is_disjoint_complete_and_stratified(dataset):
    train, val = dataset["split"]["train"], dataset["split"]["val"]
    ids = [a["frame_dir"] for a in dataset["annotations"]]
    assert len(set(ids)) == len(ids)
    assert not set(train) & set(val)
    assert sorted(train + val) == sorted(ids)
    label = {a["frame_dir"]: a["label"] for a in dataset["annotations"]}
    assert {label[i] for i in train} == set(range(len(SKELETON_CLASSES)))
    assert {label[i] for i in val} == set(range(len(SKELETON_CLASSES)))
    assert len(val) == round(0.25 * SAMPLES) * len(SKELETON_CLASSES)


def test_same_seed_is_bit_identical_and_other_seed_differs(dataset):
    again = generate_skeleton_dataset(samples_per_class=SAMPLES, seed=3)
    other = generate_skeleton_dataset(samples_per_class=SAMPLES, seed=4)
    assert again["split"] == dataset["split"]
    for a, b, c in zip(dataset["annotations"], again["annotations"], other["annotations"], strict=True):
        assert a["label"] == b["label"] and a["frame_dir"] == b["frame_dir"]
        assert a["keypoint"].tobytes() == b["keypoint"].tobytes()
        assert a["keypoint"].shape != c["keypoint"].shape or not np.array_equal(a["keypoint"], c["keypoint"])


def test_samples_do_not_depend_on_how_many_are_generated(dataset):
    fewer = generate_skeleton_dataset(samples_per_class=2, seed=3)
    ours = {a["frame_dir"]: a["keypoint"] for a in dataset["annotations"]}
    for ann in fewer["annotations"]:
        assert np.array_equal(ann["keypoint"], ours[ann["frame_dir"]])


def test_samples_vary_within_a_class(dataset):
    for label in range(len(SKELETON_CLASSES)):
        kps = [a["keypoint"] for a in dataset["annotations"] if a["label"] == label]
        assert len({k.shape[1] for k in kps}) > 1 or not np.allclose(kps[0], kps[1], atol=0.05)
    lengths = {a["total_frames"] for a in dataset["annotations"]}
    assert len(lengths) > 10


def test_person_count(dataset):
    for ann in dataset["annotations"]:
        kp = ann["keypoint"]
        person_seen = np.abs(kp).reshape(2, kp.shape[1], -1).sum(-1) > 0  # [2, T]
        if SKELETON_CLASSES[ann["label"]] in INTERACTION_CLASSES:
            assert person_seen.mean(axis=1).min() > 0.9
        else:
            assert person_seen[0].mean() > 0.9
            assert not kp[1].any()


def test_dropped_joints_are_rare_exact_zeros(dataset):
    zero_joints = total_joints = 0
    for ann in dataset["annotations"]:
        persons = 2 if SKELETON_CLASSES[ann["label"]] in INTERACTION_CLASSES else 1
        joints = ann["keypoint"][:persons].reshape(-1, 3)
        zero = (joints == 0).all(-1)
        # A joint is either dropped entirely or a real measurement, never half zero.
        assert not ((joints == 0).any(-1) & ~zero).any()
        zero_joints += zero.sum()
        total_joints += len(joints)
    assert 0 < zero_joints < 0.01 * total_joints


@pytest.mark.parametrize("pair", REVERSED_PAIRS, ids=lambda p: f"{p[0]}-{p[1]}")
def test_reversed_pairs_are_exact_time_reversals(pair):
    forward, backward = pair
    for params in _random_params(4, seed=11):
        a, b = render_clean(forward, params), render_clean(backward, params)
        assert a.shape == b.shape
        np.testing.assert_array_equal(b, a[:, ::-1])
        # The motion itself must not be a palindrome, or the pair would be the same class.
        persons = 2 if forward in INTERACTION_CLASSES else 1
        start, end = a[:persons, 0], a[:persons, -1]
        assert np.abs(start - end).max() > 0.2


def test_clean_render_is_deterministic_and_sized():
    for params in _random_params(2, seed=5):
        for name in SKELETON_CLASSES:
            a, b = render_clean(name, params), render_clean(name, params)
            np.testing.assert_array_equal(a, b)
            assert a.shape[0] == 2 and a.shape[2:] == (25, 3)
            assert params.min_frames <= a.shape[1] <= params.max_frames


def test_limbs_are_rigid():
    child = np.array([c for c, _ in NTU25.bones])
    parent = np.array([p for _, p in NTU25.bones])
    for params in _random_params(3, seed=7):
        for name in SKELETON_CLASSES:
            kp = render_clean(name, params)
            persons = 2 if name in INTERACTION_CLASSES else 1
            for person in kp[:persons]:
                length = np.linalg.norm(person[:, child] - person[:, parent], axis=-1)  # [T, bones]
                assert (length.min(0) > 0.02).all(), name
                spread = length.max(0) - length.min(0)
                assert spread.max() < 1e-6, f"{name}: bone lengths vary by {spread.max():.2e} m"


def test_bodies_stand_upright_and_move():
    params = MotionParams()  # level camera
    head, base = NTU25.joints.index("head"), NTU25.joints.index("spine_base")
    for name in SKELETON_CLASSES:
        kp = render_clean(name, params)
        persons = 2 if name in INTERACTION_CLASSES else 1
        for person in kp[:persons]:
            assert (person[:, head, 1] > person[:, base, 1] + 0.2).all(), name
            # Something moves well beyond the idle sway.
            assert np.abs(person - person[:1]).max() > 0.15, name


def test_frame_bounds_are_respected():
    data = generate_skeleton_dataset(samples_per_class=2, seed=1, min_frames=60, max_frames=80)
    assert all(60 <= a["total_frames"] <= 80 for a in data["annotations"])
    extreme = [
        MotionParams(idle_before=500, idle_after=400),
        MotionParams(speed=0.3, max_frames=40),
        MotionParams(speed=5.0, idle_before=0, idle_after=0, min_frames=50, max_frames=60),
    ]
    for params in extreme:
        for name in ("wave", "walk_apart"):
            assert params.min_frames <= render_clean(name, params).shape[1] <= params.max_frames


def test_invalid_arguments():
    with pytest.raises(KeyError):
        render_clean("moonwalk", MotionParams())
    with pytest.raises(ValueError):
        generate_skeleton_dataset(samples_per_class=0)
    with pytest.raises(ValueError):
        generate_skeleton_dataset(val_fraction=1.0)
    with pytest.raises(ValueError):
        generate_skeleton_dataset(min_frames=100, max_frames=50)


def test_bodies_have_kinect_handedness():
    """NTU's camera space is right-handed (x to the sensor's left, y up, z away): for a real body
    det[right - left shoulder, spine up, feet forward] is negative there. A mirrored generator
    would teach models a left/right swap that real NTU data and retargeted video do not have."""
    j = {name: i for i, name in enumerate(NTU25.joints)}
    for seed in range(5):
        body = render_clean("wave", sample_params(np.random.default_rng(seed)))[0]
        right = body[:, j["shoulder_right"]] - body[:, j["shoulder_left"]]
        up = body[:, j["spine_shoulder"]] - body[:, j["spine_base"]]
        feet = (
            body[:, j["foot_left"]]
            - body[:, j["ankle_left"]]
            + body[:, j["foot_right"]]
            - body[:, j["ankle_right"]]
        )
        assert np.all(np.linalg.det(np.stack([right, up, feet], axis=1)) < 0)
