"""The resumable store of a pose run: one ``.npz`` part per finished video, beside the output.

A part records the video's absolute path, size and modification time, the settings that change
the result (``max_persons``, ``max_side``) and the version of the extractor's way of finding people
(:data:`_PART_VERSION`); a rerun reuses a part only when all of them still match, and computes the
video again otherwise. Parts are written atomically, so a killed run leaves whole
parts or none.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from lightact.data.skeleton.pose.extractor import PoseResult
from lightact.utils import atomic_write, safe_file_name

# 2: the extractor's bordered searches (search_padding) find other people than version 1's did, so a
# rerun computes version-1 parts again rather than mixing the two in one pickle.
_PART_VERSION = 2


def part_path(parts_dir: str | Path, video: str | Path) -> Path:
    """Where the result of ``video`` is kept: ``<safe-stem>-<10 hex of sha1(absolute path)>.npz``."""
    video = Path(video)
    digest = hashlib.sha1(str(video.resolve()).encode("utf-8")).hexdigest()[:10]
    return Path(parts_dir) / f"{safe_file_name(video.stem, 'video', max_length=80)}-{digest}.npz"


def _source_signature(video: Path) -> tuple[int, int]:
    st = video.stat()
    return int(st.st_size), int(st.st_mtime_ns)


def write_part(
    path: Path, result: PoseResult, video: Path, fps: float, max_persons: int, max_side: int | None
) -> None:
    """Store ``result`` of ``video`` (its frame rate and the settings it was made with) at ``path``."""
    size, mtime = _source_signature(video)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:  # a file object: given a name, np.savez would append ".npz"
            np.savez(
                f,
                version=np.int64(_PART_VERSION),
                video=np.str_(str(video.resolve())),
                source_size=np.int64(size),
                source_mtime_ns=np.int64(mtime),
                max_persons=np.int64(max_persons),
                max_side=np.int64(-1 if max_side is None else max_side),
                keypoint=result.keypoint,
                keypoint_score=result.keypoint_score,
                keypoint_3d=result.keypoint_3d,
                img_shape=np.asarray(result.img_shape, np.int64),
                original_shape=np.asarray(result.original_shape, np.int64),
                fps=np.float64(fps),
                seconds=np.float64(result.seconds),
            )

    atomic_write(path, write)


def load_part(
    path: Path, video: Path, max_persons: int, max_side: int | None
) -> tuple[PoseResult, float] | None:
    """The stored result, or ``None`` if there is none or it is stale (other video content or settings)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta_ok = (
                int(z["version"]) == _PART_VERSION
                and (int(z["source_size"]), int(z["source_mtime_ns"])) == _source_signature(video)
                and int(z["max_persons"]) == max_persons
                and int(z["max_side"]) == (-1 if max_side is None else max_side)
            )
            if not meta_ok:
                return None
            result = PoseResult(
                keypoint=z["keypoint"],
                keypoint_score=z["keypoint_score"],
                keypoint_3d=z["keypoint_3d"],
                img_shape=tuple(int(v) for v in z["img_shape"]),  # type: ignore[arg-type]
                original_shape=tuple(int(v) for v in z["original_shape"]),  # type: ignore[arg-type]
                seconds=float(z["seconds"]),
            )
            return result, float(z["fps"])
    except (OSError, ValueError, KeyError, EOFError):
        return None  # unreadable: computed again
