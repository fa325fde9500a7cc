"""The small shared helpers: atomic writes and file-name-safe names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lightact.data.skeleton.pickle_io import safe_load_pickle, save_pickle
from lightact.utils import atomic_write, safe_file_name


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "last.ckpt"
    target.write_text("previous")

    def broken(tmp):
        Path(tmp).write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, broken)
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_annotation_pickle_is_written_through_atomic_write(tmp_path):
    """save_pickle creates missing folders, leaves no temporary file, and the file is readable by
    others like any written output (its own mkstemp copy left it owner-only)."""
    out = tmp_path / "new" / "ann.pkl"
    save_pickle({"annotations": [{"keypoint": np.zeros((1, 2, 3, 2), np.float32)}]}, out)
    assert out.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in out.parent.iterdir()] == ["ann.pkl"]
    assert safe_load_pickle(out)["annotations"][0]["keypoint"].shape == (1, 2, 3, 2)


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        ("walk 01 (take 2)", {}, "walk_01_take_2_"),
        ("__.hidden.", {"strip": "._"}, "hidden"),
        ("../..", {"strip": "._"}, "input"),
        ("", {}, "input"),
        ("été-été", {}, "_t_-_t_"),
        ("a" * 100, {"max_length": 80}, "a" * 80),
    ],
)
def test_safe_file_name(text, kwargs, expected):
    assert safe_file_name(text, "input", **kwargs) == expected
