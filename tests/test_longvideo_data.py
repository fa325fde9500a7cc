"""Long-video data: feature extraction (streamed, resumable, deterministic, sharded), the feature
store, LVU-style CSVs, packed batches, and training through the engine."""

import csv
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from lightact.data.longvideo.dataset import (
    FeatureDataset,
    LongVideoCSVError,
    collate_features,
    read_lvu_csv,
    subsample,
)
from lightact.data.longvideo.store import (
    FeatureStoreError,
    VideoFeatures,
    read_features,
    write_features,
)
from lightact.data.synthetic.longvideo import SynthLongVideoSpec, generate_longvideo_dataset, render_video
from lightact.features.extract import ExtractionSettings, extract_features, shard

pytest.importorskip("av")

# Tiny encoders so that extraction takes a fraction of a second per 48-second video.
TINY = ExtractionSettings(
    frame_encoder="timm/resnet10t",
    frame_size=32,
    fps=1.0,
    clip_encoder="clip3d_tiny",
    clip_size=16,
    clip_len=4,
    clip_fps=4.0,
    clip_stride=2.0,
)
REAL_VIDEO = Path("/work/shared/data/videos/ucf_eye_makeup.avi")


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Eight 48-second 32x32 synthetic videos at 4 fps (192 frames each), with train/val CSVs."""
    root = tmp_path_factory.mktemp("synthlong")
    generate_longvideo_dataset(root, SynthLongVideoSpec(videos_per_class=2, duration_s=48.0, size=32))
    return root


@pytest.fixture(scope="module")
def store(videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("store")
    torch.set_num_threads(1)
    summary = extract_features([videos / "videos"], out, TINY, rank=0, world_size=1)
    assert summary["extracted"] == 8 and not summary["failed"]
    return out


def tensors(path):
    f = read_features(path)
    return [f.frame_features, f.frame_times, f.clip_features, f.clip_times]


def test_synthetic_videos_are_deterministic_and_long_enough():
    spec = SynthLongVideoSpec(videos_per_class=2, duration_s=48.0, size=32)
    a = np.stack(list(render_video(3, 3, spec)))
    b = np.stack(list(render_video(3, 3, spec)))
    assert a.shape == (192, 32, 32, 3)
    np.testing.assert_array_equal(a, b)
    assert SynthLongVideoSpec().duration_s >= 120  # the default set: two-minute videos
    with pytest.raises(ValueError, match="too short"):
        SynthLongVideoSpec(duration_s=40)


def test_store_layout_and_timestamps(store):
    f = read_features(store / "synthlong_00000.safetensors")
    assert f.frame_features.shape == (48, 512)  # 1 fps over 48 s; resnet10t's 512 features
    torch.testing.assert_close(f.frame_times, torch.arange(48, dtype=torch.float64))
    # A 4-frame clip at 4 fps starts every 2 s: frames at t, t + 0.25, t + 0.5, t + 0.75.
    assert f.clip_features.shape == (24, 64)
    torch.testing.assert_close(
        f.clip_times[:2], torch.tensor([[0.0, 0.75], [2.0, 2.75]], dtype=torch.float64)
    )
    assert f.meta["video_frames"] == 192 and f.meta["settings"] == TINY.to_dict()
    assert f.meta["video"].endswith("synthlong_00000.mp4")


def test_extraction_is_deterministic(videos, store, tmp_path):
    video = videos / "videos" / "synthlong_00001.mp4"
    extract_features([video], tmp_path, TINY, rank=0, world_size=1)
    for a, b in zip(
        tensors(tmp_path / "synthlong_00001.safetensors"),
        tensors(store / "synthlong_00001.safetensors"),
        strict=True,
    ):
        assert torch.equal(a, b)


def test_extraction_resumes_and_redoes_broken_files(videos, store, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    (copy / "synthlong_00002.safetensors").unlink()
    broken = copy / "synthlong_00005.safetensors"
    broken.write_bytes(broken.read_bytes()[:300])  # a copy that stopped half-way
    with pytest.raises(FeatureStoreError, match="synthlong_00005.safetensors.*(truncated|corrupt)"):
        read_features(broken)
    summary = extract_features([videos / "videos"], copy, TINY, rank=0, world_size=1)
    assert (summary["skipped"], summary["extracted"]) == (6, 2)
    for name in ("synthlong_00002.safetensors", "synthlong_00005.safetensors"):
        for a, b in zip(tensors(copy / name), tensors(store / name), strict=True):
            assert torch.equal(a, b)
    again = extract_features([videos / "videos"], copy, TINY, rank=0, world_size=1)
    assert (again["skipped"], again["extracted"]) == (8, 0)


def test_other_settings_are_refused_in_an_existing_store(videos, store):
    other = ExtractionSettings(**{**TINY.to_dict(), "fps": 2.0})
    with pytest.raises(FeatureStoreError, match="other settings.*fps"):
        extract_features([videos / "videos"], store, other, rank=0, world_size=1)


def test_sharding_is_disjoint_complete_and_order_free(videos, tmp_path, monkeypatch):
    paths = sorted((videos / "videos").glob("*.mp4"))
    shards = [shard(paths, r, 3) for r in range(3)]
    assert sorted(p for s in shards for p in s) == paths
    assert sum(len(s) for s in shards) == len(paths)
    assert [len(s) for s in shards] == [3, 3, 2]
    assert shard(list(reversed(paths)), 1, 3) == shards[1]  # same share whatever the input order
    with pytest.raises(ValueError, match="rank 3"):
        shard(paths, 3, 3)
    # Under torchrun each process reads RANK / WORLD_SIZE and writes only its share.
    written = []
    for rank in range(3):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "3")
        out = tmp_path / f"rank{rank}"
        summary = extract_features(paths[:5], out, TINY)
        written.append({p.stem for p in out.glob("*.safetensors")})
        assert summary["shard"] == len(written[-1])
    assert set.union(*written) == {p.stem for p in paths[:5]}
    assert sum(len(w) for w in written) == 5


def test_duplicate_names_and_undecodable_videos(videos, tmp_path):
    clash = tmp_path / "other" / "synthlong_00000.mp4"
    clash.parent.mkdir()
    shutil.copy(videos / "videos" / "synthlong_00000.mp4", clash)
    with pytest.raises(ValueError, match="same name 'synthlong_00000'"):
        extract_features([videos / "videos", clash], tmp_path / "s1", TINY, rank=0, world_size=1)
    # A wrong encoder name fails before the store records any settings (a corrected run can follow).
    wrong = ExtractionSettings(**{**TINY.to_dict(), "clip_encoder": "timm/resnet10t"})
    with pytest.raises(ValueError, match="is not a video model"):
        extract_features([videos / "videos"], tmp_path / "s0", wrong, rank=0, world_size=1)
    assert not (tmp_path / "s0").exists()
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    summary = extract_features(
        [bad, videos / "videos" / "synthlong_00003.mp4"], tmp_path / "s2", TINY, rank=0, world_size=1
    )
    assert summary["extracted"] == 1
    assert len(summary["failed"]) == 1 and "bad.mp4" in summary["failed"][0]["error"]


@pytest.mark.skipif(not REAL_VIDEO.is_file(), reason="real sample videos not present")
def test_real_video(tmp_path):
    # UCF-101 clip: 320x240 at 25 fps, 164 frames (6.56 s). Decoded at the encoders' size.
    extract_features([REAL_VIDEO], tmp_path, TINY, rank=0, world_size=1)
    f = read_features(tmp_path / "ucf_eye_makeup.safetensors")
    assert f.num_frames == 7  # 0, 1, ..., 6 s
    assert f.frame_times[-1] == pytest.approx(6.0)
    assert f.num_clips == 4  # starts at 0, 2, 4, 6 s; the last is cut short and completed
    assert torch.isfinite(f.clip_features).all()


def test_store_round_trip_and_bad_files(tmp_path):
    features = VideoFeatures(
        frame_features=torch.randn(5, 3),
        frame_times=torch.arange(5, dtype=torch.float64),
        clip_features=torch.randn(2, 4),
        clip_times=torch.tensor([[0.0, 1.0], [2.0, 3.0]], dtype=torch.float64),
        meta={"video": "x.mp4", "settings": {"fps": 1.0}},
    )
    path = tmp_path / "x.safetensors"
    write_features(path, features)
    back = read_features(path)
    for name in ("frame_features", "frame_times", "clip_features", "clip_times"):
        assert torch.equal(getattr(back, name), getattr(features, name))
    assert back.meta["video"] == "x.mp4" and back.meta["format_version"] == 1
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    with pytest.raises(FeatureStoreError, match="no such feature file"):
        read_features(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(FeatureStoreError, match="junk.safetensors"):
        read_features(tmp_path / "junk.safetensors")
    features.clip_times = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(FeatureStoreError, match="inconsistent"):
        write_features(tmp_path / "y.safetensors", features)


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["video_path", "label"])
        writer.writerows(rows)
    return path


def test_lvu_csv(tmp_path):
    good = write_csv(tmp_path / "a.csv", [["v/abc.mp4", 2], ["def.mp4", 0]])
    rows = read_lvu_csv(good)
    assert [(r.video, r.label) for r in rows] == [("v/abc.mp4", 2), ("def.mp4", 0)]
    reg = write_csv(tmp_path / "r.csv", [["abc.mp4", "4.25"]])
    assert read_lvu_csv(reg, task="regression")[0].label == 4.25
    bad = write_csv(tmp_path / "b.csv", [["abc.mp4", 1], ["def.mp4", "comedy"]])
    with pytest.raises(LongVideoCSVError, match=r"b\.csv:3: label 'comedy' is not an integer"):
        read_lvu_csv(bad)
    (tmp_path / "h.csv").write_text("path;label\nabc.mp4;1\n")
    with pytest.raises(LongVideoCSVError, match=r"h\.csv:1: the header"):
        read_lvu_csv(tmp_path / "h.csv")


def test_dataset_and_packed_batches(videos, store, tmp_path):
    rows = read_lvu_csv(videos / "train.csv")
    dataset = FeatureDataset(rows, store)
    assert (dataset.frame_dim, dataset.clip_dim, dataset.num_samples) == (512, 64, len(rows))
    batch = collate_features([dataset[0], dataset[(3, 1)]])
    frames, frame_times, frame_lengths, clips, clip_times, clip_lengths = batch.inputs
    assert frame_lengths.tolist() == [48, 48] and clip_lengths.tolist() == [24, 24]
    assert frames.shape == (96, 512) and clips.shape == (48, 64)
    assert clip_times[:2].tolist() == [0.375, 2.375]  # clip centres
    assert batch.labels.dtype == torch.long and batch.sample_index.tolist() == [0, 1]
    # Training subsamples evenly over the whole video, seeded by (seed, epoch, index).
    capped = FeatureDataset(rows, store, train=True, max_frames=10, max_clips=5)
    a, b, c = capped[(0, 2)], capped[(0, 2)], capped[(1, 2)]
    assert len(a["frames"]) == 10 and torch.equal(a["frame_times"], b["frame_times"])
    assert not torch.equal(a["frame_times"], c["frame_times"])
    assert a["frame_times"].min() < 5 and a["frame_times"].max() >= 43
    assert subsample(7, None, None).tolist() == list(range(7))
    missing = write_csv(tmp_path / "m.csv", [["nowhere.mp4", 0]])
    with pytest.raises(FeatureStoreError, match="nowhere.safetensors.*extract-features"):
        FeatureDataset(read_lvu_csv(missing), store)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_training_through_the_engine(videos, store, tmp_path, task):
    from lightact.config import load_config
    from lightact.engine.train import train

    rows = {}
    for split in ("train", "val"):
        items = [(r.video, r.label) for r in read_lvu_csv(videos / f"{split}.csv")]
        if task == "regression":
            items = [(video, 0.5 * label + 1.0) for video, label in items]
        rows[split] = write_csv(tmp_path / f"{split}.csv", items)
    overrides = [
        "data.kind=longvideo",
        f"data.store={store}",
        f"data.train_csv={rows['train']}",
        f"data.val_csv={rows['val']}",
        f"data.task={task}",
        "data.batch_size=4",
        "model.name=stan",
        "model.dim=16",
        "model.heads=2",
        "model.depth=1",
        "trainer.max_epochs=2",
        "trainer.progress_bar=false",
        "trainer.num_threads=1",
        f"work_dir={tmp_path / 'run'}",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        work_dir = train(load_config(None, overrides))
    import json

    metrics = json.loads((work_dir / "metrics.json").read_text())
    if task == "regression":
        assert metrics["task"] == "regression" and np.isfinite(metrics["mse"])
    else:
        assert 0.0 <= metrics["top1"] <= 1.0
    # What a predictor needs to encode a new video as the store was encoded (test_inference_longvideo.py).
    from lightact.engine.checkpoint import load_model

    _, meta = load_model(work_dir)
    assert meta["data"] == {"extraction": TINY.to_dict(), "task": task} and meta["task"] == task
