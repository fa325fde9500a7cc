"""Video reader (PyAV) and MediaPipe pose extraction.

Reader tests run on small videos written here with PyAV. Pose tests need MediaPipe (the ``pose`` extra)
and are skipped without it; the real-video tests also need the clips in ``shared/data/videos`` beside
the repository and are skipped when they are absent. The three real clips are processed once, by one
parallel ``run_pose`` call shared by the tests below (about 20 s on 2 cores).
"""

from __future__ import annotations

import filecmp
import re
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from fake_pose_graphs import FakePoseGraph, square_frames  # noqa: E402

from lightact.data.skeleton.pickle_io import safe_load_pickle  # noqa: E402
from lightact.data.skeleton.pose import (  # noqa: E402
    MissingDependencyError,
    collect_videos,
    extract_pose,
    mediapipe_available,
    part_path,
    run_pose,
)
from lightact.data.skeleton.pose.mediapipe import import_mediapipe  # noqa: E402
from lightact.data.skeleton.pose.tracking import Tracker, drop_short_runs  # noqa: E402
from lightact.data.skeleton.validate import validate_annotations  # noqa: E402
from lightact.data.video import VideoDecodeError, iter_frames, scaled_size, video_info  # noqa: E402

VIDEO_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
HUG = "ntu120_hugging.avi"  # 1920x1080, 72 frames, two people walk up to each other and hug
ARM = "kinetics_arm_wrestling.mp4"  # 340x256, 280 frames, two people, close-up, one glitchy cut
EYE = "ucf_eye_makeup.avi"  # 320x240, 164 frames, one person, face close-up
REAL = (HUG, ARM, EYE)

# Measured with the defaults (max_side 640, mask_margin 0.05, min_run 3): person found in 100%, 78.6%
# and 100% of the frames; second person in 98.6% of the hugging frames and 4.3% of the one-person
# clip's. The bounds leave room for other MediaPipe builds and CPUs.
MIN_PERSON_SHARE = {HUG: 0.95, ARM: 0.70, EYE: 0.95}
MIN_HUG_SECOND_SHARE = 0.85
MAX_SINGLE_PERSON_SECOND_SHARE = 0.15

needs_mediapipe = pytest.mark.skipif(
    not mediapipe_available(), reason="MediaPipe is not installed: pip install 'lightact[pose]'"
)
needs_videos = pytest.mark.skipif(
    not all((VIDEO_DIR / name).is_file() for name in REAL),
    reason=f"the real test videos ({', '.join(REAL)}) are not in {VIDEO_DIR}",
)


def write_video(path: Path, frames: list[np.ndarray], fps: int = 10, **options: str) -> Path:
    """Encode RGB uint8 frames as MPEG-4 Part 2 (FFmpeg's own encoder, in every PyAV build);
    ``options`` are the container's (muxer options)."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), mode="w", options=options) as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())
    return path


def colour_frames(n: int, width: int = 160, height: int = 120) -> list[np.ndarray]:
    """Flat frames whose colour changes from frame to frame (red ramps up, blue down)."""
    return [
        np.broadcast_to(np.array([20 + 20 * i, 128, 230 - 20 * i], np.uint8), (height, width, 3)).copy()
        for i in range(n)
    ]


def noise_frames(n: int, width: int = 160, height: int = 120, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(n)]


# ------------------------------------------------------------------------------------------------
# Reader


def test_reader_synthetic_video(tmp_path):
    path = write_video(tmp_path / "colours.avi", colour_frames(10), fps=10)
    info = video_info(path)
    assert (info.num_frames, info.width, info.height) == (10, 160, 120)
    assert info.fps == pytest.approx(10.0)
    assert info.duration == pytest.approx(1.0, abs=0.15)

    frames = list(iter_frames(path))
    assert len(frames) == 10
    assert all(f.shape == (120, 160, 3) and f.dtype == np.uint8 for f in frames)
    # Colours survive decoding (lossy codec, flat frames: a few levels off at most).
    for i, frame in enumerate(frames):
        assert np.abs(frame.reshape(-1, 3).mean(0) - [20 + 20 * i, 128, 230 - 20 * i]).max() < 8

    small = list(iter_frames(path, max_side=80))
    assert len(small) == 10 and all(f.shape == (60, 80, 3) for f in small)
    assert all(f.shape == (120, 160, 3) for f in iter_frames(path, max_side=1000))  # never upscaled


def test_scaled_size():
    assert scaled_size(1920, 1080, 640) == (640, 360)
    assert scaled_size(240, 320, 160) == (120, 160)
    assert scaled_size(340, 256, 640) == (340, 256)
    assert scaled_size(340, 256, None) == (340, 256)


def test_reader_corrupt_and_missing_files(tmp_path):
    broken = tmp_path / "broken_clip.mp4"
    broken.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(VideoDecodeError, match="broken_clip.mp4"):
        video_info(broken)
    with pytest.raises(VideoDecodeError, match="broken_clip.mp4"):
        next(iter_frames(broken))
    # A truncated copy of a good MP4: its index (the moov box, written last) is gone.
    good = write_video(tmp_path / "good.mp4", colour_frames(4))
    cut = tmp_path / "cut_clip.mp4"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(VideoDecodeError, match="cut_clip.mp4"):
        list(iter_frames(cut))
    with pytest.raises(VideoDecodeError, match="no_such.avi"):
        video_info(tmp_path / "no_such.avi")
    assert issubclass(VideoDecodeError, ValueError)


# ------------------------------------------------------------------------------------------------
# Pieces that need no MediaPipe


def test_missing_mediapipe_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # makes ``import mediapipe`` fail
    with pytest.raises(MissingDependencyError, match=r"lightact\[pose\]"):
        import_mediapipe()
    assert issubclass(MissingDependencyError, ImportError)


def test_missing_pyav_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(MissingDependencyError, match="pip install av"):
        video_info(tmp_path / "any.mp4")


def test_tracker_keeps_identities():
    a, b = np.array([10.0, 10, 50, 110]), np.array([100.0, 10, 140, 110])
    tracker = Tracker(2, max_lost=5)
    assert tracker.assign(0, [a, b]) == [0, 1]
    assert tracker.assign(1, [b + 2, a + 2]) == [1, 0]  # detection order does not matter
    assert tracker.assign(2, [b + 4]) == [1]  # a is lost ...
    assert tracker.assign(5, [a + 3, b + 4]) == [0, 1]  # ... and re-acquired under its index
    # A person appearing far from everybody else takes a free index.
    assert tracker.assign(6, [b + 4, np.array([300.0, 10, 340, 110])]) == [1, 0]


def testdrop_short_runs():
    present = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1], bool)
    assert drop_short_runs(present, 3).tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 0, 0]
    assert drop_short_runs(present, 1).tolist() == present.tolist()


@pytest.mark.parametrize("max_persons, second_search_every", [(2, 1), (2, 3), (3, 1), (4, 2)])
def test_person_slots_in_threads_give_the_sequential_poses(fake_pose, max_persons, second_search_every):
    frames = square_frames(60)
    results = {}
    for parallel in (False, True):
        with fake_pose(max_persons=max_persons, second_search_every=second_search_every, min_run=1) as ex:
            results[parallel] = ex.process_frames(iter(frames), parallel_slots=parallel)
    sequential, threaded = results[False], results[True]
    assert sequential.persons_per_frame.max() == max_persons  # every slot found somebody somewhere
    assert (sequential.persons_per_frame == 0).any()  # and some frames had nobody
    for key in ("keypoint", "keypoint_score", "keypoint_3d"):
        np.testing.assert_array_equal(getattr(threaded, key), getattr(sequential, key), err_msg=key)


def test_the_second_slot_works_while_the_first_is_on_the_next_frame(fake_pose, monkeypatch):
    monkeypatch.setattr(FakePoseGraph, "wait_for_overlap", True)
    with fake_pose(max_persons=2, min_run=1) as ex:
        ex.process_frames(iter(square_frames(8)), parallel_slots=True)
    assert FakePoseGraph.created[1].overlapped is True


def test_a_stream_fed_frame_by_frame_gives_the_tracked_people_of_track(fake_pose):
    """The live way: a frame goes in only when the first slot is free, the people come out in order
    as they are done, with the person indices that track() gives."""
    frames = square_frames(40, seed=1)
    with fake_pose(max_persons=3, second_search_every=2) as ex:
        ex.start()
        expected = [ex.track(frame, t) for t, frame in enumerate(frames)]
    with fake_pose(max_persons=3, second_search_every=2) as ex:
        ex.start()
        got = []
        with ex.stream() as stream:
            for frame in frames:
                while not stream.first_slot_free:
                    stream.wait(1.0)
                    got += stream.finished()
                stream.put(frame)
                got += stream.finished()
            while stream.in_flight:
                got += stream.finished(wait=True)
    assert len(got) == len(expected) and any(len(people) == 3 for people in expected)
    for mine, theirs in zip(got, expected, strict=True):
        assert [p[0] for p in mine] == [p[0] for p in theirs]
        for a, b in zip(mine, theirs, strict=True):
            for x, y in zip(a[1:], b[1:], strict=True):
                np.testing.assert_array_equal(x, y)


def test_every_other_search_sees_the_frame_in_a_border_and_a_track_keeps_its_border(fake_pose):
    """Searches alternate unbordered / bordered; a graph tracking somebody, and its first search
    after losing them, see the image it found them in; the people come out in the frame's own
    coordinates, as an extractor that never borders gives them."""
    blank = np.full((120, 160, 3), 30, np.uint8)
    square = blank.copy()
    square[40:64, 20:36] = 255  # touches no edge, so the masked frame's square is in view everywhere
    frames = [blank] * 3 + [square] * 3 + [blank] * 3 + [square] * 2
    with fake_pose(max_persons=1, min_run=1, search_padding=0.5) as ex:
        bordered = ex.process_frames(iter(frames))
    u, b = (120, 160), (240, 320)  # the frame as it is, in its border
    # blanks: search, search, search; squares: found in the bordered image, then tracked in it;
    # blanks: the lost track, the first search after it (its border), a plain search; squares: the
    # next search (bordered) finds the square, then tracks it.
    assert FakePoseGraph.created[0].sizes == [u, b, u, b, b, b, b, b, u, b, b]
    with fake_pose(max_persons=1, min_run=1, search_padding=0.0) as ex:
        plain = ex.process_frames(iter(frames))
    assert FakePoseGraph.created[1].sizes == [u] * len(frames)
    present = (plain.keypoint_score > 0).any(axis=2)[0]
    assert present.tolist() == [False] * 3 + [True] * 3 + [False] * 3 + [True] * 2
    # (Not keypoint_3d: the fake graphs' "world" landmarks are their image coordinates again.)
    for key in ("keypoint", "keypoint_score"):
        np.testing.assert_allclose(getattr(bordered, key), getattr(plain, key), atol=1e-4, err_msg=key)


@pytest.mark.parametrize(
    "option, message",
    [
        ({"search_padding": -0.1}, "search_padding must be a number from 0 to 2, got -0.1"),
        ({"search_padding": None}, "search_padding must be a number from 0 to 2, got None"),
        ({"search_padding": "0.5"}, "search_padding must be a number from 0 to 2, got '0.5'"),
        ({"inference_threads": 0}, "inference_threads must be a whole number at least 1, got 0"),
        ({"inference_threads": None}, "inference_threads must be a whole number at least 1, got None"),
        ({"inference_threads": 1.5}, "inference_threads must be a whole number at least 1, got 1.5"),
    ],
)
def test_extractor_options_of_the_wrong_kind_are_refused_in_one_line(fake_pose, option, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        fake_pose(**option)


@pytest.mark.parametrize("where", ["frames", "second slot", "consumer"])
def test_an_error_anywhere_stops_the_slot_threads(fake_pose, monkeypatch, where):
    def frames():
        yield from square_frames(40)  # on_frame is called after 16 and 32
        yield np.zeros((4, 4), np.uint8)

    def on_frame(done: int) -> None:
        if where == "consumer":
            raise KeyboardInterrupt

    if where == "second slot":
        monkeypatch.setattr(FakePoseGraph, "fail_at", (1, 3))
    expected = {"frames": ValueError, "second slot": RuntimeError, "consumer": KeyboardInterrupt}[where]
    before = {t.name for t in threading.enumerate()}
    with fake_pose(max_persons=3) as ex, pytest.raises(expected):
        ex.process_frames(frames(), on_frame=on_frame, parallel_slots=True)
    left = {t.name for t in threading.enumerate()} - before
    assert not [name for name in left if name.startswith("lightact-pose-slot")]


@pytest.mark.parametrize("workers, threaded", [(None, True), (1, False)])
def test_run_pose_on_one_video_uses_the_spare_cores_unless_told_one_worker(
    fake_pose, monkeypatch, tmp_path, workers, threaded
):
    from lightact.data.skeleton.pose import runner

    monkeypatch.setattr(runner, "mediapipe_available", lambda: True)
    monkeypatch.setattr(runner, "available_cores", lambda: 2)
    asked = []
    process_frames = fake_pose.process_frames

    def recording(self, *args, parallel_slots=False, **kwargs):
        asked.append(parallel_slots)
        return process_frames(self, *args, parallel_slots=parallel_slots, **kwargs)

    monkeypatch.setattr(fake_pose, "process_frames", recording)
    video = write_video(tmp_path / "squares.avi", square_frames(12))
    stats = run_pose([video], tmp_path / "out.pkl", workers=workers, progress=False)
    assert (stats["computed"], stats["failed"], asked) == (1, [], [threaded])


@pytest.mark.parametrize(
    "cores, max_persons, threads",
    [(1, 1, 1), (2, 1, 2), (2, 2, 1), (3, 2, 1), (4, 2, 2), (16, 1, 2), (16, 4, 2)],
)
def test_each_slot_graph_gets_its_share_of_the_cores(monkeypatch, cores, max_persons, threads):
    from lightact.data.skeleton.pose import extractor

    monkeypatch.setattr(extractor, "available_cores", lambda: cores)
    assert extractor.graph_threads(max_persons) == threads


@pytest.mark.parametrize("workers, max_persons, threads", [(None, 1, 2), (None, 2, 1), (1, 1, 1)])
def test_pose_of_one_video_runs_each_slot_graph_on_its_share_of_the_cores(
    fake_pose, monkeypatch, tmp_path, workers, max_persons, threads
):
    from lightact.data.skeleton.pose import extractor, runner

    monkeypatch.setattr(runner, "mediapipe_available", lambda: True)
    monkeypatch.setattr(runner, "available_cores", lambda: 2)
    monkeypatch.setattr(extractor, "available_cores", lambda: 2)
    video = write_video(tmp_path / "squares.avi", square_frames(12))
    run_pose([video], tmp_path / "out.pkl", workers=workers, max_persons=max_persons, progress=False)
    assert [graph.inference_threads for graph in FakePoseGraph.created] == [threads] * max_persons
    # extract_pose (what predict uses) does the same with overlap, and keeps a thread count given;
    # None (a recognizer's pose options may hold it: the live loop reads it so) is the default.
    share = 2 // max_persons
    cases = (
        (True, "absent", share),
        (True, None, share),
        (False, None, 1),
        (False, "absent", 1),
        (True, 1, 1),
    )
    for overlap, given, expected in cases:
        FakePoseGraph.created.clear()
        options = {} if given == "absent" else {"inference_threads": given}
        extract_pose(video, max_persons=max_persons, overlap=overlap, **options)
        assert [graph.inference_threads for graph in FakePoseGraph.created] == [expected] * max_persons


def test_a_part_made_by_the_extractor_before_the_bordered_searches_is_computed_again(
    fake_pose, monkeypatch, tmp_path
):
    from lightact.data.skeleton.pose import parts

    video = write_video(tmp_path / "squares.avi", square_frames(6))
    with fake_pose(max_persons=1) as ex:
        result = ex.process_frames(iter(square_frames(6)))
    path = parts.part_path(tmp_path / "out.pkl.parts", video)
    parts.write_part(path, result, video, 25.0, 1, 640)
    assert parts.load_part(path, video, 1, 640) is not None
    with monkeypatch.context() as patch:
        patch.setattr(parts, "_PART_VERSION", 1)  # the unbordered extractor's parts
        parts.write_part(path, result, video, 25.0, 1, 640)
    assert parts.load_part(path, video, 1, 640) is None


def test_collect_videos_from_folder_and_list(tmp_path):
    (tmp_path / "clips" / "sub").mkdir(parents=True)
    for name in ("clips/b.mp4", "clips/sub/a.avi", "clips/notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p, _ in collect_videos(tmp_path / "clips")] == ["b.mp4", "a.avi"]
    listing = tmp_path / "lists" / "train.txt"
    listing.parent.mkdir()
    listing.write_text("# comment\n../clips/b.mp4 3\n\n/abs/with space.mp4 0\n../clips/sub/a.avi\n")
    assert collect_videos(listing) == [
        (listing.parent / "../clips/b.mp4", 3),
        (Path("/abs/with space.mp4"), 0),
        (listing.parent / "../clips/sub/a.avi", -1),
    ]
    with pytest.raises(FileNotFoundError):
        collect_videos(tmp_path / "nothing_here")


# ------------------------------------------------------------------------------------------------
# Pose on synthetic videos


@needs_mediapipe
def test_no_person_gives_zeros(tmp_path):
    path = write_video(tmp_path / "noise.avi", noise_frames(8))
    ann = extract_pose(path, max_persons=2)
    assert ann["keypoint"].shape == (2, 8, 33, 2) and ann["keypoint"].dtype == np.float32
    assert ann["keypoint_score"].shape == (2, 8, 33) and ann["keypoint_score"].dtype == np.float32
    assert ann["keypoint_3d"].shape == (2, 8, 33, 3) and ann["keypoint_3d"].dtype == np.float32
    assert not ann["keypoint"].any() and not ann["keypoint_score"].any() and not ann["keypoint_3d"].any()
    assert (ann["frame_dir"], ann["total_frames"], ann["label"]) == ("noise", 8, -1)
    assert ann["img_shape"] == ann["original_shape"] == (120, 160)
    assert ann["fps"] == pytest.approx(10.0) and ann["layout"] == "mediapipe33"


_FILTERED_WRITES = r"""
import os, sys, threading
from lightact.data.skeleton.pose.mediapipe import mediapipe_log_filter as log_filter
os.write(2, b"before\n")
log_filter.hold()
log_filter.hold()  # a second holder (another extractor)
for piece in (b"INFO: ", b"Created TensorFlow Lite XNNPACK delegate for CPU.", b"\n"):
    os.write(2, piece)  # as TensorFlow Lite writes it
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
os.write(2, b"W0000 00:00:1796177277.767977   21430 inference_feedback_manager.cc:114] Feedback\n")
os.write(2, b"\rprogress 50%")  # no newline: passes at once
os.write(2, b"\rprogress 100%\n")
os.write(2, b"E0000 00:00:1796177277.8   21430 graph.cc:1] an error is kept\n")
os.write(2, b"INFO: a line of someone else's\n")
log_filter.release()
os.write(2, b"still filtered\n")
log_filter.release()
sys.stderr.write("after: W0000 00:00:1.0 1 x.cc:1] not filtered any more\n")
"""


def test_the_mediapipe_log_filter_drops_only_its_lines_and_restores_stderr():
    import subprocess

    ran = subprocess.run([sys.executable, "-c", _FILTERED_WRITES], capture_output=True, timeout=60)
    assert ran.returncode == 0, ran.stderr.decode()
    assert ran.stderr.decode() == (
        "before\n\rprogress 50%\rprogress 100%\nE0000 00:00:1796177277.8   21430 graph.cc:1] an error "
        "is kept\nINFO: a line of someone else's\nstill filtered\n"
        "after: W0000 00:00:1.0 1 x.cc:1] not filtered any more\n"
    )


@needs_mediapipe
def test_pose_extraction_prints_none_of_mediapipes_start_up_lines(tmp_path):
    """Once per process, MediaPipe's C++ side logs a TensorFlow Lite notice and absl warnings when
    its graphs first run: a fresh process shows whether any reach the user."""
    import subprocess

    path = write_video(tmp_path / "noise.avi", noise_frames(4))
    code = f"from lightact.data.skeleton.pose import extract_pose; extract_pose({str(path)!r}); print('ok')"
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0 and ran.stdout == "ok\n", ran.stderr
    assert "TensorFlow Lite" not in ran.stderr and "absl" not in ran.stderr and "W0000" not in ran.stderr


@needs_mediapipe
def test_run_pose_labels_classes_and_failures(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    write_video(data_dir / "noise_a.avi", noise_frames(6, seed=1))
    write_video(data_dir / "noise_b.avi", noise_frames(5, seed=2))
    (data_dir / "broken.avi").write_bytes(b"RIFF not really an avi" * 50)
    listing = data_dir / "list.txt"
    listing.write_text("noise_a.avi 1\nbroken.avi 0\nnoise_b.avi 0\nmissing.avi 1\n")
    classes = tmp_path / "classes.txt"
    classes.write_text("walk\nwave\n")

    with pytest.warns(UserWarning, match="2 video"):
        stats = run_pose(listing, tmp_path / "out.pkl", labels=classes, workers=1, progress=False)
    assert sorted(Path(f["video"]).name for f in stats["failed"]) == ["broken.avi", "missing.avi"]
    assert any("broken.avi" in f["error"] for f in stats["failed"])
    assert (stats["videos"], stats["computed"], stats["workers"]) == (4, 2, 1)
    data = safe_load_pickle(tmp_path / "out.pkl")
    assert data["classes"] == ["walk", "wave"]
    assert data["split"] == {"all": ["noise_a", "noise_b"]}
    assert [(a["frame_dir"], a["label"], a["total_frames"]) for a in data["annotations"]] == [
        ("noise_a", 1, 6),
        ("noise_b", 0, 5),
    ]
    assert validate_annotations(data, num_classes=2) == []
    # The failed videos left no part behind, so a rerun tries them again (and resumes the others).
    with pytest.warns(UserWarning, match="2 video"):
        again = run_pose(listing, tmp_path / "out.pkl", labels=classes, workers=1, progress=False)
    assert (again["computed"], again["resumed"], len(again["failed"])) == (0, 2, 2)


# ------------------------------------------------------------------------------------------------
# Pose on the real clips


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """One parallel run (2 worker processes) over a video list: the three clips (absolute paths,
    labels 0-2) and a corrupt file (relative path). Returns (stats, loaded pickle, output, list)."""
    if not mediapipe_available():
        pytest.skip("MediaPipe is not installed: pip install 'lightact[pose]'")
    if not all((VIDEO_DIR / name).is_file() for name in REAL):
        pytest.skip(f"the real test videos are not in {VIDEO_DIR}")
    root = tmp_path_factory.mktemp("pose")
    (root / "videos").mkdir()
    (root / "videos" / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    listing = root / "videos" / "list.txt"
    lines = [f"{VIDEO_DIR / name} {label}" for label, name in enumerate(REAL)]
    listing.write_text("\n".join([*lines[:2], "corrupt.mp4 1", lines[2]]) + "\n")
    (root / "classes.txt").write_text("hug\narm wrestling\neye makeup\n")
    out = root / "real.pkl"
    with pytest.warns(UserWarning, match="corrupt.mp4"):
        stats = run_pose(listing, out, labels=root / "classes.txt", workers=2, progress=False)
    print("\npose per video:", *(f"{k}: {v}" for k, v in stats["per_video"].items()), sep="\n  ")
    return stats, safe_load_pickle(out), out, listing


@needs_mediapipe
@needs_videos
def test_real_videos_people_found_and_corrupt_one_failed(real_run):
    stats, _, _, _ = real_run
    assert (stats["videos"], stats["computed"], stats["workers"]) == (4, 3, 2)
    assert [Path(f["video"]).name for f in stats["failed"]] == ["corrupt.mp4"]
    assert "corrupt.mp4" in stats["failed"][0]["error"]
    per_video = stats["per_video"]
    for name in REAL:
        share = per_video[Path(name).stem]["person_share"]
        assert share >= MIN_PERSON_SHARE[name], f"{name}: a person in only {share:.1%} of the frames"
    hug = per_video[Path(HUG).stem]["second_person_share"]
    assert hug >= MIN_HUG_SECOND_SHARE, f"hugging clip: a second person in only {hug:.1%} of the frames"
    eye = per_video[Path(EYE).stem]["second_person_share"]
    assert eye <= MAX_SINGLE_PERSON_SECOND_SHARE, f"one-person clip: a second person in {eye:.1%}"


@needs_mediapipe
@needs_videos
def test_real_videos_schema_and_ranges(real_run):
    _, data, _, _ = real_run
    assert data["split"] == {"all": [Path(n).stem for n in REAL]}
    assert data["classes"] == ["hug", "arm wrestling", "eye makeup"]
    assert validate_annotations(data, num_classes=3) == []
    for label, (name, ann) in enumerate(zip(REAL, data["annotations"], strict=True)):
        info = video_info(VIDEO_DIR / name)
        h, w = info.height, info.width
        t = info.num_frames
        assert ann["frame_dir"] == Path(name).stem and ann["total_frames"] == t and ann["label"] == label
        assert ann["original_shape"] == (h, w) and ann["layout"] == "mediapipe33"
        assert max(ann["img_shape"]) == min(640, max(h, w))
        assert ann["fps"] == pytest.approx(info.fps)
        kp, score, kp3d = ann["keypoint"], ann["keypoint_score"], ann["keypoint_3d"]
        assert kp.shape == (2, t, 33, 2) and score.shape == (2, t, 33) and kp3d.shape == (2, t, 33, 3)
        assert kp.dtype == score.dtype == kp3d.dtype == np.float32
        assert (kp[..., 0] >= 0).all() and (kp[..., 0] <= w - 1).all()
        assert (kp[..., 1] >= 0).all() and (kp[..., 1] <= h - 1).all()
        assert (score >= 0).all() and (score <= 1).all()
        assert np.isfinite(kp3d).all() and np.abs(kp3d).max() < 3.0  # metres around the hips
        absent = ~(score > 0).any(axis=2)  # [M, T]: no person in this slot and frame
        assert not kp[absent].any() and not kp3d[absent].any()
        assert (score > 0).any(axis=2)[0].sum() >= (score > 0).any(axis=2)[1].sum()  # most-seen first
        # Person 0 is the one found first in most frames; the frames it is in are mostly found.
        present = ~absent[0]
        assert (score[0][present] > 0).all()

    # 3D axes: y up, so in the standing people of the hugging clip the nose is above the hips
    # (y > 0) and the ankles below (y < 0); the hips are the origin.
    hug = data["annotations"][0]
    seen = (hug["keypoint_score"] > 0).any(axis=2)
    nose_y = hug["keypoint_3d"][..., 0, 1][seen]
    ankle_y = hug["keypoint_3d"][..., 27:29, 1][seen]
    hips = hug["keypoint_3d"][..., 23:25, :][seen].mean(axis=1)
    assert np.median(nose_y) > 0.3 and np.median(ankle_y) < -0.5
    assert np.abs(hips).max() < 0.1
    # 2D: the nose is above the ankles in the image (image y grows downwards).
    assert np.median(hug["keypoint"][..., 0, 1][seen]) < np.median(hug["keypoint"][..., 27, 1][seen])


@needs_mediapipe
@needs_videos
def test_run_pose_resumes(real_run, tmp_path):
    stats, _, out, listing = real_run
    first = tmp_path / "first.pkl"
    shutil.copy(out, first)
    parts = {name: part_path(out.with_name(out.name + ".parts"), VIDEO_DIR / name) for name in REAL}
    assert all(p.is_file() for p in parts.values())
    mtimes = {name: p.stat().st_mtime_ns for name, p in parts.items()}
    parts[HUG].unlink()

    classes = listing.parent.parent / "classes.txt"
    with pytest.warns(UserWarning, match="corrupt.mp4"):  # tried again: failures leave no part
        again = run_pose(listing, out, labels=classes, workers=1, progress=False)
    assert (again["computed"], again["resumed"], len(again["failed"])) == (1, 2, 1)
    assert again["frames_computed"] == stats["per_video"][Path(HUG).stem]["frames"]
    assert [v["resumed"] for v in again["per_video"].values()] == [False, True, True]
    assert parts[HUG].is_file()
    for name in (ARM, EYE):
        assert parts[name].stat().st_mtime_ns == mtimes[name]
    assert filecmp.cmp(out, first, shallow=False), "the recomputed output differs from the first run's"


@needs_mediapipe
def test_pose_graph_runs_both_models_on_the_threads_asked():
    from lightact.data.skeleton.pose.mediapipe import pose_graph

    graph = pose_graph(2, static_image_mode=False, model_complexity=1)
    try:
        # The person detector's and the landmark model's inference nodes, as the running graph has them.
        assert graph.threaded_models == 2
        assert graph._graph.text_config.count("num_threads: 2") == 2
    finally:
        graph.close()
    single = pose_graph(1, static_image_mode=False, model_complexity=1)
    try:
        assert "num_threads" not in single._graph.text_config
    finally:
        single.close()


@needs_mediapipe
@needs_videos
def test_pose_on_two_inference_threads_equals_pose_on_one():
    video = VIDEO_DIR / EYE
    one = extract_pose(video, max_persons=1, inference_threads=1)
    two = extract_pose(video, max_persons=1, inference_threads=2)
    np.testing.assert_array_equal(two["keypoint_score"] > 0, one["keypoint_score"] > 0)
    for key in ("keypoint", "keypoint_score", "keypoint_3d"):
        np.testing.assert_allclose(two[key], one[key], atol=1e-4, err_msg=key)


@needs_mediapipe
@needs_videos
def test_bordered_searches_find_the_close_up_people_that_plain_ones_lose():
    """At 10 poses/s MediaPipe's tracker loses the arm wrestlers (close-ups cut by the frame) and its
    detector does not find them again in the frame as it is; in a border it does."""
    video = VIDEO_DIR / ARM
    shares = {}
    for padding in (0.0, 0.5):
        poses = extract_pose(video, pose_fps=10.0, search_padding=padding)
        # Frames 120-200, where posing every frame keeps somebody in 95 % of them (BENCHMARKS.md).
        rows = (poses["frame_times"] >= 120 / 28) & (poses["frame_times"] < 200 / 28)
        shares[padding] = float((poses["keypoint_score"][:, rows] > 0).any(axis=(0, 2)).mean())
    assert shares[0.5] >= 0.8 and shares[0.5] >= 1.5 * shares[0.0], shares


@needs_mediapipe
@needs_videos
def test_pose_with_slots_in_threads_equals_pose_without_on_a_two_person_clip():
    video = VIDEO_DIR / HUG
    sequential = extract_pose(video, pose_fps=10.0, overlap=False)
    threaded = extract_pose(video, pose_fps=10.0, overlap=True)
    second = (sequential["keypoint_score"][1] > 0).any(axis=1).mean()
    assert second >= MIN_HUG_SECOND_SHARE, f"a second person in only {second:.1%} of the posed frames"
    for key in ("keypoint", "keypoint_score", "keypoint_3d", "frame_times"):
        np.testing.assert_array_equal(threaded[key], sequential[key], err_msg=key)
