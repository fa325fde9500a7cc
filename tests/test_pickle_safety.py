"""Annotation pickles: loading never runs code from the file; plain data round-trips; validation."""

from __future__ import annotations

import builtins
import os
import pickle
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lightact.data.skeleton.pickle_io import UnsafePickleError, safe_load_pickle, save_pickle
from lightact.data.skeleton.validate import (
    Problem,
    format_problems,
    has_errors,
    validate_annotations,
)


class _Payload:
    """Pickles as a call to ``func(*args)``: what a malicious annotation file carries."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


def _payloads(sentinel: Path) -> dict[str, _Payload]:
    touch = f"touch {sentinel}"
    write = f"open({str(sentinel)!r}, 'w').close()"
    return {
        "os.system": _Payload(os.system, touch),
        "builtins.exec": _Payload(builtins.exec, write),
        "builtins.eval": _Payload(builtins.eval, write),
        "subprocess.call": _Payload(subprocess.call, ["touch", str(sentinel)]),
        # numpy is trusted for arrays only, not for its other functions
        "numpy.save": _Payload(np.save, str(sentinel), np.zeros(1)),
    }


@pytest.mark.parametrize(
    "name", ["os.system", "builtins.exec", "builtins.eval", "subprocess.call", "numpy.save"]
)
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_code_in_a_pickle_is_refused_and_never_runs(tmp_path: Path, name: str, protocol: int) -> None:
    sentinel = tmp_path / "SENTINEL.npy"
    payload = _payloads(sentinel)[name]
    # Hidden inside an otherwise well-formed annotation file.
    data = {"split": {"xsub_train": ["a"]}, "annotations": [{"frame_dir": "a", "label": payload}]}
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))

    with pytest.raises(UnsafePickleError, match=r"evil\.pkl: refusing to load"):
        safe_load_pickle(path)
    problems = validate_annotations(path)
    assert [p.kind for p in problems] == ["unreadable"]
    assert "refusing to load" in problems[0].message
    assert not sentinel.exists()


def test_the_payload_really_would_run(tmp_path: Path) -> None:
    """Control: plain ``pickle.load`` of the same bytes does create the sentinel."""
    sentinel = tmp_path / "SENTINEL"
    pickle.loads(pickle.dumps(_payloads(sentinel)["builtins.exec"]))
    assert sentinel.exists()


def _legit() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return {
        "split": {"xsub_train": ["S001C001P001R001A001"], "xsub_val": ["S001C001P003R001A002"]},
        "annotations": [
            {
                "frame_dir": "S001C001P001R001A001",
                "total_frames": 4,
                "label": 0,
                "keypoint": rng.normal(size=(2, 4, 25, 3)).astype(np.float32),
            },
            {
                "frame_dir": "S001C001P003R001A002",
                "total_frames": 3,
                "label": np.int64(1),
                "keypoint": rng.normal(size=(1, 3, 25, 2)).astype(np.float32),
                "keypoint_score": rng.random((1, 3, 25)).astype(np.float16),
                "frame_index": np.arange(3, dtype=np.int64),
                "img_shape": (1080, 1920),
                "original_shape": (1080, 1920),
                "fps": np.float64(29.97),
                "flags": np.array([True, False]),
                "meta": {"nested": [1, 2.5, None, "x", b"raw"]},
            },
        ],
    }


def _assert_same(a: Any, b: Any) -> None:
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            _assert_same(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_schema_pickle_round_trips(tmp_path: Path, protocol: int) -> None:
    data = _legit()
    path = tmp_path / f"p{protocol}.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    _assert_same(data, safe_load_pickle(path))


def test_save_pickle_round_trips_atomically(tmp_path: Path) -> None:
    data = _legit()
    path = tmp_path / "sub" / "ann.pkl"
    save_pickle(data, path)
    loaded = safe_load_pickle(path)
    _assert_same(data, loaded)
    assert isinstance(loaded["annotations"][1]["fps"], np.float64)
    assert [p.name for p in path.parent.iterdir()] == ["ann.pkl"]  # no temporary file left behind


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        safe_load_pickle(tmp_path / "none.pkl")
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match="not a readable pickle"):
        safe_load_pickle(garbage)
    for path in (tmp_path / "none.pkl", garbage):
        assert [p.kind for p in validate_annotations(path)] == ["unreadable"]


# --------------------------------------------------------------------------------------------------
# Validation


def _ann(frame_dir: str, label: int = 0, m: int = 2, t: int = 5, c: int = 3, **extra: Any) -> dict[str, Any]:
    ann = {
        "frame_dir": frame_dir,
        "label": label,
        "total_frames": t,
        "keypoint": np.zeros((m, t, 25, c), np.float32),
    }
    ann.update(extra)
    return ann


def test_clean_data_has_no_problems(tmp_path: Path) -> None:
    data = _legit()
    assert validate_annotations(data, num_classes=2) == []
    path = tmp_path / "clean.pkl"
    save_pickle(data, path)
    assert validate_annotations(path, num_classes=60) == []
    assert validate_annotations({"annotations": [_ann("a")]}) == []  # 'split' is optional
    assert format_problems([]) == "no problems found"


def test_each_problem_kind_names_its_sample() -> None:
    bad_kp = _ann("nan")
    bad_kp["keypoint"][0, 1, 2, 0] = np.nan
    inf_score = _ann("inf_score", c=2, keypoint_score=np.ones((2, 5, 25), np.float32))
    inf_score["keypoint_score"][1, 0, 0] = np.inf
    no_label = _ann("no_label")
    del no_label["label"]
    data = {
        "split": {"xsub_train": ["ok", "ghost"], "xsub_val": ["nan"]},
        "annotations": [
            _ann("ok"),
            bad_kp,
            _ann("neg", label=-2),
            _ann("unknown", label=-1),
            _ann("big", label=60),
            _ann("dup"),
            _ann("dup"),
            no_label,
            _ann("ndim", keypoint=np.zeros((5, 25, 3), np.float32)),
            _ann("chan", keypoint=np.zeros((1, 5, 25, 4), np.float32)),
            _ann("frames", t=5, total_frames=6),
            _ann("score", c=2, keypoint_score=np.ones((2, 4, 25), np.float32)),
            _ann("noscore", c=2),
            inf_score,
            _ann("float_label", label=1.0),
            _ann("list_kp", keypoint=[[0.0]]),
            "not a dict",
        ],
    }
    problems = validate_annotations(data, num_classes=60)
    found = {(p.sample, p.kind) for p in problems}
    assert found == {
        ("nan", "non_finite"),
        ("neg", "label_range"),
        ("unknown", "unlabelled"),
        ("big", "label_range"),
        ("dup", "duplicate"),
        ("no_label", "missing_key"),
        ("ndim", "keypoint_shape"),
        ("chan", "keypoint_shape"),
        ("frames", "total_frames"),
        ("score", "score_shape"),
        ("noscore", "missing_score"),
        ("inf_score", "non_finite"),
        ("float_label", "bad_type"),
        ("list_kp", "bad_type"),
        ("ghost", "split_unknown_id"),
        (None, "structure"),
    }
    assert len(problems) == len(found)  # one problem each: a duplicate is reported once
    # -1 is MMAction2's "unknown" (pose extraction writes it): fine to predict on, so only a warning.
    assert {p.sample for p in problems if p.severity == "warning"} == {"noscore", "unknown"}
    assert has_errors(problems) and not has_errors([p for p in problems if p.kind == "missing_score"])
    messages = {(p.sample, p.kind): p.message for p in problems}
    assert messages[("big", "label_range")] == "big: label 60 is not in [0, 60)"
    assert messages[("frames", "total_frames")] == "frames: total_frames is 6 but keypoint has T = 5"
    assert "annotation #16" in messages[(None, "structure")]

    # Without num_classes only negative labels are out of range.
    assert {p.sample for p in validate_annotations(data) if p.kind == "label_range"} == {"neg"}


def test_top_level_problems() -> None:
    assert [p.kind for p in validate_annotations([1, 2])] == ["structure"]
    assert [p.message for p in validate_annotations({"split": {}})] == [
        "the top-level key 'annotations' is missing"
    ]
    problems = validate_annotations({"annotations": {}, "split": ["a"]})
    assert [p.kind for p in problems] == ["structure", "structure"]


def test_format_problems_groups_and_truncates() -> None:
    problems = [
        Problem(f"S{i:03d}", "label_range", f"S{i:03d}: label 99 is not in [0, 60)") for i in range(20)
    ]
    problems += [Problem("S100", "missing_score", "S100: 2D keypoints without keypoint_score")]
    problems += [Problem(None, "structure", "the top-level key 'annotations' is missing")]
    text = format_problems(problems, max_ids=5)
    assert text.splitlines()[0] == "21 error(s), 1 warning(s)"
    table = text.split("\n\n")[1].splitlines()
    assert table[0].split() == ["kind", "level", "count", "description"]
    assert [row.split()[:3] for row in table[2:]] == [
        ["structure", "error", "1"],
        ["label_range", "error", "20"],
        ["missing_score", "warning", "1"],
    ]
    assert "samples: S000, S001, S002, S003, S004, ... (+15 more)" in text
    assert "S005" not in text
    assert "S000: label 99 is not in [0, 60)" in text
    assert "the top-level key 'annotations' is missing" in text
