"""Predicting actions in videos with a clip model (lightact.inference.video)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lightact.config import load_config
from lightact.data.synthetic.video import write_video_dataset
from lightact.data.video.reader import iter_frames
from lightact.data.video.transforms import normalize
from lightact.engine.video_data import VideoDataModule
from lightact.inference import Prediction, Recognizer, VideoRecognizer, predict_path
from lightact.models.registry import create_model

pytest.importorskip("av")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    """Synthetic 64x64 clips of 24 frames at 12 fps."""
    out = tmp_path_factory.mktemp("synth_video")
    write_video_dataset(out, samples_per_class=2, seed=3, num_frames=24, size=64, val_fraction=0.5)
    return sorted((out / "videos" / "val").glob("*.mp4"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, save_checkpoint) -> Path:
    """A randomly initialised tiny PST saved with the preprocessing a training run records: 4
    frames per clip (uniform segments), whole 64-px frames (no resize, a crop of the full frame)."""
    data = ["data.kind=video", "data.num_frames=4", "data.resize=null", "data.crop=64"]
    cfg = load_config(None, ["model.name=pst_xs", *data])
    kwargs = {"num_classes": 3, "num_frames": 4, "img_size": 64, "embed_dim": 16}
    kwargs.update(depths=[2], num_heads=[2])
    torch.manual_seed(0)
    model = create_model("pst_xs", **kwargs)
    data = VideoDataModule(cfg.data, cfg.eval, "clip").inference_meta()
    return save_checkpoint(tmp_path_factory.mktemp("pst"), model, "pst_xs", kwargs, ["a", "b", "c"], data)


def test_windows_equal_the_model_on_fully_decoded_frames(checkpoint, videos, tmp_path):
    """Reference path: every frame decoded in order, each window's 4 segment-middle frames picked by
    hand, normalised and classified one window at a time."""
    recognizer = Recognizer.from_checkpoint(checkpoint)
    assert isinstance(recognizer, VideoRecognizer) and (recognizer.resize, recognizer.crop) == (None, 64)
    video = videos[0]
    [prediction] = predict_path(recognizer, video, window=12, stride=6, topk=2, out_dir=tmp_path)
    assert [(w.start_frame, w.end_frame) for w in prediction.windows] == [(0, 12), (6, 18), (12, 24)]
    assert prediction.windows[1].start_time == pytest.approx(0.5) and prediction.fps == pytest.approx(12)
    frames = torch.from_numpy(np.stack(list(iter_frames(video)))).permute(0, 3, 1, 2)  # [T, 3, H, W]
    with torch.no_grad():
        for w in prediction.windows:
            clip = frames[[w.start_frame + 3 * i + 1 for i in range(4)]]  # middles of 3-frame segments
            x = normalize(clip[None], recognizer.mean, recognizer.std)
            expected = recognizer.model(x).softmax(-1)[0].numpy()
            np.testing.assert_allclose(w.probabilities, expected, rtol=1e-4, atol=1e-6)
    mean = np.mean([w.probabilities for w in prediction.windows], axis=0)
    np.testing.assert_allclose(prediction.probabilities, mean)
    assert prediction.probabilities.sum() == pytest.approx(1.0, abs=1e-5) and len(prediction.topk) == 2
    assert prediction.label in ["a", "b", "c"] and prediction.task == "classification"
    saved = Prediction.load_json(tmp_path / f"{video.stem}.json")
    assert saved.to_dict() == prediction.to_dict()
    assert (tmp_path / f"{video.stem}_timeline.png").stat().st_size > 5_000


def test_a_folder_skips_an_undecodable_video_and_options_are_checked(checkpoint, videos, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for video in videos[:2]:
        (folder / video.name).write_bytes(video.read_bytes())
    (folder / "broken.mp4").write_bytes(b"not a video")
    with pytest.warns(UserWarning, match=r"skipping .*broken\.mp4"):
        predictions = predict_path(checkpoint, folder, skip_errors=True)
    # Default window for a uniform model: the whole video (it is under 10 s).
    assert [p.name for p in predictions] == [v.name for v in videos[:2]]
    assert all(p.window == 24 and len(p.windows) == 1 for p in predictions)
    for bad in ({"window": 0}, {"stride": -1}, {"topk": 0}, {"window": 2.5}):
        with pytest.raises(ValueError, match="must be a positive"):
            predict_path(checkpoint, folder, **bad)
