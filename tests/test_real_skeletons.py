"""The two real skeleton datasets in ``shared/data/skeletons`` (MSR Action3D, SBU Kinect Interaction):
the shipped import specs reproduce the published counts and protocols, the shipped layouts align real
bodies, and a short training run on each learns. Skipped, with the reason, where the data is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lightact.cli import app
from lightact.configs import CONFIG_DIR
from lightact.data.skeleton.importer import import_dataset
from lightact.data.skeleton.layouts import Layout, load_layout_yaml
from lightact.data.skeleton.pickle_io import safe_load_pickle
from lightact.data.skeleton.transforms import build_transforms
from lightact.data.skeleton.validate import validate_annotations

SKELETONS = Path(__file__).resolve().parents[2] / "shared" / "data" / "skeletons"
MSR_DIR, SBU_DIR = SKELETONS / "msr_action3d", SKELETONS / "sbu_kinect_interaction"
DATASETS = CONFIG_DIR / "datasets"
MSR_LAYOUT, SBU_LAYOUT = DATASETS / "kinect_v1_20_msr.yaml", DATASETS / "sbu15.yaml"

needs_msr = pytest.mark.skipif(not MSR_DIR.is_dir(), reason=f"MSR Action3D is not in {MSR_DIR}")
needs_sbu = pytest.mark.skipif(not SBU_DIR.is_dir(), reason=f"SBU Kinect Interaction is not in {SBU_DIR}")

# The dataset's own fold lists (shared/data/README.md).
SBU_FOLDS = [
    {"s01s02", "s03s04", "s05s02", "s06s04"},
    {"s02s03", "s02s07", "s03s05", "s05s03"},
    {"s01s03", "s01s07", "s07s01", "s07s03"},
    {"s02s01", "s02s06", "s03s02", "s03s06"},
    {"s04s02", "s04s03", "s04s06", "s06s02", "s06s03"},
]


@pytest.fixture(scope="module")
def msr(tmp_path_factory):
    out = tmp_path_factory.mktemp("msr") / "msr.pkl"
    report = import_dataset(DATASETS / "msr_action3d.yaml", out, root=MSR_DIR)
    return report, out


@pytest.fixture(scope="module")
def sbu(tmp_path_factory):
    out = tmp_path_factory.mktemp("sbu") / "sbu.pkl"
    report = import_dataset(DATASETS / "sbu_kinect_interaction.yaml", out, root=SBU_DIR)
    return report, out


@needs_msr
def test_msr_import_reproduces_the_published_counts(msr):
    report, path = msr
    data = safe_load_pickle(path)
    assert validate_annotations(data, num_classes=20) == []
    # 567 files; a13_s09_e02 is all zeros as released: dropped and reported, 566 sequences remain.
    assert report.files_found == 567 and report.samples == 566 == len(data["annotations"])
    assert [(d["sample"], d["reason"]) for d in report.dropped] == [
        ("a13_s09_e02", "every coordinate is zero")
    ]
    assert len(data["classes"]) == 20 and data["classes"][0] == "high arm wave"
    assert data["classes"][19] == "pick up and throw"
    assert sorted({a["label"] for a in data["annotations"]}) == list(range(20))
    subject = {a["frame_dir"]: int(a["subject"]) for a in data["annotations"]}
    assert {subject[i] for i in data["split"]["train"]} == {1, 3, 5, 7, 9}
    assert {subject[i] for i in data["split"]["test"]} == {2, 4, 6, 8, 10}
    assert (len(data["split"]["train"]), len(data["split"]["test"])) == (291, 275)
    first = next(a for a in data["annotations"] if a["frame_dir"] == "a01_s01_e01")
    raw = np.loadtxt(MSR_DIR / "a01_s01_e01_skeleton3D.txt").reshape(-1, 20, 4)[..., :3]
    np.testing.assert_allclose(first["keypoint"][0], raw, atol=1e-6)
    frames = [a["total_frames"] for a in data["annotations"]]
    assert (min(frames), max(frames), int(np.median(frames))) == (13, 936, 39)


@needs_sbu
def test_sbu_import_reproduces_the_published_counts_and_folds(sbu):
    report, path = sbu
    data = safe_load_pickle(path)
    assert validate_annotations(data, num_classes=8) == []
    assert report.files_found == report.samples == 282 and report.dropped == []
    assert data["classes"] == [
        "approaching",
        "departing",
        "kicking",
        "punching",
        "pushing",
        "hugging",
        "shaking hands",
        "exchanging",
    ]
    pair = {a["frame_dir"]: a["subject"] for a in data["annotations"]}
    everyone = set(pair)
    for k, fold in enumerate(SBU_FOLDS):
        test, train = set(data["split"][f"fold{k}_test"]), set(data["split"][f"fold{k}_train"])
        assert {pair[i] for i in test} == fold
        assert train | test == everyone and not train & test
    assert [len(data["split"][f"fold{k}_test"]) for k in range(5)] == [55, 52, 56, 54, 65]
    ann = data["annotations"][0]
    assert ann["keypoint"].shape[0] == 2 and ann["keypoint"].shape[2:] == (15, 3)
    raw = np.loadtxt(SBU_DIR / "s01s02" / "01" / "001" / "skeleton_pos.txt", delimiter=",", ndmin=2)
    first = next(a for a in data["annotations"] if a["frame_dir"] == "s01s02_01_001")
    np.testing.assert_allclose(
        first["keypoint"].transpose(1, 0, 2, 3), raw[:, 1:].reshape(-1, 2, 15, 3), atol=1e-6
    )


def test_the_shipped_layouts_name_their_spine_and_shoulders():
    msr_layout, sbu_layout = load_layout_yaml(MSR_LAYOUT), load_layout_yaml(SBU_LAYOUT)
    assert msr_layout.num_joints == 20 and sbu_layout.num_joints == 15
    hip_center, neck = msr_layout.joints.index("hip_center"), msr_layout.joints.index("neck")
    assert msr_layout.spine == ((hip_center,), (neck,)) and msr_layout.center == hip_center == 6
    assert msr_layout.joints[9] == "wrist_left" and msr_layout.joints[19] == "head"  # the files' order
    assert sbu_layout.spine == ((2,), (1,)) and sbu_layout.shoulders == ((3,), (6,))
    assert len(msr_layout.bones) == 19 and len(sbu_layout.bones) == 14
    # A trained model's metadata carries them (JSON).
    assert Layout.from_dict(json.loads(json.dumps(msr_layout.to_dict()))) == msr_layout


@needs_msr
def test_center_align_and_scale_put_a_real_msr_body_in_its_own_frame(msr):
    layout = load_layout_yaml(MSR_LAYOUT)
    sample = next(a for a in safe_load_pickle(msr[1])["annotations"] if a["frame_dir"] == "a05_s02_e01")
    out = build_transforms(["center", "align_view", "normalize_scale"], layout)(dict(sample))["keypoint"][0]
    first = out[0]
    spine = first[layout.joints.index("neck")] - first[layout.joints.index("hip_center")]
    shoulders = first[layout.joints.index("shoulder_right")] - first[layout.joints.index("shoulder_left")]
    np.testing.assert_allclose(spine, [0, np.linalg.norm(spine), 0], atol=1e-5)
    assert shoulders[0] > 0 and abs(shoulders[2]) < 1e-5  # the shoulder line lies in the xy plane
    spine_lengths = np.linalg.norm(out[:, 2] - out[:, 6], axis=-1)
    assert spine_lengths.mean() == pytest.approx(1.0, abs=1e-5)


def short_run(tmp_path: Path, config: str, pickle: Path, *overrides: str) -> dict:
    result = CliRunner().invoke(
        app,
        [
            "train",
            str(CONFIG_DIR / config),
            f"data.path={pickle}",
            f"work_dir={tmp_path}",
            "trainer.progress_bar=false",
            "trainer.num_threads=1",
            *overrides,
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads((tmp_path / "metrics.json").read_text())


# A short run: a small STAR (the shipped recipe, 16 frames, 2 blocks of width 32) for a few epochs.
SHORT = [
    "model.dim=32",
    "model.depth=2",
    "model.heads=4",
    "data.train_transforms=[center, {name: random_temporal_crop, min_ratio: 0.8},"
    " {name: temporal_resample, length: 16}]",
    "data.test_transforms=[center, {name: temporal_resample, length: 16, random_offset: false}]",
]


@needs_msr
def test_a_short_training_run_on_msr_learns(msr, tmp_path):
    metrics = short_run(tmp_path, "star_msr_xsub.yaml", msr[1], *SHORT, "trainer.max_epochs=8")
    assert metrics["num_samples"] == 275
    assert metrics["top1"] > 0.3  # 20 classes: chance is 0.05


@needs_sbu
def test_a_short_training_run_on_an_sbu_fold_learns(sbu, tmp_path):
    metrics = short_run(
        tmp_path,
        "star_msr_xsub.yaml",
        sbu[1],
        *SHORT,
        f"data.layout={SBU_LAYOUT}",
        "data.train_split=fold0_train",
        "data.test_split=fold0_test",
        "trainer.max_epochs=8",
    )
    assert metrics["num_samples"] == 55
    assert metrics["top1"] > 0.4  # 8 classes: chance is 0.125
