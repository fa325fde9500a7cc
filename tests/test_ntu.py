"""NTU RGB+D raw skeleton reader and converter, on hand-written ``.skeleton`` files.

Coordinates are multiples of 1/64, so their 6-decimal text is exact in float32 and outputs can be
compared with ``array_equal``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lightact.data.skeleton.ntu import (
    NTUFormatError,
    convert_ntu,
    make_splits,
    parse_sample_name,
    read_missing_list,
    read_skeleton_file,
    select_bodies,
    skeleton_to_keypoint,
)
from lightact.data.skeleton.pickle_io import safe_load_pickle

KINECT_ID = 72057594037931101  # a typical NTU body id: above 2**53, exact only as an integer
HUGE_ID = 2**63 + 5  # above int64's range: must survive as a Python int

Frames = list[list[tuple[int, np.ndarray]]]


def write_skeleton(path: Path, frames: Frames) -> Path:
    """Write an NTU ``.skeleton`` file by the spec: frames of ``(body_id, xyz [25, 3])`` bodies.

    The fields besides x, y, z are fixed, recognisable values; lines end in CRLF as in the release.
    """
    lines = [str(len(frames))]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for body_id, xyz in bodies:
            lines.append(f"{body_id} 0 1 1 1 1 0 0.125 -0.25 2")
            lines.append("25")
            for j, (x, y, z) in enumerate(xyz):
                lines.append(
                    f"{x:.6f} {y:.6f} {z:.6f} 250.5 200.25 {1000 + j}.5 500.75 0.5 0 -0.5 0.25 {j % 3}"
                )
    path.write_text("\r\n".join(lines) + "\r\n", newline="")
    return path


def person(n_frames: int, *, shift: float = 0.0, motion: float = 1.0, seed: int = 0) -> np.ndarray:
    """A standing person [T, 25, 3]: about 0.5 m wide, 1.5 m tall, 3 m away; moves by ``motion``."""
    rng = np.random.default_rng(seed)
    pose = np.stack(
        [
            rng.integers(-16, 17, 25) / 64 + shift,
            rng.integers(-48, 49, 25) / 64,
            3 + rng.integers(0, 8, 25) / 64,
        ],
        axis=1,
    )
    pose[3, 1], pose[15, 1] = 0.75, -0.75  # head and foot fix the height
    steps = np.round(np.sin(np.arange(n_frames) / 3) * 16 * motion) / 64  # quantised sway in x
    out = np.repeat(pose[None], n_frames, axis=0)
    out[:, :, 0] += steps[:, None]
    return out


def furniture(n_frames: int) -> np.ndarray:
    """A wide, flat "body" (2 m by 0.25 m) that jumps around: more motion than any person here."""
    rng = np.random.default_rng(7)
    base = np.stack([np.linspace(-1, 1, 25), rng.integers(0, 17, 25) / 64, np.full(25, 3.0)], axis=1)
    out = np.repeat(base[None], n_frames, axis=0)
    out[:, :, 0] += (np.arange(n_frames) % 2 * 32 / 64)[:, None]
    out[:, :, 2] += (np.arange(n_frames) % 3 * 32 / 64)[:, None]
    return out


def frames_of(n_frames: int, *tracks: tuple[int, np.ndarray, range]) -> Frames:
    """Frames listing each ``(body_id, xyz [n_frames, 25, 3], frames present)`` track, in track order."""
    return [[(bid, xyz[t]) for bid, xyz, present in tracks if t in present] for t in range(n_frames)]


# --------------------------------------------------------------------------------------------------
# Reading


def test_read_two_bodies_fields_and_64bit_ids(tmp_path: Path) -> None:
    a, b = person(10, seed=1), person(10, shift=1.0, seed=2)
    path = write_skeleton(
        tmp_path / "S001C001P001R001A001.skeleton",
        frames_of(10, (KINECT_ID, a, range(10)), (HUGE_ID, b, range(2, 10))),
    )
    skel = read_skeleton_file(path)
    assert skel.name == "S001C001P001R001A001"
    assert skel.num_frames == 10
    assert list(skel.bodies) == [KINECT_ID, HUGE_ID]
    assert all(type(k) is int for k in skel.bodies)
    body_a, body_b = skel.bodies[KINECT_ID], skel.bodies[HUGE_ID]
    assert body_a.body_id == KINECT_ID and body_b.body_id == HUGE_ID
    np.testing.assert_array_equal(body_a.frames, np.arange(10))
    np.testing.assert_array_equal(body_b.frames, np.arange(2, 10))
    assert body_a.xyz.dtype == np.float32 and body_a.xyz.shape == (10, 25, 3)
    assert body_b.xyz.shape == (8, 25, 3)
    assert np.array_equal(body_a.xyz, a.astype(np.float32))
    assert np.array_equal(body_b.xyz, b[2:].astype(np.float32))
    assert body_a.tracking.dtype == np.int8
    np.testing.assert_array_equal(body_a.tracking[0], np.arange(25) % 3)
    assert body_a.depth_xy is None and body_a.info is None  # not read by default

    full = read_skeleton_file(path, all_fields=True).bodies[HUGE_ID]
    assert np.array_equal(full.xyz, body_b.xyz)
    assert full.depth_xy.shape == (8, 25, 2) and np.all(full.depth_xy == [250.5, 200.25])
    np.testing.assert_array_equal(full.color_xy[3, :, 0], np.arange(25) + 1000.5)
    assert np.all(full.color_xy[..., 1] == 500.75)
    assert full.orientation.shape == (8, 25, 4) and np.all(full.orientation == [0.5, 0, -0.5, 0.25])
    np.testing.assert_array_equal(full.info[0], [0, 1, 1, 1, 1, 0, 0.125, -0.25, 2])


def test_frames_without_bodies_are_zero(tmp_path: Path) -> None:
    a = person(8, seed=3)
    present = [1, 2, 4, 5, 6]  # frames 0, 3 and 7 hold no body
    path = write_skeleton(tmp_path / "S001C001P001R001A002.skeleton", frames_of(8, (11, a, present)))
    skel = read_skeleton_file(path)
    np.testing.assert_array_equal(skel.bodies[11].frames, present)
    kp = skeleton_to_keypoint(skel)
    assert kp.shape == (2, 8, 25, 3) and kp.dtype == np.float32
    np.testing.assert_array_equal(kp[0, present], a[present])
    assert not kp[0, [0, 3, 7]].any()
    assert not kp[1].any()  # a single person: the second slot is all zero


def test_body_id_repeated_in_one_frame_keeps_the_first(tmp_path: Path) -> None:
    a, b = person(3, seed=4), person(3, shift=2.0, seed=5)
    frames = [[(9, a[0])], [(9, a[1]), (9, b[1])], [(9, a[2])]]
    skel = read_skeleton_file(write_skeleton(tmp_path / "S001C001P001R001A003.skeleton", frames))
    assert np.array_equal(skel.bodies[9].xyz, a.astype(np.float32))


# --------------------------------------------------------------------------------------------------
# Body selection


def test_furniture_is_dropped(tmp_path: Path) -> None:
    t = 30
    p1, p2, desk = person(t, seed=1), person(t, shift=1.0, motion=0.5, seed=2), furniture(t)
    path = write_skeleton(
        tmp_path / "S001C001P001R001A050.skeleton",
        frames_of(t, (5, desk, range(t)), (6, p1, range(t)), (7, p2, range(t))),
    )
    skel = read_skeleton_file(path)
    assert [b.body_id for b in select_bodies(skel)] == [6, 7]
    kp = skeleton_to_keypoint(skel)
    assert np.array_equal(kp[0], p1.astype(np.float32)) and np.array_equal(kp[1], p2.astype(np.float32))


def test_least_moving_of_three_is_dropped_and_order_is_first_appearance(tmp_path: Path) -> None:
    t = 30
    # One pose, placed apart: the bodies differ only in how much they sway.
    still, fast, medium = (person(t, shift=s, motion=m, seed=1) for s, m in ((0, 0.1), (1, 2), (2, 1)))
    path = write_skeleton(
        tmp_path / "S001C001P001R001A050.skeleton",
        frames_of(t, (1, still, range(t)), (2, medium, range(3, t)), (3, fast, range(1, t))),
    )
    # Per frame, bodies are listed in track order, but "fast" (id 3) is seen from frame 1, "medium"
    # (id 2) only from frame 3: the output follows first appearance, not the listing order.
    skel = read_skeleton_file(path)
    assert list(skel.bodies) == [1, 3, 2]
    assert [b.body_id for b in select_bodies(skel)] == [3, 2]
    kp = skeleton_to_keypoint(skel)
    np.testing.assert_array_equal(kp[0, 1:], fast[1:])
    assert not kp[0, 0].any()
    np.testing.assert_array_equal(kp[1, 3:], medium[3:])
    assert not kp[1, :3].any()


def test_briefly_seen_body_is_dropped_but_a_lone_one_is_kept(tmp_path: Path) -> None:
    t = 30
    p1, p2, flash = person(t, seed=1), person(t, motion=0.5, seed=2), person(t, motion=4, seed=3)
    path = write_skeleton(
        tmp_path / "S001C001P001R001A050.skeleton",
        frames_of(t, (1, p1, range(t)), (2, flash, range(10, 14)), (3, p2, range(t))),
    )
    assert [b.body_id for b in select_bodies(read_skeleton_file(path))] == [1, 3]

    lone = write_skeleton(tmp_path / "S001C001P001R001A051.skeleton", frames_of(5, (4, flash, range(5))))
    kp = skeleton_to_keypoint(read_skeleton_file(lone))
    np.testing.assert_array_equal(kp[0], flash[:5])


# --------------------------------------------------------------------------------------------------
# Errors


def _two_frame_lines(tmp_path: Path) -> list[str]:
    path = write_skeleton(tmp_path / "full.skeleton", frames_of(2, (1, person(2), range(2))))
    return path.read_text().splitlines()


@pytest.mark.parametrize(
    ("keep", "line", "expected"),
    [
        (0, 1, "frame count"),  # empty file
        (1, 2, "body count of frame 1"),  # header only
        (3, 4, "joint count"),  # cut after the info line
        (14, 15, "25 joint lines"),  # cut inside the joint block: the first missing line is named
        (29, 30, "body count of frame 2"),  # frame 1 complete, frame 2 missing
    ],
)
def test_truncated_file_names_file_and_line(tmp_path: Path, keep: int, line: int, expected: str) -> None:
    lines = _two_frame_lines(tmp_path)
    assert len(lines) == 1 + 2 * (1 + 1 + 1 + 25)
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_text("\n".join(lines[:keep]) + ("\n" if keep else ""))
    with pytest.raises(
        NTUFormatError, match=rf"S001C001P001R001A001\.skeleton: line {line}: expected .*{expected}"
    ):
        read_skeleton_file(path)


@pytest.mark.parametrize(
    ("lineno", "replacement", "expected"),
    [
        (17, "0.1 0.2 0.3 250 200 1000 500 0 0 0 1", "12 joint fields"),  # 11 fields
        (40, "0.1 0.2 oops 250 200 1000 500 0 0 0 1 2", "a number"),
        (33, "0.1 0.2 nan 250 200 1000 500 0 0 0 1 2", "finite"),
        (3, "72057594037931101 0 1 1 1 1 0 0.1 0.2", "10-field info line"),
        (3, "7.5e16 0 1 1 1 1 0 0.1 0.2 2", "integer body id"),
        (4, "24", "joint count 25"),
        (2, "-1", "body count"),
        (58, "0", "end of the file"),  # junk after the last frame
    ],
)
def test_malformed_line_is_named(tmp_path: Path, lineno: int, replacement: str, expected: str) -> None:
    lines = _two_frame_lines(tmp_path)
    if lineno > len(lines):
        lines.append(replacement)
    else:
        lines[lineno - 1] = replacement
    path = tmp_path / "S001C001P001R001A001.skeleton"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(NTUFormatError, match=rf"A001\.skeleton: line {lineno}: expected [^,]*{expected}"):
        read_skeleton_file(path)


def test_parse_sample_name() -> None:
    assert parse_sample_name("S001C002P003R002A013") == {
        "setup": 1, "camera": 2, "performer": 3, "replication": 2, "action": 13,
    }  # fmt: skip
    assert parse_sample_name("/raw/S032C003P106R002A120.skeleton")["action"] == 120
    for bad in ("S001C002P003R002", "S1C002P003R002A013", "s001c002p003r002a013", "S001C002P003R002A013x"):
        with pytest.raises(NTUFormatError, match="not an NTU sample name"):
            parse_sample_name(bad)
    assert issubclass(NTUFormatError, ValueError)


def test_splits_follow_the_benchmarks() -> None:
    names = ["S001C001P001R001A001", "S002C002P003R001A001", "S003C003P038R001A001", "S004C001P045R001A001"]
    s60 = make_splits(names, "ntu60")
    assert s60 == {
        "xsub_train": ["S001C001P001R001A001", "S003C003P038R001A001"],
        "xsub_val": ["S002C002P003R001A001", "S004C001P045R001A001"],
        "xview_train": ["S002C002P003R001A001", "S003C003P038R001A001"],
        "xview_val": ["S001C001P001R001A001", "S004C001P045R001A001"],
    }
    s120 = make_splits(names, "ntu120")
    assert s120 == {
        "xsub_train": ["S001C001P001R001A001", "S003C003P038R001A001", "S004C001P045R001A001"],
        "xsub_val": ["S002C002P003R001A001"],
        "xset_train": ["S002C002P003R001A001", "S004C001P045R001A001"],
        "xset_val": ["S001C001P001R001A001", "S003C003P038R001A001"],
    }
    with pytest.raises(ValueError, match="unknown NTU dataset"):
        make_splits(names, "ntu90")


# --------------------------------------------------------------------------------------------------
# Converting a folder


@pytest.fixture
def raw_dir(tmp_path: Path) -> tuple[Path, dict[str, list[np.ndarray]], Path]:
    """A small release: returns the folder, each good sample's persons, and a missing-skeleton list."""
    raw = tmp_path / "nturgb+d_skeletons"
    raw.mkdir()
    t = 15
    p1, p2, p3 = person(t, seed=1), person(t, shift=1.0, motion=0.5, seed=2), person(t, motion=2, seed=3)
    persons = {
        # performer 1 (X-Sub train), camera 1 (X-View val), setup 1 (X-Set val)
        "S001C001P001R001A001": [p1, p2],
        # performer 3 (val), camera 2 (X-View train), setup 2 (X-Set train); frames 0-4 hold no body
        "S002C002P003R002A013": [p3],
        # action 61 and setup 18: NTU-120 only; performer 45 is X-Sub train in NTU-120
        "S001C003P003R001A061": [p2, p1],
        "S018C001P045R001A120": [p1],
    }
    write_skeleton(
        raw / "S001C001P001R001A001.skeleton", frames_of(t, (10, p1, range(t)), (20, p2, range(t)))
    )
    write_skeleton(raw / "S002C002P003R002A013.skeleton", frames_of(t, (HUGE_ID, p3, range(5, t))))
    sub = raw / "s018_to_s032"  # searched recursively
    sub.mkdir()
    write_skeleton(raw / "S001C003P003R001A061.skeleton", frames_of(t, (1, p2, range(t)), (2, p1, range(t))))
    write_skeleton(sub / "S018C001P045R001A120.skeleton", frames_of(t, (1, p1, range(t))))
    # Listed as missing (would fail to parse if it were read).
    (raw / "S003C001P002R001A008.skeleton").write_text("3\n1\n")
    # Truncated: reported, not fatal.
    full = write_skeleton(raw / "S004C001P001R001A002.skeleton", frames_of(t, (1, p1, range(t))))
    full.write_text("\n".join(full.read_text().splitlines()[:100]))
    missing = tmp_path / "NTU_RGBD_samples_with_missing_skeletons.txt"
    missing.write_text(
        "302 of the captured samples in the dataset have missing or incomplete skeleton data.\n"
        "If you are working on skeleton-based analysis, please ignore these files.\n\n"
        "S003C001P002R001A008.skeleton\n# a comment\nS009C001P001R001A001\n"
    )
    return raw, persons, missing


def _expected_keypoint(persons: list[np.ndarray], first_frame: int = 0) -> np.ndarray:
    kp = np.zeros((2, 15, 25, 3), np.float32)
    for m, xyz in enumerate(persons):
        kp[m, first_frame:] = xyz[first_frame:]
    return kp


def test_read_missing_list(raw_dir) -> None:
    _, _, missing = raw_dir
    assert read_missing_list(missing) == {"S003C001P002R001A008", "S009C001P001R001A001"}


def test_convert_ntu60(raw_dir, tmp_path: Path) -> None:
    raw, persons, missing = raw_dir
    out = tmp_path / "out" / "ntu60_3d.pkl"
    with pytest.warns(UserWarning, match=r"1 NTU file\(s\) could not be converted.*S004C001P001R001A002"):
        stats = convert_ntu(raw, "ntu60", out, missing=missing, workers=1, progress=False)

    assert stats["files_found"] == 6
    assert stats["skipped_missing"] == 1
    assert stats["excluded"] == 2  # action 61, setup 18
    assert stats["converted"] == 2
    assert list(stats["errors"]) == ["S004C001P001R001A002"]
    assert "S004C001P001R001A002.skeleton: line 101: expected" in stats["errors"]["S004C001P001R001A002"]
    assert stats["splits"] == {"xsub_train": 1, "xsub_val": 1, "xview_train": 1, "xview_val": 1}

    data = safe_load_pickle(out)
    assert set(data) == {"split", "annotations"}
    assert data["split"] == {
        "xsub_train": ["S001C001P001R001A001"],
        "xsub_val": ["S002C002P003R002A013"],
        "xview_train": ["S002C002P003R002A013"],
        "xview_val": ["S001C001P001R001A001"],
    }
    first, second = data["annotations"]
    assert set(first) == {"frame_dir", "total_frames", "label", "keypoint"}
    assert first["frame_dir"] == "S001C001P001R001A001"
    assert first["total_frames"] == 15 and type(first["total_frames"]) is int
    assert first["label"] == 0 and type(first["label"]) is int
    assert first["keypoint"].dtype == np.float32 and first["keypoint"].shape == (2, 15, 25, 3)
    np.testing.assert_array_equal(first["keypoint"], _expected_keypoint(persons["S001C001P001R001A001"]))
    assert second["frame_dir"] == "S002C002P003R002A013"
    assert second["label"] == 12 and second["total_frames"] == 15
    np.testing.assert_array_equal(second["keypoint"], _expected_keypoint(persons["S002C002P003R002A013"], 5))


def test_convert_ntu120_in_parallel_matches_serial(raw_dir, tmp_path: Path) -> None:
    raw, persons, missing = raw_dir
    with pytest.warns(UserWarning):
        stats = convert_ntu(raw, "ntu120", tmp_path / "p.pkl", missing=missing, workers=2, progress=False)
    with pytest.warns(UserWarning):
        convert_ntu(raw, "ntu120", tmp_path / "s.pkl", missing=missing, workers=1, progress=True)
    assert stats["workers"] == 2 and stats["converted"] == 4 and stats["excluded"] == 0

    parallel, serial = safe_load_pickle(tmp_path / "p.pkl"), safe_load_pickle(tmp_path / "s.pkl")
    assert (
        parallel["split"]
        == serial["split"]
        == {
            "xsub_train": ["S001C001P001R001A001", "S018C001P045R001A120"],
            "xsub_val": ["S001C003P003R001A061", "S002C002P003R002A013"],
            "xset_train": ["S002C002P003R002A013", "S018C001P045R001A120"],
            "xset_val": ["S001C001P001R001A001", "S001C003P003R001A061"],
        }
    )
    ids = [a["frame_dir"] for a in parallel["annotations"]]
    assert ids == sorted(persons)
    for p, s in zip(parallel["annotations"], serial["annotations"], strict=True):
        assert p["frame_dir"] == s["frame_dir"] and p["label"] == s["label"]
        np.testing.assert_array_equal(p["keypoint"], s["keypoint"])
    by_id = {a["frame_dir"]: a for a in parallel["annotations"]}
    assert by_id["S001C003P003R001A061"]["label"] == 60
    assert by_id["S018C001P045R001A120"]["label"] == 119
    np.testing.assert_array_equal(
        by_id["S001C003P003R001A061"]["keypoint"], _expected_keypoint(persons["S001C003P003R001A061"])
    )


def test_convert_reports_a_badly_named_file(tmp_path: Path) -> None:
    write_skeleton(tmp_path / "S001C001P001R001A001.skeleton", frames_of(3, (1, person(3), range(3))))
    write_skeleton(tmp_path / "copy of S001C001P001R001A002.skeleton", frames_of(3, (1, person(3), range(3))))
    with pytest.warns(UserWarning, match="not an NTU sample name"):
        stats = convert_ntu(tmp_path, "ntu120", tmp_path / "x.pkl", workers=1, progress=False)
    assert stats["converted"] == 1
    assert list(stats["errors"]) == ["copy of S001C001P001R001A002"]
    assert [a["frame_dir"] for a in safe_load_pickle(tmp_path / "x.pkl")["annotations"]] == [
        "S001C001P001R001A001"
    ]


def test_convert_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no .skeleton files"):
        convert_ntu(tmp_path, "ntu60", tmp_path / "x.pkl", progress=False)
    with pytest.raises(ValueError, match="unknown NTU dataset"):
        convert_ntu(tmp_path, "ntu61", tmp_path / "x.pkl", progress=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        convert_ntu(tmp_path / "nope", "ntu60", tmp_path / "x.pkl", progress=False)
