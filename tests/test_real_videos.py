"""From a video nobody here made to an answer: pose extraction, then a skeleton model trained on the
embedded data, on each real clip in ../shared/data/videos (skipped cleanly where absent).

The person-found and second-person shares of these clips are asserted in test_pose.py; here the
whole `predict` path has to return well-formed output."""

import json
from pathlib import Path

import numpy as np
import pytest

VIDEO_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
VIDEOS = sorted(VIDEO_DIR.glob("*.*")) if VIDEO_DIR.is_dir() else []

pytest.importorskip(
    "mediapipe", reason="pose extraction needs the 'pose' extra: pip install 'lightact[pose]'"
)
pytestmark = pytest.mark.skipif(
    not VIDEOS, reason=f"no real videos at {VIDEO_DIR} (shared/ is not beside the repo)"
)


@pytest.mark.parametrize("video", VIDEOS, ids=lambda p: p.name)
def test_predict_on_a_real_video(video, trained_work_dir, tmp_path):
    from lightact.data.video import video_info
    from lightact.inference import predict_path

    info = video_info(video)
    (prediction,) = predict_path(trained_work_dir, video, window=48, stride=24, topk=3, out_dir=tmp_path)
    assert prediction.label in prediction.classes
    assert np.isclose(sum(prediction.probabilities), 1.0, atol=1e-4)
    assert prediction.fps == 30.0  # poses resampled to the embedded set's rate, the model's
    assert len(prediction.windows) >= 1
    for window in prediction.windows:
        assert 0 <= window.start_time < window.end_time <= info.duration + 1.0 / 30
    saved = json.loads((tmp_path / f"{video.stem}.json").read_text())
    assert saved["topk"][0]["label"] == prediction.label
    assert (tmp_path / f"{video.stem}_timeline.png").stat().st_size > 10_000
