"""Video clips: sampling, the seeking decoder, annotation formats, transforms, the data module."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from lightact.data.synthetic.video import (
    CLASSES,
    TEMPORAL_PAIRS,
    generate_video_dataset,
    render_clip,
    write_video_dataset,
)
from lightact.data.video.clips import count_folder_frames, read_clip, read_frame_folder
from lightact.data.video.datasets import (
    VideoClipDataset,
    VideoRecord,
    load_records,
    read_diving48,
    read_kinetics_csv,
    read_ssv2,
    read_video_list,
)
from lightact.data.video.reader import VideoDecodeError, iter_frames
from lightact.data.video.sampling import clip_indices, dense_indices, uniform_indices
from lightact.data.video.transforms import (
    MixupCutmix,
    flip_label_map,
    hflip,
    normalize,
    random_resized_crop,
    resize_short_side,
    spatial_crops,
)

torch.set_num_threads(1)
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth_video")
    write_video_dataset(out, samples_per_class=2, seed=3, num_frames=24, size=64, val_fraction=0.5)
    return out


# ----------------------------------------------------------------------------- sampling


def test_uniform_sampling_one_frame_per_segment() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = uniform_indices(100, 8, train=True, rng=rng)
        segment = np.floor(np.arange(8) * 12.5).astype(int)
        assert ((idx >= segment) & (idx < segment + 13)).all() and (np.diff(idx) > 0).all()
    assert uniform_indices(100, 8, train=False).tolist() == [6, 18, 31, 43, 56, 68, 81, 93]
    # test views: each view picks a different fraction of every segment
    views = [uniform_indices(80, 4, False, view=v, num_views=2).tolist() for v in range(2)]
    assert views == [[5, 25, 45, 65], [15, 35, 55, 75]]
    assert uniform_indices(3, 6, train=False).tolist() == [0, 0, 1, 1, 2, 2]  # shorter than the clip


def test_dense_sampling_interval_start_and_loop() -> None:
    rng = np.random.default_rng(1)
    starts = set()
    for _ in range(50):
        idx = dense_indices(100, 8, 4, train=True, rng=rng)
        assert (np.diff(idx) == 4).all() and idx[0] <= 100 - 29
        starts.add(int(idx[0]))
    assert len(starts) > 10
    assert dense_indices(100, 8, 4, train=False).tolist() == list(range(35, 35 + 32, 4))  # centre clip
    three = [dense_indices(100, 4, 2, False, view=v, num_views=3)[0] for v in range(3)]
    assert three == [15, 46, 78] or three[0] < three[1] < three[2]
    assert dense_indices(5, 4, 2, train=False).tolist() == [0, 2, 4, 1]  # loops over a short video
    with pytest.raises(ValueError, match="sampling mode"):
        clip_indices("random", 10, 4, False)
    with pytest.raises(ValueError, match="random generator"):
        uniform_indices(10, 4, train=True)


# ----------------------------------------------------------------------------- decoding


def _full_decode(path: Path) -> list[torch.Tensor]:
    return [torch.from_numpy(f).permute(2, 0, 1) for f in iter_frames(path)]


def _check_seeking(path: Path, full: list[torch.Tensor], rng: np.random.Generator) -> None:
    n = len(full)
    sets = [
        np.sort(rng.choice(n, min(8, n), replace=False)),
        uniform_indices(n, 8, False),
        dense_indices(n, 4, 2, True, rng),
        np.array([n - 1, 0, n // 2, n // 2]),  # any order, repeats
    ]
    for wanted in sets:
        clip, used = read_clip(path, wanted)
        assert used.tolist() == wanted.tolist()
        for k, i in enumerate(used):
            assert torch.equal(clip[k], full[i]), f"{path.name}: frame {i}"


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/data/videos is not present")
@pytest.mark.parametrize("name", ["kinetics_arm_wrestling.mp4", "ucf_eye_makeup.avi"])
def test_seeking_decoder_matches_full_decode_on_real_videos(name: str) -> None:
    path = REAL / name
    _check_seeking(path, _full_decode(path), np.random.default_rng(0))


def test_seeking_decoder_matches_full_decode_on_synthetic_mp4(synth_dir: Path) -> None:
    for path in sorted((synth_dir / "videos" / "train").glob("*.mp4"))[:3]:
        full = _full_decode(path)
        assert len(full) == 24
        _check_seeking(path, full, np.random.default_rng(1))
    clip, _ = read_clip(path, [0, 5], short_side=32)
    assert clip.shape == (2, 3, 32, 32) and clip.dtype == torch.uint8
    clip, used = read_clip(path, [30, 2])  # past the end -> the last real frame
    assert used.tolist() == [23, 2]


def test_corrupt_and_missing_videos_raise_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)
    with pytest.raises(VideoDecodeError, match="broken.mp4"):
        read_clip(bad, [0])
    with pytest.raises(VideoDecodeError, match="no such"):
        read_clip(tmp_path / "missing.mp4", [0])


def test_frame_folders(tmp_path: Path) -> None:
    from torchvision.io import decode_jpeg, read_file, write_jpeg

    clip = render_clip(0, np.random.default_rng(0), num_frames=6, size=48)
    folder = tmp_path / "vid1"
    folder.mkdir()
    for i, frame in enumerate(clip, 1):
        write_jpeg(torch.from_numpy(frame).permute(2, 0, 1).contiguous(), str(folder / f"img_{i:05d}.jpg"))
    assert count_folder_frames(folder) == 6
    out, used = read_frame_folder(folder, [5, 0, 2])
    for k, i in enumerate(used):
        assert torch.equal(out[k], decode_jpeg(read_file(str(folder / f"img_{i + 1:05d}.jpg"))))
    (tmp_path / "list.txt").write_text("vid1 6 3\n")
    records = read_video_list(tmp_path / "list.txt")
    assert records[0].frame_dir and records[0].num_frames == 6 and records[0].label == 3
    dataset = VideoClipDataset(records, clip_len=4, train=False, crop=32, resize=40)
    item = dataset[(0, 0)]
    assert item["clip"].shape == (4, 3, 32, 32) and item["label"] == 3


# ----------------------------------------------------------------------------- datasets


def test_corrupt_video_is_skipped_and_counted(synth_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    good = sorted((synth_dir / "videos" / "train").glob("*.mp4"))[:2]
    records = [VideoRecord(good[0], 0), VideoRecord(bad, 1), VideoRecord(good[1], 2)]
    train = VideoClipDataset(records, clip_len=4, train=True, crop=48, resize=48)
    with pytest.warns(UserWarning, match="bad.mp4"):
        item = train[(0, 1)]
    assert item["failed"] == [str(bad)] and item["label"] == 2  # replaced by the next video
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per video, not at every epoch
        assert train[(1, 1)]["failed"] == [str(bad)]
    test = VideoClipDataset(records, clip_len=4, train=False, crop=48, resize=48, num_clips=2)
    with pytest.warns(UserWarning):
        items = [test[(0, i)] for i in range(len(test))]
    assert len(items) == 6 and [it["clip"] is None for it in items] == [
        False,
        False,
        True,
        True,
        False,
        False,
    ]

    from lightact.engine.video_data import VideoDataModule

    class _Cfg:  # just what collate reads
        mean, std, crop, num_frames = (0.5,) * 3, (0.5,) * 3, 48, 4
        mixup_alpha = cutmix_alpha = 0.0

    module = VideoDataModule.__new__(VideoDataModule)
    module.cfg, module.seed = _Cfg(), 0
    module.__dict__["_mix"] = None
    batch = module.collate(items)
    assert len(batch) == 4 and batch.skipped == [str(bad), str(bad)]
    assert batch.sample_index.tolist() == [0, 0, 2, 2]
    assert batch.inputs[0].shape == (4, 3, 4, 48, 48)


def test_video_list_kinetics_ssv2_diving48(tmp_path: Path) -> None:
    (tmp_path / "a b.mp4").touch()
    (tmp_path / "list.txt").write_text("# comment\na b.mp4 1\nsub/c.mp4 -1\n")
    records = read_video_list(tmp_path / "list.txt")
    assert [(r.path.name, r.label) for r in records] == [("a b.mp4", 1), ("c.mp4", -1)]
    (tmp_path / "bad.txt").write_text("only_a_path\n")
    with pytest.raises(ValueError, match="bad.txt, line 1"):
        read_video_list(tmp_path / "bad.txt")

    train_csv = tmp_path / "train.csv"
    train_csv.write_text(
        "label,youtube_id,time_start,time_end,split\n"
        "zumba,abc,10,20,train\narm wrestling,xyz,0,10,train\nzumba,def,5,15,train\n"
    )
    (tmp_path / "k" / "zumba").mkdir(parents=True)
    (tmp_path / "k" / "zumba" / "abc_000010_000020.mp4").touch()
    records, classes = read_kinetics_csv(train_csv, tmp_path / "k")
    assert classes == ["arm wrestling", "zumba"]
    assert [r.label for r in records] == [1, 0, 1]
    assert records[0].path == tmp_path / "k" / "zumba" / "abc_000010_000020.mp4"  # per-label folder
    assert records[1].path == tmp_path / "k" / "xyz_000000_000010.mp4"  # flat layout
    val_csv = tmp_path / "val.csv"
    val_csv.write_text("label,youtube_id,time_start,time_end,split\nzumba,q,1,11,val\n")
    records, _ = load_records("kinetics", val_csv, tmp_path / "k", classes=classes)
    assert records[0].label == 1
    val_csv.write_text("label,youtube_id,time_start,time_end,split\nballet,q,1,11,val\n")
    with pytest.raises(ValueError, match="ballet"):
        read_kinetics_csv(val_csv, tmp_path, classes)

    labels = {"Pushing something from left to right": "1", "Pushing something from right to left": "0"}
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    entries = [
        {
            "id": "42",
            "label": "pushing a cup from left to right",
            "template": "Pushing [something] from left to right",
            "placeholders": ["a cup"],
        },
        {"id": "7", "template": "Pushing [something] from right to left"},
    ]
    (tmp_path / "train.json").write_text(json.dumps(entries))
    records, classes = read_ssv2(tmp_path / "train.json", tmp_path / "labels.json", tmp_path / "ssv2")
    assert classes == ["Pushing something from right to left", "Pushing something from left to right"]
    assert [(r.path.name, r.label) for r in records] == [("42.webm", 1), ("7.webm", 0)]
    assert flip_label_map(classes) == {0: 1, 1: 0}

    dive = [{"vid_name": "v1", "label": 1, "start_frame": 3, "end_frame": 40}]
    (tmp_path / "d.json").write_text(json.dumps(dive))
    (tmp_path / "vocab.json").write_text(
        json.dumps([["Back", "15som", "NoTwis", "PIKE"], ["Inward", "25som", "NoTwis", "TUCK"]])
    )
    records, classes = read_diving48(tmp_path / "d.json", tmp_path / "rgb", tmp_path / "vocab.json")
    assert records[0].path == tmp_path / "rgb" / "v1.mp4" and (records[0].start, records[0].end) == (3, 40)
    assert classes[1] == "Inward / 25som / NoTwis / TUCK"
    with pytest.raises(FileNotFoundError, match="nothere.json"):
        load_records("ssv2", tmp_path / "nothere.json", tmp_path, tmp_path / "labels.json")


# ----------------------------------------------------------------------------- transforms


def test_flip_swaps_left_right_labels() -> None:
    swap = flip_label_map(CLASSES)
    left_right, right_left = CLASSES.index(TEMPORAL_PAIRS[0][0]), CLASSES.index(TEMPORAL_PAIRS[0][1])
    cw, acw = CLASSES.index("turning something clockwise"), CLASSES.index("turning something anticlockwise")
    assert swap == {left_right: right_left, right_left: left_right, cw: acw, acw: cw}
    clip = torch.arange(2 * 3 * 4 * 5, dtype=torch.uint8).reshape(2, 3, 4, 5)
    flipped, label = hflip(clip, left_right, swap)
    assert label == right_left and torch.equal(flipped[..., 0], clip[..., -1])
    assert hflip(clip, 12, swap)[1] == 12


def test_transform_shapes_and_values() -> None:
    rng = np.random.default_rng(0)
    clip = torch.randint(0, 256, (4, 3, 60, 80), dtype=torch.uint8)
    assert resize_short_side(clip, 30).shape == (4, 3, 30, 40)
    static = torch.randint(0, 256, (1, 3, 60, 80), dtype=torch.uint8).expand(5, -1, -1, -1)
    crop = random_resized_crop(static, 32, rng)
    assert crop.shape == (5, 3, 32, 32) and crop.dtype == torch.uint8
    assert all(torch.equal(crop[0], crop[t]) for t in range(5))  # one box for every frame
    crops = spatial_crops(clip, 60, 3)
    assert [c.shape[-1] for c in crops] == [60, 60, 60]
    assert torch.equal(crops[0], clip[..., :60]) and torch.equal(crops[2], clip[..., 20:])
    x = normalize(clip.unsqueeze(0), (0.5, 0.25, 0.0), (0.5, 0.5, 1.0))
    assert x.shape == (1, 3, 4, 60, 80)
    expected = (clip[2, 1].float() / 255 - 0.25) / 0.5
    torch.testing.assert_close(x[0, 1, 2], expected)
    with pytest.raises(ValueError, match="uint8"):
        normalize(clip.float(), (0, 0, 0), (1, 1, 1))


def test_mixup_cutmix_on_clips_is_seeded_and_framewise() -> None:
    mix = MixupCutmix(num_classes=4, mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.1)
    clips = torch.stack([torch.full((3, 4, 16, 16), float(i)) for i in range(5)])  # odd batch
    labels = torch.tensor([0, 1, 2, 3, 0])
    a, ta = mix(clips.clone(), labels, np.random.default_rng(5))
    b, tb = mix(clips.clone(), labels, np.random.default_rng(5))
    assert torch.equal(a, b) and torch.equal(ta, tb)
    torch.testing.assert_close(ta.sum(-1), torch.ones(5))
    assert torch.equal(a[4], clips[4]) and ta[4].argmax() == 0  # the odd one out is left alone
    for t in range(1, 4):
        assert torch.equal(a[:, :, t], a[:, :, 0])  # the same box in every frame
    pasted = (a[0] != 0).float().mean()
    assert 0 < pasted < 1 and ta[0, 3] > 0.05  # clip 0 got a box of clip 3 (the flipped batch)


# ----------------------------------------------------------------------------- synthetic data


def test_synthetic_videos_are_deterministic_and_balanced() -> None:
    a = generate_video_dataset(samples_per_class=2, seed=1, num_frames=8, size=48)
    b = generate_video_dataset(samples_per_class=2, seed=1, num_frames=8, size=48)
    assert len(a.classes) == 16 and len(a.temporal_labels) == 10
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a.splits["train"], b.splits["train"], strict=True))
    assert a.splits["train"][0][0].shape == (8, 48, 48, 3)
    assert sorted({label for _, label in a.splits["val"]}) == list(range(16))
    c = generate_video_dataset(samples_per_class=2, seed=2, num_frames=8, size=48)
    assert not np.array_equal(a.splits["train"][0][0], c.splits["train"][0][0])


def test_cli_writes_a_trainable_video_list(synth_dir: Path) -> None:
    records = read_video_list(synth_dir / "train.txt")
    assert len(records) == 16 and all(r.path.is_file() for r in records)
    names = (synth_dir / "classes.txt").read_text().split("\n")[:16]
    assert names == list(CLASSES)


# ----------------------------------------------------------------------------- engine, end to end

TINY_VIDEO = [
    "name=pst_xs_tiny",
    "model.name=pst_xs",
    "model.embed_dim=16",
    "model.depths=[2]",
    "model.num_heads=[2]",
    "data.kind=video",
    "data.synth.samples_per_class=2",
    "data.synth.num_frames=8",
    "data.synth.size=32",
    "data.num_frames=4",
    "data.resize=32",
    "data.crop=32",
    "data.batch_size=8",
    "data.cutmix_alpha=1.0",
    "trainer.max_epochs=1",
    "trainer.progress_bar=false",
    "trainer.num_threads=1",
    "eval.num_clips=2",
    "eval.num_crops=1",
]


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_tiny_pst_trains_and_evaluates_through_the_engine(tmp_path: Path, precision: str) -> None:
    """Prediction with such a checkpoint is tested in test_inference_video.py."""
    from lightact.config import load_config
    from lightact.engine.checkpoint import load_model
    from lightact.engine.train import train

    threads = torch.get_num_threads()
    try:
        overrides = [*TINY_VIDEO, f"work_dir={tmp_path / 'run'}", f"trainer.precision={precision}"]
        work_dir = train(load_config(None, overrides))
    finally:
        torch.set_num_threads(threads)
    metrics = json.loads((work_dir / "metrics.json").read_text())
    assert metrics["num_samples"] == 16
    model, meta = load_model(work_dir)
    assert meta["modality"] == "video" and meta["data"]["num_frames"] == 4 and len(meta["classes"]) == 16
    assert model(torch.zeros(1, 3, 4, 32, 32)).shape == (1, 16)
    assert {p.dtype for p in model.parameters()} == {torch.float32}  # mixed precision keeps fp32 weights
