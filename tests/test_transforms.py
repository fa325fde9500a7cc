"""Skeleton sample transforms."""

from __future__ import annotations

import numpy as np
import pytest

from lightact.configs import CONFIG_DIR
from lightact.data.skeleton.layouts import COCO17, NTU25, OPENPOSE18, Layout, load_layout_yaml
from lightact.data.skeleton.transforms import (
    TRANSFORMS,
    AlignView,
    Center,
    Compose,
    GaussianNoise,
    NormalizeScale,
    RandomFlip,
    RandomRotate,
    RandomScale,
    RandomShear,
    RandomTemporalCrop,
    TemporalResample,
    build_transforms,
    flip,
    seen_mask,
)

EXAMPLE_YAML = CONFIG_DIR / "layouts" / "upper_body8.yaml"
J = {name: i for i, name in enumerate(NTU25.joints)}

# A standing NTU body in Kinect camera space, facing the camera: y up, the right side at larger x.
# The shoulder line is perpendicular to the spine. Only the left side is listed; the right mirrors x.
_LEFT_AND_MIDDLE = {
    "spine_base": (0.0, 0.0, 0.0),
    "spine_mid": (0.0, 0.25, 0.0),
    "spine_shoulder": (0.0, 0.5, 0.0),
    "neck": (0.0, 0.56, 0.0),
    "head": (0.0, 0.72, -0.02),
    "shoulder_left": (-0.2, 0.5, 0.0),
    "elbow_left": (-0.25, 0.24, 0.02),
    "wrist_left": (-0.27, 0.02, -0.04),
    "hand_left": (-0.27, -0.05, -0.05),
    "hand_tip_left": (-0.27, -0.12, -0.05),
    "thumb_left": (-0.23, -0.06, -0.07),
    "hip_left": (-0.1, -0.05, 0.0),
    "knee_left": (-0.1, -0.45, -0.03),
    "ankle_left": (-0.1, -0.85, 0.0),
    "foot_left": (-0.1, -0.87, -0.12),
}


def ntu_body() -> np.ndarray:
    body = np.zeros((25, 3))
    for name, xyz in _LEFT_AND_MIDDLE.items():
        body[J[name]] = xyz
        if name.endswith("_left"):
            body[J[name.replace("_left", "_right")]] = (-xyz[0], xyz[1], xyz[2])
    return body


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def make_sample(
    frames: int = 12, persons: int = 2, dims: int = 3, seed: int = 0, layout: Layout = NTU25
) -> dict:
    """A moving body per person, with some unseen (all-zero) frames and scores equal to 1 + frame index
    on seen frames, so a frame's origin and visibility can be read back after any transform."""
    rng = np.random.default_rng(seed)
    base = ntu_body() if layout is NTU25 else rng.normal(size=(layout.num_joints, 3))
    keypoint = np.zeros((persons, frames, layout.num_joints, dims), dtype=np.float32)
    for m in range(persons):
        drift = np.linspace(0, 0.3, frames)[:, None, None] * rng.normal(size=3)
        wobble = 0.02 * rng.normal(size=(frames, layout.num_joints, 3))
        body = base + np.array([0.8 * m, 0.0, 3.0]) + drift + wobble
        keypoint[m] = body[..., :dims]
    keypoint[0, -2:] = 0  # person 0 leaves before the end
    if persons > 1:
        keypoint[1, :3] = 0  # person 1 arrives late
        keypoint[1, 6] = 0  # and is missed once
    seen = seen_mask(keypoint)
    score = np.where(seen[..., None], np.arange(1, frames + 1)[None, :, None], 0).astype(np.float32)
    score = np.broadcast_to(score, keypoint.shape[:3]).copy()
    return {"keypoint": keypoint, "keypoint_score": score, "label": 7, "total_frames": frames}


# ---------------------------------------------------------------------------------------------------
# normalisation


def test_center_puts_the_centre_joint_at_the_origin():
    sample = make_sample()
    out = Center(NTU25)(sample)
    np.testing.assert_allclose(out["keypoint"][0, 0, NTU25.center], 0, atol=1e-6)
    shift = sample["keypoint"][0, 0, NTU25.center]
    np.testing.assert_allclose(out["keypoint"][1, 5], sample["keypoint"][1, 5] - shift, atol=1e-6)
    assert out["label"] == 7 and out["keypoint"].dtype == np.float32
    assert sample["keypoint"][0, 0, NTU25.center].any(), "the input must not be modified"


def test_center_uses_the_first_seen_frame_and_person():
    sample = make_sample()
    sample["keypoint"][0] = 0  # person 0 never seen: person 1 is the reference
    out = Center(NTU25)(sample)
    np.testing.assert_allclose(out["keypoint"][1, 3, NTU25.center], 0, atol=1e-6)


def test_center_per_frame():
    sample = make_sample()
    out = Center(NTU25, per_frame=True)(sample)
    seen = seen_mask(sample["keypoint"])
    np.testing.assert_allclose(out["keypoint"][:, :, NTU25.center][seen], 0, atol=1e-6)
    assert np.abs(out["keypoint"][seen]).sum() > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_align_view_recovers_a_rotated_body(seed):
    rng = np.random.default_rng(seed)
    rotation = random_rotation(rng)
    body = ntu_body()
    keypoint = (body @ rotation.T + rng.normal(size=3))[None, None].astype(np.float32)
    keypoint = np.concatenate([np.zeros_like(keypoint), keypoint], axis=1)  # first frame unseen
    out = Compose([Center(NTU25), AlignView(NTU25)])({"keypoint": keypoint}, rng)["keypoint"][0, 1]

    spine = out[J["spine_shoulder"]] - out[J["spine_base"]]
    shoulders = out[J["shoulder_right"]] - out[J["shoulder_left"]]
    np.testing.assert_allclose(spine / np.linalg.norm(spine), [0, 1, 0], atol=1e-5)
    np.testing.assert_allclose(shoulders / np.linalg.norm(shoulders), [1, 0, 0], atol=1e-5)
    # A rotation, not a mirror: the canonical (camera-facing) body comes back.
    np.testing.assert_allclose(out, body - body[NTU25.center], atol=1e-5)


def test_align_view_2d_makes_the_spine_vertical_and_keeps_it_upright():
    body = ntu_body()[:, :2] * [1, -1]  # image convention: y grows down, so the head has smaller y
    angle = np.radians(30)
    tilt = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    keypoint = (body @ tilt.T + [320, 240])[None, None].astype(np.float32)
    out = AlignView(NTU25)({"keypoint": keypoint})["keypoint"][0, 0]
    spine = out[J["spine_shoulder"]] - out[J["spine_base"]]
    np.testing.assert_allclose(spine / np.linalg.norm(spine), [0, -1], atol=1e-5)


def test_align_view_defaults_for_other_layouts():
    for layout in (COCO17, OPENPOSE18):
        sample = make_sample(layout=layout, persons=1)
        out = AlignView(layout)(sample)["keypoint"][0, 0]
        names = {name: i for i, name in enumerate(layout.joints)}
        hip = (out[names["left_hip"]] + out[names["right_hip"]]) / 2
        shoulders = (out[names["left_shoulder"]] + out[names["right_shoulder"]]) / 2
        top = out[names["neck"]] if "neck" in names else shoulders
        spine = top - hip
        np.testing.assert_allclose(spine / np.linalg.norm(spine), [0, 1, 0], atol=1e-5)


def test_align_view_needs_explicit_joints_for_unknown_names():
    upper = load_layout_yaml(EXAMPLE_YAML)
    with pytest.raises(ValueError, match="spine=\\(a, b\\)"):
        AlignView(upper)
    view = AlignView(upper, spine=("neck", "head"))
    assert view({"keypoint": np.ones((1, 2, 8, 3), dtype=np.float32)})["keypoint"].shape == (1, 2, 8, 3)
    with pytest.raises(ValueError, match="no joint named 'pelvis'"):
        AlignView(upper, spine=("pelvis", "neck"))


@pytest.mark.parametrize("measure", ["spine", "shoulders", "bbox"])
def test_normalize_scale_gives_unit_measure(measure):
    sample = make_sample()
    sample["keypoint"] *= 7.5
    normalize = NormalizeScale(NTU25, measure=measure)
    assert normalize.size(sample["keypoint"]) > 2
    out = normalize(sample)
    assert normalize.size(out["keypoint"]) == pytest.approx(1.0, rel=1e-5)


def test_normalize_scale_on_coco_uses_mid_hip():
    normalize = NormalizeScale(COCO17)
    out = normalize(make_sample(layout=COCO17))
    assert normalize.size(out["keypoint"]) == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(ValueError, match="measure"):
        NormalizeScale(NTU25, measure="height")


# ---------------------------------------------------------------------------------------------------
# spatial augmentation


def bone_lengths(keypoint: np.ndarray, layout: Layout) -> np.ndarray:
    child, parent = np.array(layout.bones).T
    return np.linalg.norm(keypoint[..., child, :] - keypoint[..., parent, :], axis=-1)


@pytest.mark.parametrize("dims", [2, 3])
def test_rotate_preserves_bone_lengths(dims):
    sample = make_sample(dims=dims)
    out = RandomRotate(max_deg=180)(sample, np.random.default_rng(3))
    seen = seen_mask(sample["keypoint"])
    before, after = bone_lengths(sample["keypoint"], NTU25), bone_lengths(out["keypoint"], NTU25)
    np.testing.assert_allclose(after[seen], before[seen], rtol=1e-5, atol=1e-6)
    assert not np.allclose(out["keypoint"], sample["keypoint"], atol=1e-3)


def test_scale_and_shear_change_the_body():
    sample = make_sample()
    scaled = RandomScale(scale_range=(2.0, 2.0))(sample, np.random.default_rng(0))
    np.testing.assert_allclose(scaled["keypoint"], 2 * sample["keypoint"], rtol=1e-6)
    sheared = RandomShear(max_shear=0.5)(sample, np.random.default_rng(0))
    assert not np.allclose(sheared["keypoint"], sample["keypoint"], atol=1e-3)
    identity = RandomShear(max_shear=0.0)(sample, np.random.default_rng(0))
    np.testing.assert_array_equal(identity["keypoint"], sample["keypoint"])


def test_flip_twice_is_the_identity():
    sample = make_sample()
    twice = flip(flip(sample, NTU25), NTU25)
    np.testing.assert_array_equal(twice["keypoint"], sample["keypoint"])
    np.testing.assert_array_equal(twice["keypoint_score"], sample["keypoint_score"])
    always = RandomFlip(NTU25, p=1.0)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(always(always(sample, rng), rng)["keypoint"], sample["keypoint"])


def test_flip_turns_a_raised_left_hand_into_a_raised_right_hand():
    body = ntu_body()
    for name in ("elbow_left", "wrist_left", "hand_left", "hand_tip_left", "thumb_left"):
        body[J[name], 1] += 0.8  # the left arm goes up, above the head
    sample = {"keypoint": Center(NTU25)({"keypoint": body[None, None].astype(np.float32)})["keypoint"]}
    out = RandomFlip(NTU25, p=1.0)(sample, np.random.default_rng(0))["keypoint"][0, 0]
    assert out[J["wrist_right"], 1] > out[J["head"], 1] > out[J["wrist_left"], 1]
    assert out[J["hand_right"], 0] > 0  # the raised hand is on the right side (+x) of the body
    np.testing.assert_allclose(out[J["wrist_right"], 0], -sample["keypoint"][0, 0, J["wrist_left"], 0])


def test_flip_needs_flip_pairs():
    no_pairs = Layout(name="chain", joints=("a", "b"), bones=((1, 0),), center=0)
    with pytest.raises(ValueError, match="'chain' has no flip_pairs"):
        RandomFlip(no_pairs)


def test_flip_probability_zero_keeps_the_sample():
    sample = make_sample()
    out = RandomFlip(NTU25, p=0.0)(sample, np.random.default_rng(0))
    np.testing.assert_array_equal(out["keypoint"], sample["keypoint"])


# ---------------------------------------------------------------------------------------------------
# temporal


@pytest.mark.parametrize("length", [1, 5, 12, 40])
@pytest.mark.parametrize("random_offset", [True, False])
def test_resample_length(length, random_offset):
    sample = make_sample(frames=12)
    out = TemporalResample(length, random_offset=random_offset)(sample, np.random.default_rng(length))
    assert out["keypoint"].shape == (2, length, 25, 3)
    assert out["keypoint_score"].shape == (2, length, 25)
    assert out["total_frames"] == length
    frames = TemporalResample(length, random_offset).indices(12, np.random.default_rng(0))
    assert (np.diff(frames) >= 0).all() and frames.min() >= 0 and frames.max() <= 11
    if length <= 12:
        assert len(np.unique(frames)) == length  # one frame from each segment


def test_resample_to_the_same_length_is_the_identity():
    sample = make_sample(frames=12)
    out = TemporalResample(12, random_offset=False)(sample)
    np.testing.assert_array_equal(out["keypoint"], sample["keypoint"])
    np.testing.assert_array_equal(out["keypoint_score"], sample["keypoint_score"])


def test_crop_is_contiguous_and_in_bounds():
    sample = make_sample(frames=20)
    crop = RandomTemporalCrop(min_ratio=0.3, max_ratio=0.8)
    rng = np.random.default_rng(0)
    lengths = set()
    for _ in range(50):
        out = crop(sample, rng)
        frames = out["keypoint_score"].max(axis=(0, 2)).astype(int) - 1  # the scores hold 1 + frame index
        length = len(frames)
        lengths.add(length)
        assert 6 <= length <= 16 and out["total_frames"] == length
        start = frames[0]
        np.testing.assert_array_equal(frames, np.arange(start, start + length))
        assert start >= 0 and start + length <= 20
        np.testing.assert_array_equal(out["keypoint"], sample["keypoint"][:, start : start + length])
    assert len(lengths) > 3


# ---------------------------------------------------------------------------------------------------
# every transform


def all_transforms(layout: Layout = NTU25) -> list:
    return build_transforms(
        [
            "center",
            {"name": "center", "per_frame": True},
            "align_view",
            {"name": "normalize_scale", "measure": "bbox"},
            "normalize_scale",
            {"name": "random_rotate", "max_deg": 30},
            {"name": "random_scale", "scale_range": [0.5, 1.5], "anisotropic": True},
            {"name": "random_shear", "max_shear": 0.3},
            {"name": "gaussian_noise", "std": 0.05},
            {"name": "random_flip", "p": 1.0},
            {"name": "random_temporal_crop", "min_ratio": 0.4, "max_ratio": 0.9},
            {"name": "temporal_resample", "length": 17},
            {"name": "temporal_resample", "length": 5, "random_offset": False},
            "drop_unseen_frames",
        ],
        layout,
    ).transforms


def test_all_transforms_are_covered():
    assert {type(t) for t in all_transforms()} == set(TRANSFORMS.values())


@pytest.mark.parametrize("dims", [2, 3])
def test_unseen_frames_stay_zero(dims):
    sample = make_sample(frames=16, dims=dims)
    rng = np.random.default_rng(0)
    for transform in [*all_transforms(), Compose(all_transforms())]:
        out = transform(sample, rng)
        seen = out["keypoint_score"].max(axis=-1) > 0  # scores travel with their frames
        assert (out["keypoint"][~seen] == 0).all(), transform
        assert seen_mask(out["keypoint"])[seen].all(), transform
        assert out["keypoint"].dtype == np.float32 and out["label"] == 7
        assert np.isfinite(out["keypoint"]).all()


def test_a_sample_with_nobody_seen_passes_through():
    sample = {"keypoint": np.zeros((2, 6, 25, 3), dtype=np.float32)}
    for transform in all_transforms():
        out = transform(sample, np.random.default_rng(0))
        assert (out["keypoint"] == 0).all(), transform


def test_same_seed_same_output():
    sample = make_sample()
    pipeline = build_transforms(
        [
            {"name": "random_temporal_crop"},
            {"name": "temporal_resample", "length": 10},
            {"name": "random_rotate", "max_deg": 20},
            {"name": "random_scale"},
            {"name": "random_shear"},
            {"name": "gaussian_noise"},
            {"name": "random_flip"},
        ],
        NTU25,
    )
    first = pipeline(sample, np.random.default_rng(42))
    second = pipeline(sample, np.random.default_rng(42))
    other = pipeline(sample, np.random.default_rng(43))
    np.testing.assert_array_equal(first["keypoint"], second["keypoint"])
    np.testing.assert_array_equal(first["keypoint_score"], second["keypoint_score"])
    assert not np.array_equal(first["keypoint"], other["keypoint"])
    noise = GaussianNoise(0.1)
    assert not np.array_equal(noise(sample)["keypoint"], noise(sample)["keypoint"])  # rng=None: unseeded


def test_layout_and_keypoints_must_agree():
    with pytest.raises(ValueError, match="17 joints"):
        Center(COCO17)(make_sample())
    with pytest.raises(ValueError, match="C = 2 or 3"):
        RandomRotate()({"keypoint": np.zeros((1, 2, 25, 4), dtype=np.float32)})


# ---------------------------------------------------------------------------------------------------
# build_transforms


def test_build_transforms():
    pipeline = build_transforms([{"name": "random_rotate", "max_deg": 15}, "center"], NTU25)
    assert isinstance(pipeline, Compose) and len(pipeline) == 2
    assert isinstance(pipeline.transforms[0], RandomRotate) and pipeline.transforms[0].max_deg == 15
    assert isinstance(pipeline.transforms[1], Center) and pipeline.transforms[1].layout is NTU25
    assert len(build_transforms([], NTU25)) == 0 and len(build_transforms(None)) == 0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (["spin"], "unknown transform 'spin'"),
        ([{"name": "random_rotate", "max_degrees": 10}], "random_rotate.*unknown argument.*max_degrees"),
        ([{"max_deg": 10}], "no 'name'"),
        ([{"name": "temporal_resample"}], "temporal_resample.*missing required argument.*length"),
        ([{"name": "random_rotate", "max_deg": -1}], "random_rotate.*max_deg must be >= 0"),
        ([{"name": "random_flip", "layout": "coco17"}], "random_flip.*unknown argument.*layout"),
        ([{"name": "random_temporal_crop", "min_ratio": 0.9, "max_ratio": 0.2}], "min_ratio"),
        (
            [{"name": "normalize_scale", "measure": "shoulders", "shoulders": ["neck"]}],
            "shoulders must be a pair",
        ),
    ],
)
def test_build_transforms_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        build_transforms(spec, NTU25)


def test_build_transforms_needs_a_layout_for_layout_transforms():
    with pytest.raises(ValueError, match="'center' needs a joint layout"):
        build_transforms(["center"])
    with pytest.raises(TypeError):
        build_transforms("center", NTU25)
    with pytest.raises(ValueError, match="align_view.*spine"):
        build_transforms(["align_view"], load_layout_yaml(EXAMPLE_YAML))


def test_drop_unseen_frames_keeps_the_frames_someone_is_seen_in():
    keypoint = np.ones((2, 6, 25, 3), dtype=np.float32) * np.arange(6)[None, :, None, None]
    keypoint[:, [0, 3]] = 0  # nobody in frames 0 and 3
    keypoint[1, 4] = 0  # frame 4: only person 0
    score = np.ones((2, 6, 25), dtype=np.float32)
    out = build_transforms(["drop_unseen_frames"])(
        {"keypoint": keypoint, "keypoint_score": score, "total_frames": 6}
    )
    np.testing.assert_array_equal(out["keypoint"][0, :, 0, 0], [1, 2, 4, 5])
    np.testing.assert_array_equal(out["keypoint"][1, :, 0, 0], [1, 2, 0, 5])
    assert out["keypoint_score"].shape == (2, 4, 25) and out["total_frames"] == 4
