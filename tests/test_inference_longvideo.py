"""Classifying and scoring long videos with a long-video model (lightact.inference.longvideo)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lightact.data.longvideo.dataset import features_to_inputs
from lightact.data.synthetic.longvideo import SynthLongVideoSpec, generate_longvideo_dataset
from lightact.features.extract import ExtractionSettings, extract_features
from lightact.inference import LongVideoRecognizer, Recognizer, predict_path
from lightact.models.registry import create_model

pytest.importorskip("av")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

# The embedded encoders (timm/resnet10t frames, clip3d_tiny clips) on small inputs.
SETTINGS = ExtractionSettings(frame_size=32, clip_size=16, clip_len=4, clip_fps=4.0)
DURATION = 48.0  # the shortest the synthetic set makes is about 40 s


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """A 48-second synthetic long video (32x32, 4 fps)."""
    root = tmp_path_factory.mktemp("synthlong")
    generate_longvideo_dataset(root, SynthLongVideoSpec(videos_per_class=2, duration_s=DURATION, size=32))
    return root / "videos" / "synthlong_00000.mp4"


@pytest.fixture(scope="module")
def feature_file(video, tmp_path_factory) -> Path:
    """The video's features as a store holds them, extracted with the checkpoints' settings."""
    store = tmp_path_factory.mktemp("store")
    summary = extract_features([video], store, SETTINGS, rank=0, world_size=1)
    assert summary["extracted"] == 1 and not summary["failed"]
    return store / f"{video.stem}.safetensors"


def _checkpoint(save_checkpoint, directory: Path, task: str) -> Path:
    """A randomly initialised tiny STAN saved as training saves one: the extraction settings of its
    features and its task in meta["data"]."""
    kwargs = {"num_classes": 4, "frame_dim": 512, "clip_dim": 64, "dim": 16, "heads": 2, "depth": 1}
    kwargs["task"] = task
    classes = ["c0", "c1", "c2", "c3"]
    if task == "regression":
        kwargs.update(num_classes=2, target_mean=[1.0, -1.0], target_std=[2.0, 0.5])
        classes = ["speed", "tilt"]
    torch.manual_seed(0)
    model = create_model("stan", **kwargs)
    with torch.no_grad():  # a regression head starts at zero: every answer would be the mean
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    data = {"extraction": SETTINGS.to_dict(), "task": task}
    return save_checkpoint(directory, model, "stan", kwargs, classes, data, task)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_video_and_its_stored_features_give_the_same_answer(
    task, video, feature_file, tmp_path, save_checkpoint
):
    """The encoders rebuilt from the checkpoint extract what the store holds; the overall answer is
    the model on the whole video, the segments its windows."""
    checkpoint = _checkpoint(save_checkpoint, tmp_path / "run", task)
    recognizer = Recognizer.from_checkpoint(checkpoint)
    assert isinstance(recognizer, LongVideoRecognizer) and recognizer.settings == SETTINGS
    out = tmp_path / "predictions"
    [from_video] = predict_path(recognizer, video, window=10, out_dir=out)
    [from_store] = predict_path(recognizer, feature_file)
    np.testing.assert_allclose(from_video.probabilities, from_store.probabilities, atol=1e-5)
    assert [(w.start_time, w.end_time) for w in from_video.windows[:2]] == [(0.0, 10.0), (5.0, 15.0)]
    assert from_video.windows[-1].end_time == pytest.approx(DURATION)
    assert (from_video.task, from_video.whole_video) == (task, True)
    assert (out / f"{video.stem}.json").is_file() and (out / f"{video.stem}_timeline.png").is_file()
    saved = json.loads((out / f"{video.stem}.json").read_text())
    assert (saved["task"], saved["whole_video"]) == (task, True)
    # The overall answer is the model on every feature of the video, not a mean of the segments.
    f = recognizer.features(feature_file)
    with torch.no_grad():
        inputs = features_to_inputs(f.frame_features, f.frame_times, f.clip_features, f.clip_centres)
        whole = recognizer.model(*inputs).float()[0]
    expected = whole.softmax(-1) if task == "classification" else whole
    np.testing.assert_allclose(from_store.probabilities, expected.numpy(), rtol=1e-5, atol=1e-6)
    segments = np.mean([w.probabilities for w in from_store.windows], axis=0)
    assert not np.allclose(from_store.probabilities, segments, atol=1e-4)
    if task == "classification":
        assert from_video.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    else:  # every target's value, in target order
        assert [c.label for c in from_video.topk] == ["speed", "tilt"]


def test_window_and_stride_are_positive_seconds(tmp_path, feature_file, save_checkpoint):
    checkpoint = _checkpoint(save_checkpoint, tmp_path / "run", "classification")
    [prediction] = predict_path(checkpoint, feature_file, window=7.5, stride=2.5)
    assert prediction.windows[1].start_time == pytest.approx(2.5)
    for bad in ({"window": 0}, {"stride": -2.0}, {"window": float("nan")}, {"topk": 0}):
        with pytest.raises(ValueError, match="must be a positive"):
            predict_path(checkpoint, feature_file, **bad)
