"""Classifying skeleton inputs and videos with a trained model (lightact.inference)."""

from __future__ import annotations

import io
import json
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from lightact.config import SkeletonDataConfig
from lightact.data.skeleton.features import joint_bone_motion, person_frames
from lightact.data.skeleton.layouts import MEDIAPIPE33, NTU25, Layout
from lightact.data.skeleton.pickle_io import save_pickle
from lightact.data.skeleton.transforms import TemporalResample
from lightact.data.synthetic.skeleton import SKELETON_CLASSES, generate_skeleton_dataset
from lightact.engine.checkpoint import save_weights
from lightact.inference import (
    NoPersonError,
    Prediction,
    PredictionInputError,
    Recognizer,
    predict_path,
    window_starts,
)
from lightact.models.registry import create_model, model_entry

# The frames per clip of the training run the fixture makes (the quickstart default).
RESAMPLE_LENGTH = SkeletonDataConfig().test_transforms[0]["length"]

N = {name: i for i, name in enumerate(NTU25.joints)}
P = {name: i for i, name in enumerate(MEDIAPIPE33.joints)}


# ---------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """These models are tiny: on a shared 2-core machine one intra-op thread is ~20x faster than
    two fighting over the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def work_dir(trained_work_dir) -> Path:
    return trained_work_dir


@pytest.fixture(scope="session")
def recognizer(work_dir) -> Recognizer:
    return Recognizer.from_checkpoint(work_dir)


@pytest.fixture(scope="session")
def clips() -> list[dict]:
    """Synthetic annotations unseen in training (another seed): NTU-25, 2 person slots, 30 fps."""
    return generate_skeleton_dataset(samples_per_class=1, seed=7)["annotations"]


def _long_clip(clips: list[dict], frames: int) -> np.ndarray:
    """Synthetic clips played one after another, cut to ``frames``."""
    kp = np.concatenate([c["keypoint"] for c in clips], axis=1)
    assert kp.shape[1] >= frames
    return kp[:, :frames]


def _hand_made_checkpoint(
    directory: Path, name: str, layout: Layout, in_channels: int, classes: list[str], config=None, **kwargs
) -> Path:
    """A randomly initialised model saved as training saves one (weights + meta [+ config.yaml])."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=len(classes), layout=layout, in_channels=in_channels, **kwargs)
    meta = {
        "model": name,
        "kwargs": {
            "num_classes": len(classes),
            "layout": layout.to_dict(),
            "in_channels": in_channels,
            **kwargs,
        },
        "classes": classes,
        "input_format": model_entry(name).input_format,
    }
    directory.mkdir(parents=True, exist_ok=True)
    save_weights(model, directory / "model.safetensors", meta)
    if config is not None:
        (directory / "config.yaml").write_text(yaml.safe_dump(config))
    return directory


def _mediapipe_world(ntu: np.ndarray) -> np.ndarray:
    """Rough MediaPipe world landmarks ``[M, T, 33, 3]`` (hip-centred, x right, y up, z away) for NTU
    bodies ``[M, T, 25, 3]`` in the synthetic generator's x-right convention; unseen frames stay 0."""
    out = np.zeros((*ntu.shape[:2], 33, 3), np.float32)
    j = lambda name: ntu[:, :, N[name]]  # noqa: E731
    head = j("head")
    for side, s in (("left", 1.0), ("right", -1.0)):
        for part in ("shoulder", "elbow", "wrist", "hip", "knee", "ankle"):
            out[:, :, P[f"{side}_{part}"]] = j(f"{part}_{side}")
        out[:, :, P[f"{side}_index"]] = j(f"hand_tip_{side}")
        out[:, :, P[f"{side}_pinky"]] = j(f"hand_{side}")
        out[:, :, P[f"{side}_thumb"]] = j(f"thumb_{side}")
        out[:, :, P[f"{side}_foot_index"]] = j(f"foot_{side}")
        out[:, :, P[f"{side}_heel"]] = j(f"ankle_{side}")
        for face in ("eye_inner", "eye", "eye_outer", "ear"):
            out[:, :, P[f"{side}_{face}"]] = head + [0.04 * s, 0.02, 0]
        out[:, :, P[f"mouth_{side}"]] = head + [0.02 * s, -0.05, -0.05]
    out[:, :, P["nose"]] = head + [0, -0.02, -0.09]
    mid_hip = (out[:, :, P["left_hip"]] + out[:, :, P["right_hip"]]) / 2
    seen = np.any(ntu != 0, axis=(2, 3))
    return np.where(seen[..., None, None], out - mid_hip[:, :, None], 0).astype(np.float32)


def _mediapipe_annotation(ntu: np.ndarray, fps: float = 25.0) -> dict:
    """What ``extract_pose`` returns for a video of the bodies ``ntu``."""
    m, t = ntu.shape[:2]
    world = _mediapipe_world(ntu)
    seen = np.any(world != 0, axis=(2, 3))
    pixels = 320 + 200 * world[..., :2] * [1, -1]
    return {
        "frame_dir": "clip",
        "total_frames": t,
        "label": -1,
        "keypoint": np.where(seen[..., None, None], pixels, 0).astype(np.float32),
        "keypoint_score": np.where(seen[..., None], np.full((m, t, 33), 0.9), 0).astype(np.float32),
        "keypoint_3d": world,
        "img_shape": (480, 640),
        "original_shape": (480, 640),
        "fps": fps,
        "layout": "mediapipe33",
    }


@pytest.fixture
def fake_pose(monkeypatch):
    """Stand in for lightact.data.skeleton.pose (MediaPipe); ``fake_pose.result`` is what it returns."""
    module = types.ModuleType("lightact.data.skeleton.pose")
    module.calls = []
    module.result = None

    def extract_pose(video, max_persons=2, max_side=640, **options):
        module.calls.append(video)
        module.options = options
        return module.result

    module.extract_pose = extract_pose
    monkeypatch.setitem(sys.modules, "lightact.data.skeleton.pose", module)
    return module


# ---------------------------------------------------------------------------------------------------
# the recogniser on a trained checkpoint


def test_from_checkpoint_reads_what_training_saved(work_dir, recognizer):
    assert recognizer.classes == list(SKELETON_CLASSES)
    assert recognizer.layout.name == "ntu25" and recognizer.layout.num_joints == 25
    assert recognizer.input_format == "packed" and recognizer.channels == 3
    # The run's test transforms (the quickstart's resampling, middle offsets) come from the checkpoint.
    (resample,) = recognizer.transform.transforms
    assert (
        isinstance(resample, TemporalResample)
        and resample.length == RESAMPLE_LENGTH
        and not resample.random_offset
    )
    # The weights file works as well as the work directory.
    again = Recognizer.from_checkpoint(work_dir / "model.safetensors")
    assert again.classes == recognizer.classes


def test_the_checkpoint_alone_carries_the_test_pipeline(work_dir, tmp_path):
    from lightact.engine.checkpoint import read_meta

    data = read_meta(work_dir / "model.safetensors")["data"]
    expected = {
        "test_transforms": SkeletonDataConfig().test_transforms,
        "clip_len": None,
        "max_frames": None,  # padded models pad to the batch's longest clip (the default)
        "persons": 2,  # the embedded set has two-person interactions
        "fps": None,  # its annotations do not say (a predictor takes 30 fps)
    }
    assert data == expected
    # Copied without its work directory, or beside a config.yaml that says otherwise, the weights
    # still classify as the run evaluated.
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "model.safetensors").write_bytes((work_dir / "model.safetensors").read_bytes())
    (alone / "config.yaml").write_text(yaml.safe_dump({"data": {"test_transforms": ["center"]}}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec = Recognizer.from_checkpoint(alone)
    (resample,) = rec.transform.transforms
    assert isinstance(resample, TemporalResample) and resample.length == RESAMPLE_LENGTH


def test_probabilities_sum_to_one_and_topk_is_sorted(recognizer, clips):
    clip = clips[3]
    pred = recognizer.predict(clip["keypoint"], topk=5)
    assert isinstance(pred, Prediction)
    assert pred.classes == list(SKELETON_CLASSES)
    assert pred.probabilities.shape == (len(SKELETON_CLASSES),)
    assert pred.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    scores = [c.probability for c in pred.topk]
    assert len(pred.topk) == 5 and scores == sorted(scores, reverse=True)
    assert pred.topk[0].probability == pytest.approx(pred.probabilities.max())
    assert all(pred.classes[c.index] == c.label for c in pred.topk)
    assert pred.label == pred.topk[0].label and pred.score == scores[0]
    # A clip of at most 300 frames is one window; frames are seconds at 30 fps by default.
    total = clip["keypoint"].shape[1]
    assert total <= 300 and len(pred.windows) == 1
    (w,) = pred.windows
    assert (w.start_frame, w.end_frame, pred.window, pred.num_frames) == (0, total, total, total)
    assert w.start_time == 0 and w.end_time == pytest.approx(total / 30)
    np.testing.assert_allclose(w.probabilities, pred.probabilities)
    assert len(recognizer.predict(clip["keypoint"], topk=100).topk) == len(SKELETON_CLASSES)


def test_one_window_equals_the_model_on_hand_made_features(work_dir, recognizer, clips):
    """Reference path: the test transform, STAR's features and the forward pass written out."""
    from lightact.engine.checkpoint import load_model

    model, _ = load_model(work_dir)
    for clip in clips[:4]:
        sample = TemporalResample(RESAMPLE_LENGTH, random_offset=False)({"keypoint": clip["keypoint"]})
        frames = [joint_bone_motion(p, NTU25.parents) for p in person_frames(sample["keypoint"])]
        x = torch.from_numpy(np.concatenate(frames))
        with torch.no_grad():
            expected = model(x, torch.zeros(len(x), dtype=torch.long)).softmax(-1)[0].numpy()
        pred = recognizer.predict(clip["keypoint"])
        np.testing.assert_allclose(pred.probabilities, expected, rtol=1e-5, atol=1e-6)


def test_window_starts():
    assert window_starts(100, 150, 75) == [0]
    assert window_starts(150, 150, 75) == [0]
    assert window_starts(400, 100, 50) == [0, 50, 100, 150, 200, 250, 300]
    assert window_starts(420, 100, 50) == [0, 50, 100, 150, 200, 250, 300, 320]
    assert window_starts(10, 3, 5) == [0, 5, 7]
    with pytest.raises(ValueError, match="at least 1"):
        window_starts(10, 0, 1)


def test_sliding_windows_times_and_mean(recognizer, clips):
    kp = _long_clip(clips, 420)
    pred = recognizer.predict(kp, window=100, stride=50, topk=3, fps=25)
    starts = [w.start_frame for w in pred.windows]
    assert starts == [0, 50, 100, 150, 200, 250, 300, 320]
    assert [w.end_frame for w in pred.windows] == [s + 100 for s in starts]
    for w in pred.windows:
        assert w.start_time == pytest.approx(w.start_frame / 25)
        assert w.end_time == pytest.approx(w.end_frame / 25)
        assert w.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
        assert len(w.topk) == 3
    # The overall answer is the mean of the windows'.
    np.testing.assert_allclose(pred.probabilities, np.mean([w.probabilities for w in pred.windows], axis=0))
    assert (pred.window, pred.stride, pred.fps, pred.num_frames) == (100, 50, 25.0, 420)
    # A window is classified exactly as that stretch of frames on its own.
    alone = recognizer.predict(kp[:, 150:250])
    np.testing.assert_allclose(pred.windows[3].probabilities, alone.probabilities, rtol=1e-5, atol=1e-7)


def test_default_windows(recognizer, clips):
    kp = _long_clip(clips, 400)
    pred = recognizer.predict(kp)  # longer than 300 frames: 150-frame windows, stride 75
    assert (pred.window, pred.stride) == (150, 75)
    assert [w.start_frame for w in pred.windows] == [0, 75, 150, 225, 250]
    # A stride alone leaves a short clip whole; a window longer than the clip is the clip.
    short = clips[0]["keypoint"]
    assert len(recognizer.predict(short, stride=5).windows) == 1
    assert recognizer.predict(short, window=10_000).window == short.shape[1]


def test_windows_without_a_person(recognizer, clips):
    kp = _long_clip(clips, 300).copy()
    kp[:, :100] = 0  # nobody during the first 100 frames
    pred = recognizer.predict(kp, window=100, stride=100)
    assert [w.has_person for w in pred.windows] == [False, True, True]
    assert pred.windows[0].probabilities is None and pred.windows[0].topk == []
    np.testing.assert_allclose(
        pred.probabilities, (pred.windows[1].probabilities + pred.windows[2].probabilities) / 2
    )
    # Such predictions still serialise and plot.
    assert Prediction.from_dict(json.loads(pred.to_json())).to_dict() == pred.to_dict()


def test_json_round_trip(recognizer, clips, tmp_path):
    pred = recognizer.predict(_long_clip(clips, 360), window=120, stride=60, topk=4)
    data = pred.to_dict()
    text = json.dumps(data)  # plain JSON types only
    again = Prediction.from_dict(json.loads(text))
    assert again.to_dict() == data
    np.testing.assert_array_equal(again.probabilities, pred.probabilities)
    assert data["label"] == pred.label and data["topk"][0]["probability"] == pred.score
    assert len(data["windows"]) == len(pred.windows) and data["windows"][1]["start_time"] == pytest.approx(
        2.0
    )
    path = pred.save_json(tmp_path / "p.json")
    assert Prediction.load_json(path).to_dict() == data


def _regression_prediction() -> Prediction:
    """A long-video regression model's answer as the long-video predictor builds one: the model on
    the whole video, two targets, segment values that are not averaged into the answer."""
    from lightact.inference import ClassScore, WindowPrediction

    values = np.array([2.5, -0.75])
    windows = [
        WindowPrediction(0, 120, 0.0, 30.0, np.array([2.0, -1.0]), []),
        WindowPrediction(60, 180, 15.0, 45.0, np.array([4.0, 0.5]), []),
    ]
    return Prediction(
        source="match.mp4",
        classes=["speed", "tilt"],
        probabilities=values,
        topk=[ClassScore("speed", 0, 2.5), ClassScore("tilt", 1, -0.75)],
        windows=windows,
        fps=4.0,
        num_frames=180,
        window=120,
        stride=60,
        task="regression",
        whole_video=True,
    )


def test_task_and_whole_video_answer_round_trip_through_json(tmp_path):
    from rich.console import Console

    pred = _regression_prediction()
    data = json.loads(pred.to_json())
    assert (data["task"], data["whole_video"], data["layout"]) == ("regression", True, "")
    again = Prediction.load_json(pred.save_json(tmp_path / "p.json"))
    assert (again.task, again.whole_video) == ("regression", True)
    assert again.to_dict() == pred.to_dict()
    # What was read back prints and plots as a regression on the whole video, not as a mean of windows.
    console = Console(file=io.StringIO(), width=120)
    console.print(again.table())
    text = console.file.getvalue()
    assert "speed 2.5, tilt -0.75" in text and "the model on the whole video (2 segments" in text
    assert "mean of" not in text
    assert again.save_timeline(tmp_path / "t.png").stat().st_size > 5_000
    # A file written before the fields existed reads as a classification averaged over its windows.
    for key in ("task", "whole_video"):
        del data[key]
    old = Prediction.from_dict(data)
    assert (old.task, old.whole_video) == ("classification", False)
    with pytest.raises(ValueError, match="unknown task 'ranking'"):
        Prediction.from_dict({**data, "task": "ranking"})


def test_timeline_png_and_table(recognizer, clips, tmp_path):
    from rich.console import Console

    pred = recognizer.predict(_long_clip(clips, 360), window=120, stride=60)
    path = pred.save_timeline(tmp_path / "sub" / "timeline.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000
    single = recognizer.predict(clips[0]["keypoint"])
    assert single.save_timeline(tmp_path / "one.png").stat().st_size > 5_000

    console = Console(file=io.StringIO(), width=120)
    table = pred.table()
    assert table.row_count == len(pred.topk)
    console.print(table)
    console.print(pred.table(windows=True))
    text = console.file.getvalue()
    assert pred.label in text and "window" in text


def test_annotation_pickle_and_npy_inputs(recognizer, clips, tmp_path):
    ann = {**clips[2], "fps": 15.0}
    pred = recognizer.predict(ann)
    assert pred.sample == clips[2]["frame_dir"] and pred.fps == 15.0
    assert pred.windows[0].end_time == pytest.approx(ann["keypoint"].shape[1] / 15)
    assert recognizer.predict(ann, fps=60).fps == 60.0

    save_pickle({"annotations": clips[:3], "split": {}}, tmp_path / "three.pkl")
    many = recognizer.predict(tmp_path / "three.pkl")
    assert isinstance(many, list) and [p.sample for p in many] == [c["frame_dir"] for c in clips[:3]]
    for p, clip in zip(many, clips[:3], strict=True):
        np.testing.assert_allclose(p.probabilities, recognizer.predict(clip["keypoint"]).probabilities)
    save_pickle(clips[4], tmp_path / "one.pkl")
    (one,) = recognizer.predict(str(tmp_path / "one.pkl"))
    assert one.source == str(tmp_path / "one.pkl")

    np.save(tmp_path / "clip.npy", clips[5]["keypoint"])
    from_npy = recognizer.predict(tmp_path / "clip.npy")
    np.testing.assert_allclose(from_npy.probabilities, recognizer.predict(clips[5]["keypoint"]).probabilities)
    # One person given as [T, V, C].
    assert recognizer.predict(clips[5]["keypoint"][0]).probabilities.sum() == pytest.approx(1, abs=1e-5)


def test_predict_path_on_a_folder(recognizer, work_dir, clips, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    save_pickle({"annotations": clips[:2]}, inputs / "a.pkl")
    np.save(inputs / "b.npy", _long_clip(clips, 330))
    (inputs / "notes.txt").write_text("not an input")
    out = tmp_path / "out"
    preds = predict_path(work_dir, inputs, window=None, stride=None, topk=3, out_dir=out)
    assert [p.sample for p in preds] == [clips[0]["frame_dir"], clips[1]["frame_dir"], None]
    # 330 frames: windows at 0, 75, 150 and one ending at the last frame.
    assert [w.start_frame for w in preds[2].windows] == [0, 75, 150, 180]
    names = sorted(p.name for p in out.iterdir())
    stems = [f"a_{clips[0]['frame_dir']}", f"a_{clips[1]['frame_dir']}", "b"]
    assert names == sorted([f"{s}.json" for s in stems] + [f"{s}_timeline.png" for s in stems])
    data = json.loads((out / "b.json").read_text())
    assert data["num_frames"] == 330 and len(data["topk"]) == 3
    # A single file, with an already-loaded recogniser; no out_dir writes nothing.
    (single,) = predict_path(recognizer, inputs / "b.npy", topk=3)
    assert single.to_dict() == preds[2].to_dict()


# ---------------------------------------------------------------------------------------------------
# video input (pose extraction stubbed)


def test_video_is_posed_and_retargeted(recognizer, clips, fake_pose, tmp_path):
    video = tmp_path / "person.mp4"
    video.write_bytes(b"\x00 not decoded: extract_pose is stubbed")
    ntu = clips[6]["keypoint"]
    fake_pose.result = _mediapipe_annotation(ntu, fps=25.0)
    pred = recognizer.predict(video, topk=3)
    assert fake_pose.calls == [str(video)]
    # Poses at 10 per second, the second person searched every 5th, decoding overlapped.
    assert fake_pose.options == {"pose_fps": 10.0, "second_search_every": 5, "overlap": True}
    # The 25 fps poses reach the model at the 30 fps it was trained at.
    assert (pred.layout, pred.input_layout, pred.fps, pred.source) == (
        "ntu25",
        "mediapipe33",
        30.0,
        str(video),
    )
    assert pred.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    frames = int((ntu.shape[1] - 1) / 25 * 30) + 1
    assert pred.num_frames == frames and pred.windows[0].end_time == pytest.approx(frames / 30)
    # Identical to classifying the resampled, retargeted skeleton directly.
    from lightact.data.skeleton.resample import resample_poses
    from lightact.data.skeleton.retarget import retarget

    direct = recognizer.predict(retarget(resample_poses(fake_pose.result, 30.0), "ntu25"), fps=30)
    np.testing.assert_allclose(pred.probabilities, direct.probabilities)

    preds = predict_path(recognizer, tmp_path, out_dir=tmp_path / "out")
    assert len(preds) == 1 and (tmp_path / "out" / "person.json").is_file()
    assert (tmp_path / "out" / "person_timeline.png").is_file()


def test_video_for_a_mediapipe_model_uses_image_keypoints_and_scores(tmp_path, clips, fake_pose):
    ckpt = _hand_made_checkpoint(
        tmp_path / "mp",
        "star_64",
        MEDIAPIPE33,
        9,
        ["a", "b", "c"],
        config={"data": {"test_transforms": []}},
        dim=8,
        depth=1,
        heads=2,
    )
    rec = Recognizer.from_checkpoint(ckpt)
    assert rec.layout.name == "mediapipe33" and rec.channels == 3
    video = tmp_path / "clip.webm"
    video.write_bytes(b"stub")
    fake_pose.result = _mediapipe_annotation(clips[0]["keypoint"][:1])
    pred = rec.predict(video)
    assert pred.input_layout is None and pred.classes == ["a", "b", "c"]
    from lightact.data.skeleton.resample import resample_poses

    ann = resample_poses(fake_pose.result, 30.0)  # 25 fps poses at the model's 30 fps
    direct = rec.predict({"keypoint": ann["keypoint"], "keypoint_score": ann["keypoint_score"]})
    np.testing.assert_allclose(pred.probabilities, direct.probabilities)
    # An NTU skeleton cannot be read by it.
    with pytest.raises(PredictionInputError, match="cannot read layout 'ntu25'"):
        rec.predict(clips[0]["keypoint"])


def test_video_without_anybody(recognizer, fake_pose, tmp_path):
    video = tmp_path / "empty.mp4"
    video.write_bytes(b"stub")
    for persons in (0, 2):
        empty = _mediapipe_annotation(np.zeros((persons, 40, 25, 3), np.float32))
        fake_pose.result = empty
        with pytest.raises(NoPersonError, match=f"no person was found in {video}"):
            recognizer.predict(video)


def test_video_without_the_pose_extractor(recognizer, monkeypatch, tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"stub")
    monkeypatch.setitem(sys.modules, "lightact.data.skeleton.pose", None)  # the import fails
    with pytest.raises(PredictionInputError, match="pose extractor"):
        recognizer.predict(video)
    # The module imports but MediaPipe is missing when it runs.
    module = types.ModuleType("lightact.data.skeleton.pose")

    def extract_pose(video, max_persons=2, max_side=640, **options):
        raise ImportError("pose extraction needs MediaPipe: pip install 'lightact[pose]'")

    module.extract_pose = extract_pose
    monkeypatch.setitem(sys.modules, "lightact.data.skeleton.pose", module)
    with pytest.raises(PredictionInputError, match=r"needs MediaPipe: .*lightact\[pose\]"):
        recognizer.predict(video)


# ---------------------------------------------------------------------------------------------------
# a padded model (ST-GCN)


def test_padded_model(tmp_path, clips):
    ckpt = _hand_made_checkpoint(
        tmp_path / "gcn",
        "stgcn",
        NTU25,
        3,
        ["x", "y"],
        config={"data": {"test_transforms": [], "max_frames": 64}, "eval": {"clip_len": None}},
    )
    rec = Recognizer.from_checkpoint(ckpt)
    assert rec.input_format == "padded" and rec.max_frames == 64
    one_person = clips[0]["keypoint"][:1, :100]
    pred = rec.predict(one_person)
    assert pred.window == 64 and [w.start_frame for w in pred.windows] == [0, 32, 36]
    assert pred.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    # Reference: the padded tensor [N, C, T, V, M] with the empty second person slot.
    x = np.concatenate([one_person[:, :64], np.zeros_like(one_person[:, :64])]).transpose(3, 1, 2, 0)
    with torch.no_grad():
        expected = rec.model(torch.from_numpy(np.ascontiguousarray(x))[None]).softmax(-1)[0].numpy()
    np.testing.assert_allclose(pred.windows[0].probabilities, expected, rtol=1e-5, atol=1e-6)
    with pytest.warns(UserWarning, match="sees only the first 64"):
        rec.predict(one_person, window=80)


def test_checkpoint_without_config_warns(tmp_path, clips):
    ckpt = _hand_made_checkpoint(tmp_path / "bare", "star_64", NTU25, 9, ["x", "y"], dim=8, depth=1, heads=2)
    with pytest.warns(UserWarning, match="no config.yaml"):
        rec = Recognizer.from_checkpoint(ckpt / "model.safetensors")
    assert len(rec.transform) == 0
    assert rec.predict(clips[0]["keypoint"]).probabilities.sum() == pytest.approx(1.0, abs=1e-5)


# ---------------------------------------------------------------------------------------------------
# errors


def test_no_person(recognizer, clips, tmp_path):
    with pytest.raises(NoPersonError, match="no person was found in array"):
        recognizer.predict(np.zeros((2, 50, 25, 3), np.float32))
    with pytest.raises(NoPersonError, match="no person was found"):
        recognizer.predict(np.zeros((2, 0, 25, 3), np.float32))
    empty = {**clips[0], "keypoint": np.zeros_like(clips[0]["keypoint"])}
    save_pickle({"annotations": [empty]}, tmp_path / "empty.pkl")
    with pytest.raises(NoPersonError, match=f"no person was found in {tmp_path / 'empty.pkl'}"):
        recognizer.predict(tmp_path / "empty.pkl")
    # In a file of several samples the empty ones are skipped, as training skips them.
    save_pickle({"annotations": [empty, clips[1]]}, tmp_path / "mixed.pkl")
    with pytest.warns(UserWarning, match="skipping 1 sample"):
        preds = recognizer.predict(tmp_path / "mixed.pkl")
    assert [p.sample for p in preds] == [clips[1]["frame_dir"]]
    assert issubclass(NoPersonError, ValueError)


def test_wrong_joint_count_names_the_layout(recognizer):
    with pytest.raises(PredictionInputError, match=r"20 joints per frame.*layout 'ntu25' with 25 joints"):
        recognizer.predict(np.ones((1, 30, 20, 3), np.float32))
    # 17 joints look like COCO: no mapping from it to NTU.
    with pytest.raises(
        PredictionInputError, match="a model trained on layout 'ntu25' cannot read layout 'coco17'"
    ):
        recognizer.predict(np.ones((1, 30, 17, 3), np.float32))
    # MediaPipe without its 3D landmarks.
    with pytest.raises(PredictionInputError, match="keypoint_3d"):
        recognizer.predict({"keypoint": np.ones((1, 30, 33, 2), np.float32), "layout": "mediapipe33"})


def test_wrong_channels_and_shapes(recognizer):
    with pytest.raises(PredictionInputError, match="expects 3 values per joint"):
        recognizer.predict(np.ones((1, 30, 25, 2), np.float32))
    with pytest.raises(PredictionInputError, match=r"\[M persons, T frames"):
        recognizer.predict(np.ones((30, 25), np.float32))
    with pytest.raises(PredictionInputError, match="NaN"):
        recognizer.predict(np.full((1, 30, 25, 3), np.nan, np.float32))
    with pytest.raises(PredictionInputError, match="cannot classify a int"):
        recognizer.predict(3)
    with pytest.raises(ValueError, match="window must be a positive"):
        recognizer.predict(np.ones((1, 30, 25, 3)), window=0)
    with pytest.raises(ValueError, match="topk"):
        recognizer.predict(np.ones((1, 30, 25, 3)), topk=0)


def test_bad_input_paths(recognizer, tmp_path):
    with pytest.raises(FileNotFoundError, match="no input at"):
        recognizer.predict(tmp_path / "missing.pkl")
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(PredictionInputError, match="unsupported file type .txt"):
        recognizer.predict(tmp_path / "a.txt")
    with pytest.raises(PredictionInputError, match="holds no skeleton"):
        predict_path(recognizer, tmp_path)
    (tmp_path / "bad.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a readable pickle"):
        recognizer.predict(tmp_path / "bad.pkl")
    # A pickle that would run code is refused, not loaded.
    import pickle

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"keypoint": Path("x")}))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        recognizer.predict(tmp_path / "evil.pkl")
    np.save(tmp_path / "ok.npy", np.ones((1, 20, 25, 3), np.float32))
    with pytest.warns(UserWarning, match="skipping") as caught:
        preds = predict_path(recognizer, tmp_path, skip_errors=True)
    skipped = sorted(str(w.message).split(":")[0].rsplit("/", 1)[-1] for w in caught)
    assert skipped == ["bad.pkl", "evil.pkl"]
    assert [Path(p.source).name for p in preds] == ["ok.npy"]


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        Recognizer.from_checkpoint(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no model weights at"):
        Recognizer.from_checkpoint(tmp_path)


def test_checkpoint_that_is_not_lightacts(tmp_path, work_dir):
    from safetensors.torch import save_file

    junk = tmp_path / "junk" / "model.safetensors"
    junk.parent.mkdir()
    junk.write_bytes(b"definitely not safetensors")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        Recognizer.from_checkpoint(junk.parent)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ValueError, match="not written by lightact"):
        Recognizer.from_checkpoint(foreign)
    # Lightning's resume checkpoint is not the delivered model either.
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        Recognizer.from_checkpoint(work_dir / "checkpoints" / "last.ckpt")


# ---------------------------------------------------------------------------------------------------
# one entry point for every modality, and the per-file loop


def _modality_checkpoint(save_checkpoint, directory: Path, modality: str) -> Path:
    """A randomly initialised model of ``modality`` saved as training saves one."""
    from lightact.features.extract import ExtractionSettings

    if modality == "skeleton":
        return _hand_made_checkpoint(directory, "star_64", NTU25, 9, ["x", "y"], dim=8, depth=1, heads=2)
    name, kwargs, data = {
        "video": ("clip3d_tiny", {"width": 4}, {"num_frames": 4, "crop": 32}),
        "image": ("timm/resnet10t", {}, {"img_size": 32}),
        "longvideo": (
            "stan",
            {"frame_dim": 8, "clip_dim": 8, "dim": 8, "heads": 2, "depth": 1},
            {"extraction": ExtractionSettings().to_dict(), "task": "classification"},
        ),
    }[modality]
    kwargs = {"num_classes": 2, **kwargs}
    return save_checkpoint(directory, create_model(name, **kwargs), name, kwargs, ["x", "y"], data)


PREDICTOR_NAMES = {
    "skeleton": "SkeletonRecognizer",
    "video": "VideoRecognizer",
    "image": "ImageRecognizer",
    "longvideo": "LongVideoRecognizer",
}


@pytest.mark.parametrize("modality", list(PREDICTOR_NAMES))
def test_recognizer_gives_the_predictor_of_the_checkpoints_modality(modality, tmp_path, save_checkpoint):
    import lightact
    import lightact.inference as inference
    from lightact.engine.checkpoint import load_model

    checkpoint = _modality_checkpoint(save_checkpoint, tmp_path / modality, modality)
    predictor_class = getattr(inference, PREDICTOR_NAMES[modality])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the hand-made skeleton checkpoint has no test transforms
        loaded = lightact.Recognizer.from_checkpoint(checkpoint)
        built = Recognizer(*load_model(checkpoint))
    assert type(loaded) is predictor_class and type(built) is predictor_class
    assert isinstance(loaded, Recognizer) and issubclass(predictor_class, Recognizer)
    assert loaded.classes == ["x", "y"] and loaded.device == torch.device("cpu")
    # Each predictor refuses another modality's checkpoint by name.
    other = "video" if modality == "skeleton" else "skeleton"
    wrong = _modality_checkpoint(save_checkpoint, tmp_path / other, other)
    with pytest.raises(ValueError, match=f"holds a {other} model; {predictor_class.__name__} predicts with"):
        predictor_class.from_checkpoint(wrong)


def test_recognizer_refuses_an_unknown_modality_and_loads_lazily(tmp_path, save_checkpoint):
    import subprocess

    from lightact.engine.checkpoint import load_model

    model, meta = load_model(_modality_checkpoint(save_checkpoint, tmp_path / "v", "video"))
    with pytest.raises(ValueError, match="no predictor for .audio. models: lightact predicts skeleton"):
        Recognizer(model, {**meta, "modality": "audio"})
    # Only the checkpoint's own predictor module is imported.
    code = (
        "import sys, lightact\n"
        f"lightact.Recognizer.from_checkpoint({str(tmp_path / 'v')!r})\n"
        "print(sorted(m for m in sys.modules if m.startswith('lightact.inference.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "lightact.inference.video" in out
    assert not any(f"lightact.inference.{m}'" in out for m in ("skeleton", "image", "longvideo"))


def _stub_prediction(source: str, sample: str | None) -> Prediction:
    from lightact.inference import ClassScore, WindowPrediction

    p = np.array([0.75, 0.25])
    top = [ClassScore("x", 0, 0.75), ClassScore("y", 1, 0.25)]
    window = WindowPrediction(0, 30, 0.0, 1.0, p, top)
    return Prediction(source, ["x", "y"], p, top, [window], 30.0, 30, 30, 15, sample=sample)


def test_predict_each_names_every_sample_of_a_file(tmp_path):
    """The names predict_path gave before it shared this loop: a file's stem; a file of several
    samples adds ``_<sample>`` (or a running number for a sample without a name); collisions are
    numbered."""
    from lightact.inference.files import predict_each

    given = {
        "a.pkl": [_stub_prediction("a.pkl", "s1"), _stub_prediction("a.pkl", "s2")],
        "a_s1.npy": _stub_prediction("a_s1.npy", None),
        "b.pkl": [_stub_prediction("b.pkl", "only")],  # one sample: the stem alone
        "c.pkl": [_stub_prediction("c.pkl", None), _stub_prediction("c.pkl", None)],
        "bad.pkl": ValueError("not a readable pickle"),
    }

    def predict_one(file: Path):
        result = given[file.name]
        if isinstance(result, Exception):
            raise result
        return result

    files = [tmp_path / name for name in given]
    with pytest.warns(UserWarning, match="skipping .*bad.pkl: not a readable pickle"):
        predictions = predict_each(files, predict_one, tmp_path / "out", skip_errors=True)
    assert len(predictions) == 6
    stems = ["a_s1", "a_s2", "a_s1_2", "b", "c_4", "c_5"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [f"{s}.json" for s in stems] + [f"{s}_timeline.png" for s in stems]
    )
    assert Prediction.load_json(tmp_path / "out" / "a_s2.json").sample == "s2"
    # Without timelines only the JSON is written; one file's error propagates even with skip_errors.
    predict_each(files[2:3], predict_one, tmp_path / "json_only", skip_errors=False, timeline=False)
    assert [p.name for p in (tmp_path / "json_only").iterdir()] == ["b.json"]
    with pytest.raises(ValueError, match="not a readable pickle"):
        predict_each(files[-1:], predict_one, None, skip_errors=True)
