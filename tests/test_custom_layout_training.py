"""Real-data shapes through `lightact train`: a user-defined joint layout (no code change, only a
layout YAML and a data path) and 2D keypoints with scores, for STAR and ST-GCN alike."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lightact.cli import app
from lightact.configs import CONFIG_DIR
from lightact.data.skeleton.layouts import NTU25
from lightact.data.skeleton.pickle_io import save_pickle
from lightact.data.synthetic.skeleton import generate_skeleton_dataset
from lightact.engine.checkpoint import load_model

UPPER_BODY_YAML = CONFIG_DIR / "layouts" / "upper_body8.yaml"
# The upper-body layout's joints, taken from the synthetic NTU bodies.
NTU_JOINTS = [
    "head",
    "neck",
    "shoulder_left",
    "elbow_left",
    "wrist_left",
    "shoulder_right",
    "elbow_right",
    "wrist_right",
]


def derived_dataset(tmp_path: Path, two_d: bool) -> Path:
    data = generate_skeleton_dataset(samples_per_class=6, seed=3)
    index = [NTU25.joints.index(j) for j in NTU_JOINTS]
    for ann in data["annotations"]:
        keypoint = ann["keypoint"][:, :, index]
        if two_d:  # a pinhole projection to pixels, with a confidence per joint
            seen = np.abs(keypoint).sum(-1) > 0
            pixels = 500 * keypoint[..., :2] / np.maximum(keypoint[..., 2:], 1e-3) + 320
            ann["keypoint"] = np.where(seen[..., None], pixels, 0).astype(np.float32)
            ann["keypoint_score"] = seen.astype(np.float32) * 0.9
        else:
            ann["keypoint"] = np.ascontiguousarray(keypoint)
    path = tmp_path / ("upper2d.pkl" if two_d else "upper3d.pkl")
    save_pickle(data, path)
    return path


@pytest.mark.parametrize("model", ["star_64", "stgcn"])
@pytest.mark.parametrize("two_d", [False, True], ids=["3d", "2d_scores"])
def test_user_layout_trains_through_the_cli(tmp_path, model, two_d):
    config = tmp_path / "upper.yaml"
    config.write_text(
        f"name: upper\nmodel: {{name: {model}}}\n"
        f"data: {{path: {derived_dataset(tmp_path, two_d)}, layout: {UPPER_BODY_YAML}, batch_size: 16,"
        " max_frames: 48}\n"
        "trainer: {max_epochs: 1, progress_bar: false}\n"
    )
    result = CliRunner().invoke(app, ["train", str(config), "--set", f"work_dir={tmp_path / 'run'}"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["num_samples"] == 16 * 2  # 2 of each class's 6 samples are held out
    _, meta = load_model(tmp_path / "run")
    assert meta["kwargs"]["layout"]["name"] == "upper_body8"
    assert meta["kwargs"]["in_channels"] == (9 if model == "star_64" else 3)
