"""NTU RGB+D 60/120: read the raw ``.skeleton`` files and convert them to the skeleton annotation pickle.

The raw format (see ``docs/formats.md``) is whitespace text: a frame count; per frame a body count; per
body an info line (64-bit body id and 9 more fields), a joint count (25) and one 12-field line per joint.
Parsing walks the header lines in Python and hands all joint lines of a file to one ``np.loadtxt`` call,
so no number goes through Python's ``float()``.

Body selection follows common practice (ST-GCN, CTR-GCN): bodies seen in very few frames and "bodies"
that are wider than tall in most frames (furniture picked up by the Kinect) are dropped, then the two
bodies that move most are kept, in the order they first appear.
"""

from __future__ import annotations

import math
import os
import re
import time
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from lightact.data.skeleton.pickle_io import save_pickle
from lightact.errors import DataError, UsageError, check_writable_dir
from lightact.utils import available_cores, die_with_parent, progress_bar

NUM_JOINTS = 25
JOINT_FIELDS = 12  # x y z depthX depthY colorX colorY orientationW/X/Y/Z trackingState
BODY_INFO_FIELDS = 10  # bodyID, then BODY_INFO_NAMES
BODY_INFO_NAMES = (
    "clipedEdges", "handLeftConfidence", "handLeftState", "handRightConfidence", "handRightState",
    "isRestricted", "leanX", "leanY", "trackingState",
)  # fmt: skip

NTU60_MAX_SETUP = 17
NTU60_MAX_ACTION = 60
DATASETS = ("ntu60", "ntu120")

# Cross-subject training performers (docs/formats.md); NTU-120 adds the second list to NTU-60's.
NTU60_XSUB_TRAIN = frozenset((1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38))
NTU120_XSUB_TRAIN = NTU60_XSUB_TRAIN | frozenset(
    (45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89,
     91, 92, 93, 94, 95, 97, 98, 100, 103)
)  # fmt: skip
XVIEW_TRAIN_CAMERAS = frozenset((2, 3))

_FLOAT32_MAX = float(np.finfo(np.float32).max)

_NAME_RE = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")


class NTUFormatError(DataError):
    """A ``.skeleton`` file (or sample name) does not follow the NTU format."""


@dataclass
class NTUBody:
    """One tracked body of a file: only the frames it appears in.

    ``frames`` are 0-based frame indices into the file. ``tracking`` is each joint's tracking state
    (0 not tracked, 1 inferred, 2 tracked). The remaining joint fields are read only with
    ``read_skeleton_file(..., all_fields=True)`` and are ``None`` otherwise.
    """

    body_id: int
    frames: np.ndarray  # int64 [T_b]
    xyz: np.ndarray  # float32 [T_b, 25, 3], camera space, metres
    tracking: np.ndarray  # int8 [T_b, 25]
    info: np.ndarray | None = None  # float32 [T_b, 9], the info line after the id (BODY_INFO_NAMES)
    depth_xy: np.ndarray | None = None  # float32 [T_b, 25, 2], pixels in the 512x424 depth frame
    color_xy: np.ndarray | None = None  # float32 [T_b, 25, 2], pixels in the 1920x1080 RGB frame
    orientation: np.ndarray | None = None  # float32 [T_b, 25, 4], quaternion w x y z

    @property
    def num_frames(self) -> int:
        return len(self.frames)


@dataclass
class NTUSkeleton:
    """A parsed ``.skeleton`` file. ``bodies`` is keyed by body id, in order of first appearance."""

    name: str
    num_frames: int
    bodies: dict[int, NTUBody] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# Reading one file


def _fail(path: Path, lineno: int, expected: str, found: str | None) -> NoReturn:
    what = "end of file" if found is None else repr(found)
    raise NTUFormatError(f"{path}: line {lineno}: expected {expected}, found {what}")


def _read_count(path: Path, lines: list[str], i: int, expected: str) -> int:
    """The non-negative integer on line index ``i`` (0-based)."""
    if i >= len(lines):
        _fail(path, i + 1, expected, None)
    try:
        value = int(lines[i])
    except ValueError:
        _fail(path, i + 1, expected, lines[i].strip())
    if value < 0:
        _fail(path, i + 1, expected, lines[i].strip())
    return value


def _locate_bad_joint_line(path: Path, lines: list[str], starts: Sequence[int], problem: str) -> NoReturn:
    """Slow path after a failed bulk parse: raise for the first joint line that is not 12 numbers."""
    for start in starts:
        for i in range(start, start + NUM_JOINTS):
            tokens = lines[i].split()
            if len(tokens) != JOINT_FIELDS:
                _fail(path, i + 1, f"{JOINT_FIELDS} joint fields (x y z depthX ... trackingState)", lines[i])
            for token in tokens:
                try:
                    value = float(token)
                except ValueError:
                    _fail(path, i + 1, "a number in every joint field", token)
                if not math.isfinite(value) or abs(value) > _FLOAT32_MAX:
                    _fail(path, i + 1, "finite joint values", token)
    raise NTUFormatError(f"{path}: unreadable joint lines ({problem})")


def read_skeleton_file(path: str | Path, *, all_fields: bool = False) -> NTUSkeleton:
    """Parse one NTU ``.skeleton`` file.

    Reads positions and tracking states; ``all_fields=True`` also keeps the depth/colour pixel
    coordinates, joint orientations and the body info lines (about twice the parsing time).
    Raises :class:`NTUFormatError` naming the file and 1-based line for a truncated or malformed file.
    """
    path = Path(path)
    # Decoding bytes is several times faster than read_text's newline translation; splitlines handles CRLF.
    lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()

    frame_count = _read_count(path, lines, 0, "the frame count")
    i = 1
    occ_ids: list[int] = []  # one entry per (frame, body) occurrence
    occ_frames: list[int] = []
    info_lines: list[int] = []
    starts: list[int] = []  # index of each occurrence's first joint line
    info_tokens: list[list[str]] = []
    for frame in range(frame_count):
        body_count = _read_count(path, lines, i, f"the body count of frame {frame + 1}/{frame_count}")
        i += 1
        for body in range(body_count):
            where = f"body {body + 1}/{body_count} of frame {frame + 1}"
            if i >= len(lines):
                _fail(path, i + 1, f"the info line of {where}", None)
            tokens = lines[i].split()
            if len(tokens) != BODY_INFO_FIELDS:
                expected = f"the {BODY_INFO_FIELDS}-field info line (bodyID ...) of {where}"
                _fail(path, i + 1, expected, lines[i])
            try:
                body_id = int(tokens[0])
            except ValueError:
                _fail(path, i + 1, f"an integer body id for {where}", tokens[0])
            occ_ids.append(body_id)
            occ_frames.append(frame)
            if all_fields:
                info_lines.append(i)
                info_tokens.append(tokens[1:])
            joint_count = _read_count(path, lines, i + 1, f"the joint count ({NUM_JOINTS}) of {where}")
            if joint_count != NUM_JOINTS:
                _fail(path, i + 2, f"the joint count {NUM_JOINTS} of {where}", lines[i + 1].strip())
            i += 2
            if i + NUM_JOINTS > len(lines):
                _fail(path, len(lines) + 1, f"{NUM_JOINTS} joint lines for {where}", None)
            starts.append(i)
            i += NUM_JOINTS
    for j in range(i, len(lines)):
        if lines[j].strip():
            _fail(path, j + 1, f"the end of the file after {frame_count} frames", lines[j])

    columns = tuple(range(JOINT_FIELDS)) if all_fields else (0, 1, 2, JOINT_FIELDS - 1)
    if starts:
        joint_lines: list[str] = []
        for start in starts:
            joint_lines += lines[start : start + NUM_JOINTS]
        try:
            values = np.loadtxt(joint_lines, dtype=np.float32, usecols=columns, comments=None, ndmin=2)
        except ValueError as err:
            _locate_bad_joint_line(path, lines, starts, str(err))
        if not np.isfinite(values).all():
            _locate_bad_joint_line(path, lines, starts, "a value is not finite")
        values = values.reshape(len(starts), NUM_JOINTS, len(columns))
    else:
        values = np.zeros((0, NUM_JOINTS, len(columns)), dtype=np.float32)

    info = None
    if all_fields and info_tokens:
        try:
            info = np.array(info_tokens, dtype=np.float32)
        except ValueError as err:
            for line_index, tokens in zip(info_lines, info_tokens, strict=True):
                for token in tokens:
                    try:
                        float(token)
                    except ValueError:
                        _fail(path, line_index + 1, "a number in every body info field", token)
            raise NTUFormatError(f"{path}: unreadable body info lines ({err})") from None

    # Group occurrences by body id; a body id listed twice in one frame keeps its first entry.
    groups: dict[int, list[int]] = {}
    for k, body_id in enumerate(occ_ids):
        group = groups.setdefault(body_id, [])
        if not group or occ_frames[group[-1]] != occ_frames[k]:
            group.append(k)
    frames_arr = np.asarray(occ_frames, dtype=np.int64)
    bodies: dict[int, NTUBody] = {}
    for body_id, group in groups.items():
        idx = np.asarray(group, dtype=np.int64)
        block = values[idx]
        body = NTUBody(
            body_id=body_id,
            frames=frames_arr[idx],
            xyz=np.ascontiguousarray(block[..., :3]),
            tracking=block[..., -1].astype(np.int8),
        )
        if all_fields:
            body.depth_xy = np.ascontiguousarray(block[..., 3:5])
            body.color_xy = np.ascontiguousarray(block[..., 5:7])
            body.orientation = np.ascontiguousarray(block[..., 7:11])
            body.info = info[idx] if info is not None else None
        bodies[body_id] = body
    name = path.name[: -len(".skeleton")] if path.name.endswith(".skeleton") else path.stem
    return NTUSkeleton(name=name, num_frames=frame_count, bodies=bodies)


# --------------------------------------------------------------------------------------------------
# Sample names and splits


def parse_sample_name(name: str) -> dict[str, int]:
    """``'S001C002P003R002A013'`` (optionally with a directory or ``.skeleton``) ->
    ``{'setup': 1, 'camera': 2, 'performer': 3, 'replication': 2, 'action': 13}``."""
    stem = Path(str(name)).name
    if stem.endswith(".skeleton"):
        stem = stem[: -len(".skeleton")]
    match = _NAME_RE.fullmatch(stem)
    if match is None:
        raise NTUFormatError(
            f"{name!r} is not an NTU sample name: expected SsssCcccPpppRrrrAaaa with 3 digits each, "
            "e.g. S001C002P003R002A013"
        )
    setup, camera, performer, replication, action = (int(g) for g in match.groups())
    return {"setup": setup, "camera": camera, "performer": performer, "replication": replication,
            "action": action}  # fmt: skip


def _check_dataset(dataset: str) -> str:
    if dataset not in DATASETS:
        raise UsageError(f"unknown NTU dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    return dataset


def in_dataset(name: str, dataset: str) -> bool:
    """Whether a sample belongs to NTU-60 (setups 1-17, actions 1-60) or NTU-120 (all).

    Raises :class:`NTUFormatError` if ``name`` is not an NTU sample name."""
    info = parse_sample_name(name)
    if _check_dataset(dataset) == "ntu120":
        return True
    return info["setup"] <= NTU60_MAX_SETUP and info["action"] <= NTU60_MAX_ACTION


def make_splits(names: Iterable[str], dataset: str) -> dict[str, list[str]]:
    """The standard benchmark splits: X-Sub and X-View for NTU-60, X-Sub and X-Set for NTU-120."""
    _check_dataset(dataset)
    if dataset == "ntu60":
        splits: dict[str, list[str]] = {k: [] for k in ("xsub_train", "xsub_val", "xview_train", "xview_val")}
    else:
        splits = {k: [] for k in ("xsub_train", "xsub_val", "xset_train", "xset_val")}
    xsub = NTU60_XSUB_TRAIN if dataset == "ntu60" else NTU120_XSUB_TRAIN
    for name in sorted(names):
        info = parse_sample_name(name)
        splits["xsub_train" if info["performer"] in xsub else "xsub_val"].append(name)
        if dataset == "ntu60":
            splits["xview_train" if info["camera"] in XVIEW_TRAIN_CAMERAS else "xview_val"].append(name)
        else:
            splits["xset_train" if info["setup"] % 2 == 0 else "xset_val"].append(name)
    return splits


def read_missing_list(path: str | Path) -> set[str]:
    """Sample ids from an official "samples with missing skeletons" list.

    One id per line, with or without ``.skeleton``; blank lines, ``#`` comments and lines that hold no
    sample id (the official files start with two lines of prose) are ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing-skeleton list {path} does not exist")
    ids: set[str] = set()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        token = Path(line.split()[0]).name
        if token.endswith(".skeleton"):
            token = token[: -len(".skeleton")]
        if _NAME_RE.fullmatch(token):
            ids.add(token)
    return ids


# --------------------------------------------------------------------------------------------------
# Body selection


def _seen_frames(xyz: np.ndarray) -> np.ndarray:
    return np.abs(xyz).reshape(len(xyz), -1).sum(axis=1) > 0


def body_motion(body: NTUBody) -> float:
    """Sum over x, y, z of the coordinate's standard deviation over the body's non-zero frames."""
    seen = body.xyz[_seen_frames(body.xyz)]
    if len(seen) == 0:
        return 0.0
    return float(seen.reshape(-1, 3).astype(np.float64).std(axis=0).sum())


def wide_frame_fraction(body: NTUBody, spread_ratio: float = 0.8) -> float:
    """Fraction of the body's non-zero frames whose x-spread exceeds ``spread_ratio`` x its y-spread."""
    seen = body.xyz[_seen_frames(body.xyz)]
    if len(seen) == 0:
        return 1.0
    spread = seen.max(axis=1) - seen.min(axis=1)  # [T, 3]
    return float(np.mean(spread[:, 0] > spread_ratio * spread[:, 1]))


def select_bodies(
    skeleton: NTUSkeleton,
    max_bodies: int = 2,
    *,
    min_frames: int = 11,
    spread_ratio: float = 0.8,
    max_wide_fraction: float = 0.7,
) -> list[NTUBody]:
    """Drop noisy bodies, keep the ``max_bodies`` that move most, ordered by first appearance.

    Noise, removed only while at least one body survives each step: bodies with no non-zero frame;
    bodies seen in fewer than ``min_frames`` frames; bodies wider than tall (x-spread >
    ``spread_ratio`` x y-spread) in more than ``max_wide_fraction`` of their frames, e.g. furniture.
    """
    bodies = [b for b in skeleton.bodies.values() if _seen_frames(b.xyz).any()]
    for keep in (
        lambda b: b.num_frames >= min_frames,
        lambda b: wide_frame_fraction(b, spread_ratio) <= max_wide_fraction,
    ):
        if len(bodies) > 1:
            bodies = [b for b in bodies if keep(b)] or bodies
    if len(bodies) > max_bodies:
        order = {id(b): k for k, b in enumerate(bodies)}  # file order: first appearance
        # Stable sort: of two bodies that move equally, the earlier one is kept.
        bodies = sorted(bodies, key=body_motion, reverse=True)[:max_bodies]
        bodies.sort(key=lambda b: order[id(b)])
    return bodies


def skeleton_to_keypoint(skeleton: NTUSkeleton, max_bodies: int = 2, **select_kwargs: Any) -> np.ndarray:
    """``keypoint`` float32 ``[max_bodies, T, 25, 3]``, zero where a body is absent or missing."""
    keypoint = np.zeros((max_bodies, skeleton.num_frames, NUM_JOINTS, 3), dtype=np.float32)
    for m, body in enumerate(select_bodies(skeleton, max_bodies, **select_kwargs)):
        keypoint[m, body.frames] = body.xyz
    return keypoint


# --------------------------------------------------------------------------------------------------
# Converting a directory


def _convert_one(path: str) -> tuple[str, np.ndarray | None, str | None]:
    """Worker: ``(sample id, keypoint, None)`` or ``(sample id, None, error message)``; never raises."""
    name = Path(path).name[: -len(".skeleton")]
    try:
        skeleton = read_skeleton_file(path)
        if skeleton.num_frames == 0:
            raise NTUFormatError(f"{path}: the file holds no frames")
        if not any(_seen_frames(b.xyz).any() for b in skeleton.bodies.values()):
            raise NTUFormatError(f"{path}: no body in any of its {skeleton.num_frames} frames")
        return name, skeleton_to_keypoint(skeleton), None
    except (ValueError, OSError) as err:
        return name, None, str(err)
    except Exception as err:  # a bug must not lose hours of conversion either
        return name, None, f"{path}: {type(err).__name__}: {err}"


def convert_ntu(
    raw_dir: str | Path,
    dataset: str,
    out: str | Path,
    missing: str | Path | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Convert a folder of NTU ``.skeleton`` files (searched recursively) to the annotation pickle.

    ``dataset`` is ``"ntu60"`` (setups 1-17, actions 1-60; other files are left out) or ``"ntu120"``.
    Ids in the ``missing`` list are skipped. Files that cannot be parsed are reported in the returned
    stats (``errors``: id -> message) and in a warning, never abort the conversion. The pickle holds
    ``split`` and ``annotations`` (sorted by id) with ``frame_dir``, ``total_frames``, ``label``
    (action - 1) and ``keypoint`` float32 ``[2, T, 25, 3]``.
    """
    start_time = time.perf_counter()
    _check_dataset(dataset)
    raw_dir, out = Path(raw_dir), Path(out)
    if not raw_dir.is_dir():
        raise FileNotFoundError(f"NTU skeleton folder {raw_dir} does not exist")
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder: give the annotation pickle to write")
    check_writable_dir(out.parent, "--out's folder")  # before hours of parsing, not after
    skip = read_missing_list(missing) if missing is not None else set()
    files = sorted(raw_dir.rglob("*.skeleton"), key=lambda p: (p.name, str(p)))
    if not files:
        raise FileNotFoundError(f"no .skeleton files under {raw_dir}")

    errors: dict[str, str] = {}
    duplicates: list[str] = []
    todo: list[str] = []
    seen: dict[str, Path] = {}
    n_missing = n_excluded = 0
    for path in files:
        name = path.name[: -len(".skeleton")]
        if name in seen:
            duplicates.append(f"{path} (using {seen[name]})")
            continue
        seen[name] = path
        if name in skip:
            n_missing += 1
            continue
        try:
            if not in_dataset(name, dataset):
                n_excluded += 1
                continue
        except NTUFormatError as err:
            errors[name] = f"{path}: {err}"
            continue
        todo.append(str(path))

    workers = max(1, workers if workers is not None else available_cores())
    workers = min(workers, max(1, len(todo)))
    annotations: list[dict[str, Any]] = []
    with progress_bar(progress) as bar:
        task = bar.add_task(f"converting {dataset}", total=len(todo))
        if workers == 1:
            results: Iterable[tuple[str, np.ndarray | None, str | None]] = map(_convert_one, todo)
            pool = None
        else:
            pool = ProcessPoolExecutor(
                max_workers=workers, initializer=die_with_parent, initargs=(os.getpid(),)
            )
            chunksize = max(1, min(64, len(todo) // (workers * 8)))
            results = pool.map(_convert_one, todo, chunksize=chunksize)
        try:
            for name, keypoint, error in results:
                if error is not None or keypoint is None:
                    errors[name] = error or "no keypoints"
                else:
                    annotations.append({
                        "frame_dir": name,
                        "total_frames": int(keypoint.shape[1]),
                        "label": parse_sample_name(name)["action"] - 1,
                        "keypoint": keypoint,
                    })  # fmt: skip
                bar.advance(task)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)

    annotations.sort(key=lambda a: a["frame_dir"])
    if not annotations:  # an earlier, good --out is kept rather than replaced by an empty one
        shown = "; ".join(list(dict(sorted(errors.items())).values())[:3]) or "every file was skipped"
        raise DataError(f"no NTU file under {raw_dir} could be converted, {out} was not written: {shown}")
    splits = make_splits([a["frame_dir"] for a in annotations], dataset)
    save_pickle({"split": splits, "annotations": annotations}, out)

    errors = dict(sorted(errors.items()))
    if duplicates:
        warnings.warn(
            f"{len(duplicates)} sample id(s) occur more than once: {'; '.join(duplicates[:3])}", stacklevel=2
        )
    if errors:
        shown = "; ".join(f"{k}: {v}" for k, v in list(errors.items())[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        warnings.warn(
            f"{len(errors)} NTU file(s) could not be converted and were left out: {shown}{more}", stacklevel=2
        )
    seconds = time.perf_counter() - start_time
    return {
        "dataset": dataset,
        "out": str(out),
        "files_found": len(files),
        "skipped_missing": n_missing,
        "excluded": n_excluded,
        "converted": len(annotations),
        "failed": len(errors),
        "errors": errors,
        "duplicates": duplicates,
        "splits": {k: len(v) for k, v in splits.items()},
        "workers": workers,
        "seconds": seconds,
        "files_per_second": len(todo) / seconds if seconds > 0 else float("inf"),
    }
