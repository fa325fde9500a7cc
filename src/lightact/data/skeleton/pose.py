"""2D/3D pose extraction from raw videos with MediaPipe Pose, into the skeleton annotation pickle.

MediaPipe's (legacy) Pose solution finds ONE person per image. To find up to ``max_persons`` people,
:class:`PoseExtractor` keeps one Pose instance per person *slot*, each in video (tracking) mode, and
runs them one after another on every frame: slot ``k`` sees the frame with the people found by slots
``0 .. k-1`` painted over (the box around all their landmarks, enlarged by ``mask_margin``, filled
with the frame's mean colour), so it must find somebody else. A slot that finds nobody ends the frame:
later slots would see the same picture. Slots are only detectors; which *output* person a detection
belongs to is decided by a small tracker that matches detections to the previous frames' people by
bounding-box overlap and centroid distance (exact assignment, at most 4 x 4), and lets a person that
was lost for a while be re-acquired. Afterwards, appearances shorter than ``min_run`` frames (mostly
leftovers of a masked person) are removed, and the people are ordered by the number of frames they
were seen in. ``docs/pose.md`` has measurements and the known failure cases.

Outputs per video (``M = max_persons`` always, ``T`` = decoded frames, 33 MediaPipe landmarks):

* ``keypoint`` float32 ``[M, T, 33, 2]``: x, y in pixels of the ORIGINAL video, clipped to the frame;
* ``keypoint_score`` float32 ``[M, T, 33]``: MediaPipe's landmark ``visibility``;
* ``keypoint_3d`` float32 ``[M, T, 33, 3]``: MediaPipe's ``pose_world_landmarks`` in metres, origin
  between the hips, converted from MediaPipe's axes (x right, y DOWN, z away from the camera) to
  x right, y UP, z away from the camera: ``(x, y, z) = (x_mp, -y_mp, z_mp)``.

A slot with no person in a frame is all zeros there, with score 0.

MediaPipe is an optional dependency (``pip install 'lightact[pose]'``); only ``model_complexity=1`` is
used because it is the model the wheel ships (0 and 2 are downloaded at run time).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lightact.data.video.reader import (
    VIDEO_SUFFIXES,
    MissingDependencyError,
    VideoDecodeError,
    iter_frames,
    video_info,
)
from lightact.utils import atomic_write, available_cores, progress_bar, safe_file_name

__all__ = [
    "LAYOUT",
    "NUM_LANDMARKS",
    "MissingDependencyError",
    "PoseExtractor",
    "collect_videos",
    "extract_pose",
    "part_path",
    "run_pose",
]

LAYOUT = "mediapipe33"
NUM_LANDMARKS = 33
MODEL_COMPLEXITY = 1  # the only Pose model the mediapipe wheel ships; 0 and 2 are downloaded on first use
_INSTALL_HINT = "pip install 'lightact[pose]' (or: pip install mediapipe==0.10.21)"
_PART_VERSION = 1


# --------------------------------------------------------------------------------------------------
# MediaPipe


@contextlib.contextmanager
def _quiet_python_stderr() -> Iterator[None]:
    """Swallow the one-line ``MessageFactory ... GetPrototype`` complaint mediapipe's C++ bindings print
    at import under protobuf >= 5 (harmless: mediapipe's Python code uses ``GetMessageClass``)."""
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stderr(buffer):
            yield
    finally:
        rest = [line for line in buffer.getvalue().splitlines() if "GetPrototype" not in line]
        if rest:
            print("\n".join(rest), file=sys.stderr)


@contextlib.contextmanager
def _quiet_fd2() -> Iterator[None]:
    """Silence file descriptor 2 (glog/absl warnings of MediaPipe's C++ graph start-up). Process-wide,
    so it is only used inside worker processes."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _import_mediapipe():
    try:
        with _quiet_python_stderr():
            import mediapipe as mp
            from mediapipe.python.solutions import pose as mp_pose
    except ImportError as err:
        raise MissingDependencyError(f"pose extraction needs MediaPipe: {_INSTALL_HINT}") from err
    return mp, mp_pose


def mediapipe_available() -> bool:
    """Whether MediaPipe can be imported (without importing it when it is already loaded)."""
    if sys.modules.get("mediapipe") is not None:
        return True
    try:
        _import_mediapipe()
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------------------------------
# Boxes and tracking


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _contained(a: np.ndarray, b: np.ndarray) -> float:
    """Share of box ``a``'s area that lies inside box ``b``."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1])
    return float(ix * iy / area) if area > 0 else 1.0


def _landmark_box(xy: np.ndarray, width: int, height: int) -> np.ndarray:
    """[x0, y0, x1, y1] in pixels around ALL 33 landmarks, clipped to the frame.

    All landmarks, not only the visible ones: MediaPipe places occluded and off-frame joints where the
    body should be, so the box covers the whole person (a box of the visible joints leaves e.g. the hair
    and shoulders of a close-up face unmasked, and the next slot then "finds" them as a second person).
    """
    x0, y0 = xy.min(axis=0)
    x1, y1 = xy.max(axis=0)
    return np.array(
        [np.clip(x0, 0, width), np.clip(y0, 0, height), np.clip(x1, 0, width), np.clip(y1, 0, height)],
        dtype=np.float64,
    )


def _drop_short_runs(present: np.ndarray, min_run: int) -> np.ndarray:
    """``present`` [T] with every run of consecutive True shorter than ``min_run`` set to False."""
    keep = present.copy()
    t = 0
    while t < len(keep):
        if not keep[t]:
            t += 1
            continue
        end = t
        while end < len(keep) and keep[end]:
            end += 1
        if end - t < min_run:
            keep[t:end] = False
        t = end
    return keep


class _Tracker:
    """Gives each detection a stable output index in ``0 .. slots-1``.

    Detections are matched to the people of earlier frames (each remembered by its last box, for up to
    ``max_lost`` frames after it was last seen) by the assignment with the highest total affinity
    (IoU plus a centroid-proximity bonus); pairs with no overlap whose centroids are further apart than
    ``max_jump`` box diagonals never match. An unmatched detection takes a free index (never used, or
    its person lost for longer than ``max_lost``), else the index whose person was lost longest.
    """

    def __init__(self, slots: int, max_lost: int = 15, max_jump: float = 0.75) -> None:
        self.slots = slots
        self.max_lost = max_lost
        self.max_jump = max_jump
        self.boxes: list[np.ndarray | None] = [None] * slots
        self.last_seen = [-(10**9)] * slots

    def _affinity(self, track: np.ndarray, det: np.ndarray) -> float | None:
        iou = _box_iou(track, det)
        diag = float(np.hypot(track[2] - track[0], track[3] - track[1])) + 1e-6
        dist = float(
            np.hypot((track[0] + track[2] - det[0] - det[2]) / 2, (track[1] + track[3] - det[1] - det[3]) / 2)
        )
        if iou <= 0.0 and dist > self.max_jump * diag:
            return None
        return iou + 0.5 * max(0.0, 1.0 - dist / (self.max_jump * diag))

    def assign(self, frame: int, boxes: Sequence[np.ndarray]) -> list[int]:
        live = [
            s
            for s in range(self.slots)
            if self.boxes[s] is not None and frame - self.last_seen[s] <= self.max_lost
        ]
        affinity = {
            (d, s): a
            for d, box in enumerate(boxes)
            for s in live
            if (a := self._affinity(self.boxes[s], box)) is not None  # type: ignore[arg-type]
        }
        best: tuple[float, dict[int, int]] = (0.0, {})
        # Exact search over all partial matchings: at most 4 detections x 4 people.
        options = [[None, *[s for s in live if (d, s) in affinity]] for d in range(len(boxes))]
        for choice in itertools.product(*options):
            used = [s for s in choice if s is not None]
            if len(used) != len(set(used)):
                continue
            total = sum(affinity[(d, s)] for d, s in enumerate(choice) if s is not None)
            if total > best[0]:
                best = (total, {d: s for d, s in enumerate(choice) if s is not None})
        result = dict(best[1])
        taken = set(result.values())
        for d in range(len(boxes)):
            if d in result:
                continue
            free = [s for s in range(self.slots) if s not in taken]
            # Never used first, then lost longest (smallest last_seen) - both sort first by last_seen.
            s = min(free, key=lambda s: (self.boxes[s] is not None, self.last_seen[s], s))
            result[d] = s
            taken.add(s)
        for d, s in result.items():
            self.boxes[s] = np.asarray(boxes[d], dtype=np.float64)
            self.last_seen[s] = frame
        return [result[d] for d in range(len(boxes))]


# --------------------------------------------------------------------------------------------------
# Extraction


@dataclass
class PoseResult:
    """Pose of one video. Arrays are ``[M, T, ...]``; see the module docstring for their meaning."""

    keypoint: np.ndarray
    keypoint_score: np.ndarray
    keypoint_3d: np.ndarray
    img_shape: tuple[int, int]  # (h, w) of the frames MediaPipe saw
    original_shape: tuple[int, int]  # (h, w) of the video
    seconds: float  # decoding + pose, wall clock

    @property
    def total_frames(self) -> int:
        return int(self.keypoint.shape[1])

    @property
    def persons_per_frame(self) -> np.ndarray:
        return (self.keypoint_score > 0).any(axis=2).sum(axis=0)

    @property
    def person_share(self) -> float:
        """Share of frames in which at least one person was found."""
        t = self.total_frames
        return float((self.persons_per_frame >= 1).sum() / t) if t else 0.0

    @property
    def second_person_share(self) -> float:
        """Share of frames in which at least two people were found."""
        t = self.total_frames
        return float((self.persons_per_frame >= 2).sum() / t) if t else 0.0

    @property
    def fps(self) -> float:
        return self.total_frames / self.seconds if self.seconds > 0 else 0.0


class PoseExtractor:
    """Up to ``max_persons`` MediaPipe poses per frame with identities kept across frames.

    One extractor can process many videos one after another (the Pose graphs are reset between them);
    close it, or use it as a context manager, to free the graphs.

    Args:
        max_persons: people per frame (1-4); also the ``M`` of every output.
        max_side: frames are downscaled, aspect kept, so the longer side is at most this before pose
            estimation (``None``: full size). Keypoints are still given in original-video pixels.
        min_detection_confidence, min_tracking_confidence: MediaPipe Pose's thresholds.
        mask_margin: a found person's box is enlarged by this share of its width/height on each side
            before it is masked for the next slot.
        max_lost: frames a lost person is remembered for re-acquisition under the same index.
        min_run: a person seen in fewer than this many consecutive frames is dropped from those frames
            (leftovers of a masked person flicker in and out for a frame or two; 1 keeps everything).
        second_search_every: a slot after the first that found nobody searches again only every this
            many frames (while it tracks somebody it runs on every frame). MediaPipe's person detector
            costs about as much as its landmark model, so 1 (search every frame) nearly doubles the
            cost of one-person videos; larger values pick up a second person up to that many frames late.
    """

    def __init__(
        self,
        max_persons: int = 2,
        max_side: int | None = 640,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        *,
        mask_margin: float = 0.05,
        max_lost: int = 15,
        min_run: int = 3,
        second_search_every: int = 1,
    ) -> None:
        if not 1 <= max_persons <= 4:
            raise ValueError(f"max_persons must be 1 to 4, got {max_persons}")
        if max_side is not None and max_side < 32:
            raise ValueError(f"max_side must be at least 32 (or None), got {max_side}")
        _, mp_pose = _import_mediapipe()
        self.max_persons = max_persons
        self.max_side = max_side
        self.mask_margin = mask_margin
        self.max_lost = max_lost
        self.min_run = max(1, int(min_run))
        self.second_search_every = max(1, int(second_search_every))
        self._idle = [0] * max_persons  # frames each slot still skips before searching again
        self._slots = [
            mp_pose.Pose(
                static_image_mode=False,
                model_complexity=MODEL_COMPLEXITY,
                smooth_landmarks=True,
                enable_segmentation=False,
                min_detection_confidence=min_detection_confidence,
                min_tracking_confidence=min_tracking_confidence,
            )
            for _ in range(max_persons)
        ]
        self._fresh = True

    def close(self) -> None:
        for pose in self._slots:
            pose.close()
        self._slots = []

    def __enter__(self) -> PoseExtractor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _reset(self) -> None:
        if not self._slots:
            raise RuntimeError("this PoseExtractor is closed")
        if not self._fresh:
            for pose in self._slots:
                pose.reset()
        self._fresh = False
        self._idle = [0] * self.max_persons

    def _detect(self, frame: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Up to ``max_persons`` people in one RGB frame: (xy normalised [33, 2], visibility [33],
        world xyz [33, 3] in MediaPipe axes, box in frame pixels [4])."""
        height, width = frame.shape[:2]
        found: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        image = frame
        fill: np.ndarray | None = None
        for k, pose in enumerate(self._slots):
            if k > 0:
                if self._idle[k] > 0:
                    self._idle[k] -= 1
                    break
                if fill is None:
                    fill = frame.reshape(-1, 3).mean(axis=0).astype(np.uint8)
                    image = frame.copy()
                x0, y0, x1, y1 = found[-1][3]
                mx, my = self.mask_margin * (x1 - x0), self.mask_margin * (y1 - y0)
                image[
                    max(0, int(y0 - my)) : min(height, int(np.ceil(y1 + my))),
                    max(0, int(x0 - mx)) : min(width, int(np.ceil(x1 + mx))),
                ] = fill
            result = pose.process(image)
            if result.pose_landmarks is None or result.pose_world_landmarks is None:
                self._idle[k] = self.second_search_every - 1 if k > 0 else 0
                break
            lms = np.array(
                [(p.x, p.y, p.visibility) for p in result.pose_landmarks.landmark], dtype=np.float64
            )
            world = np.array(
                [(p.x, p.y, p.z) for p in result.pose_world_landmarks.landmark], dtype=np.float64
            )
            xy, vis = lms[:, :2], lms[:, 2]
            box = _landmark_box(xy * (width, height), width, height)
            # A degenerate (fully off-frame) pose, or the same person again (a slot tracking into a
            # masked area): nobody new.
            if (
                (box[2] - box[0]) < 2
                or (box[3] - box[1]) < 2
                or any(_box_iou(box, f[3]) > 0.5 or _contained(box, f[3]) > 0.8 for f in found)
            ):
                self._idle[k] = self.second_search_every - 1 if k > 0 else 0
                break
            found.append((xy, vis, world, box))
        return found

    def process_frames(
        self,
        frames: Iterable[np.ndarray],
        original_shape: tuple[int, int] | None = None,
        on_frame: Callable[[int], None] | None = None,
    ) -> PoseResult:
        """Pose of a sequence of RGB uint8 frames (already at processing size).

        ``original_shape`` (h, w) is the size the keypoints are given in (default: the frames' own);
        ``on_frame(n)`` is called with the number of frames done so far, every 16 frames and at the end.
        """
        self._reset()
        tracker = _Tracker(self.max_persons, max_lost=self.max_lost)
        m = self.max_persons
        kp: list[np.ndarray] = []
        score: list[np.ndarray] = []
        kp3d: list[np.ndarray] = []
        img_shape: tuple[int, int] | None = None
        start = time.perf_counter()
        for t, frame in enumerate(frames):
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(
                    f"frame {t}: expected an RGB uint8 [H, W, 3] array, got {frame.dtype} {frame.shape}"
                )
            if img_shape is None:
                img_shape = (int(frame.shape[0]), int(frame.shape[1]))
                oh, ow = original_shape or img_shape
            f_kp = np.zeros((m, NUM_LANDMARKS, 2), np.float32)
            f_score = np.zeros((m, NUM_LANDMARKS), np.float32)
            f_3d = np.zeros((m, NUM_LANDMARKS, 3), np.float32)
            people = self._detect(np.ascontiguousarray(frame))
            for (xy, vis, world, _), slot in zip(
                people, tracker.assign(t, [p[3] for p in people]), strict=True
            ):
                f_kp[slot, :, 0] = np.clip(xy[:, 0] * ow, 0, ow - 1)
                f_kp[slot, :, 1] = np.clip(xy[:, 1] * oh, 0, oh - 1)
                # A visible landmark never has score exactly 0, which marks "no person" here.
                f_score[slot] = np.clip(vis, 1e-6, 1.0)
                f_3d[slot] = world * (1.0, -1.0, 1.0)  # MediaPipe (x right, y down, z away) -> y up
            kp.append(f_kp)
            score.append(f_score)
            kp3d.append(f_3d)
            if on_frame is not None and (t + 1) % 16 == 0:
                on_frame(t + 1)
        if img_shape is None:
            raise ValueError("no frames to process")
        if on_frame is not None:
            on_frame(len(kp))
        seconds = time.perf_counter() - start
        keypoint = np.stack(kp, axis=1)
        keypoint_score = np.stack(score, axis=1)
        keypoint_3d = np.stack(kp3d, axis=1)
        if self.min_run > 1:
            for person in range(m):
                present = (keypoint_score[person] > 0).any(axis=1)
                drop = present & ~_drop_short_runs(present, self.min_run)
                keypoint[person, drop] = 0
                keypoint_score[person, drop] = 0
                keypoint_3d[person, drop] = 0
        # People seen in more frames first (stable, so ties keep first-found-first).
        order = np.argsort(-(keypoint_score > 0).any(axis=2).sum(axis=1), kind="stable")
        return PoseResult(
            keypoint=np.ascontiguousarray(keypoint[order]),
            keypoint_score=np.ascontiguousarray(keypoint_score[order]),
            keypoint_3d=np.ascontiguousarray(keypoint_3d[order]),
            img_shape=img_shape,
            original_shape=(int(oh), int(ow)),
            seconds=seconds,
        )

    def process_video(self, video: str | Path, on_frame: Callable[[int], None] | None = None) -> PoseResult:
        """Decode ``video`` (streamed, downscaled to ``max_side``) and estimate its poses.

        Raises :class:`~lightact.data.video.VideoDecodeError` for a file that cannot be decoded.
        """
        video = Path(video)
        info = video_info(video)
        start = time.perf_counter()
        result = self.process_frames(
            iter_frames(video, max_side=self.max_side), (info.height, info.width), on_frame=on_frame
        )
        result.seconds = time.perf_counter() - start  # include the decoding
        return result


def _annotation(result: PoseResult, frame_dir: str, fps: float, label: int = -1) -> dict[str, Any]:
    return {
        "frame_dir": frame_dir,
        "total_frames": result.total_frames,
        "label": int(label),
        "keypoint": result.keypoint,
        "keypoint_score": result.keypoint_score,
        "keypoint_3d": result.keypoint_3d,
        "img_shape": tuple(int(v) for v in result.img_shape),
        "original_shape": tuple(int(v) for v in result.original_shape),
        "fps": float(fps),
        "layout": LAYOUT,
    }


def extract_pose(
    video: str | Path, max_persons: int = 2, max_side: int | None = 640, **kwargs: Any
) -> dict[str, Any]:
    """One annotation (standard skeleton-pickle schema, ``label`` -1) with the poses of ``video``.

    Keys: ``frame_dir`` (file stem), ``total_frames``, ``label``, ``keypoint`` [M, T, 33, 2] (original
    pixels), ``keypoint_score`` [M, T, 33], ``keypoint_3d`` [M, T, 33, 3] (metres, y up),
    ``img_shape`` (h, w of the processed frames), ``original_shape``, ``fps``, ``layout``.
    ``kwargs`` go to :class:`PoseExtractor`.
    """
    video = Path(video)
    with PoseExtractor(max_persons=max_persons, max_side=max_side, **kwargs) as extractor:
        result = extractor.process_video(video)
    return _annotation(result, video.stem, video_info(video).fps)


# --------------------------------------------------------------------------------------------------
# Many videos: inputs, part files, workers


def _read_video_list(path: Path) -> list[tuple[Path, int]]:
    """``path label`` per line (MMAction2 style; the label may be left out); relative paths are resolved
    against the list's folder. Blank lines and ``#`` comments are skipped."""
    videos: list[tuple[Path, int]] = []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(maxsplit=1)
        label = -1
        if len(parts) == 2 and re.fullmatch(r"-?\d+", parts[1]):
            name, label = parts[0], int(parts[1])
        else:
            name = line
        if not name:
            raise ValueError(f"{path}:{lineno}: no video path in {raw!r}")
        video = Path(name).expanduser()
        videos.append((video if video.is_absolute() else path.parent / video, label))
    return videos


def collect_videos(inputs: str | Path | Sequence[str | Path]) -> list[tuple[Path, int]]:
    """``(video, label)`` pairs from video paths, folders (searched recursively for video files, sorted)
    and video-list files (any other existing file that is not a video: ``path label`` lines)."""
    items = [inputs] if isinstance(inputs, str | Path) else list(inputs)
    videos: list[tuple[Path, int]] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
            if not found:
                raise FileNotFoundError(f"no video files ({', '.join(sorted(VIDEO_SUFFIXES))}) under {path}")
            videos += [(p, -1) for p in found]
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            videos.append((path, -1))  # a missing video is reported as failed, not raised
        elif path.is_file():
            videos += _read_video_list(path)
        else:
            raise FileNotFoundError(f"{path} is neither a video, a folder nor a video-list file")
    # The same video listed twice is processed once (the first label wins).
    unique: dict[Path, tuple[Path, int]] = {}
    for video, label in videos:
        unique.setdefault(video.resolve(), (video, label))
    return list(unique.values())


def part_path(parts_dir: str | Path, video: str | Path) -> Path:
    """Where the result of ``video`` is kept: ``<safe-stem>-<10 hex of sha1(absolute path)>.npz``."""
    video = Path(video)
    digest = hashlib.sha1(str(video.resolve()).encode("utf-8")).hexdigest()[:10]
    return Path(parts_dir) / f"{safe_file_name(video.stem, 'video', max_length=80)}-{digest}.npz"


def _source_signature(video: Path) -> tuple[int, int]:
    st = video.stat()
    return int(st.st_size), int(st.st_mtime_ns)


def _write_part(
    path: Path, result: PoseResult, video: Path, fps: float, max_persons: int, max_side: int | None
) -> None:
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


def _load_part(
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


# Worker-process state (one extractor per process, reused for all its videos).
_WORKER: dict[str, Any] = {}


def _worker_init(max_persons: int, max_side: int | None, queue: Any) -> None:
    with _quiet_fd2():
        _WORKER["extractor"] = PoseExtractor(max_persons=max_persons, max_side=max_side)
    _WORKER["queue"] = queue


def _process_one(
    extractor: PoseExtractor, video: Path, part: Path, on_frame: Callable[[int], None] | None
) -> dict[str, Any]:
    """Compute and store one video; a summary dict, with ``error`` set instead when it failed."""
    try:
        info = video_info(video)
        result = extractor.process_video(video, on_frame=on_frame)
        _write_part(part, result, video, info.fps, extractor.max_persons, extractor.max_side)
        return {
            "frames": result.total_frames,
            "seconds": result.seconds,
            "person_share": result.person_share,
            "second_person_share": result.second_person_share,
        }
    except (VideoDecodeError, OSError, ValueError) as err:
        return {"error": str(err)}
    except Exception as err:  # never lose the other videos to one bad file
        return {"error": f"{video}: {type(err).__name__}: {err}"}


def _worker_run(index: int, video: str, part: str) -> dict[str, Any]:
    queue = _WORKER["queue"]

    def on_frame(n: int) -> None:
        queue.put((index, n))

    return _process_one(_WORKER["extractor"], Path(video), Path(part), on_frame)


def _unique_ids(videos: Sequence[Path]) -> list[str]:
    """``frame_dir`` of each video: its stem, or ``stem_<hash>`` when another video has the same stem."""
    counts: dict[str, int] = {}
    for v in videos:
        counts[v.stem] = counts.get(v.stem, 0) + 1
    return [
        v.stem if counts[v.stem] == 1 else f"{v.stem}_{part_path('.', v).stem.rsplit('-', 1)[1]}"
        for v in videos
    ]


def _pool_context():
    import multiprocessing

    # forkserver: workers fork from a clean server process that imported this module (and so torch,
    # via the lightact package) once, instead of each worker importing it again (spawn) or inheriting
    # the parent's threads (fork).
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([__name__])
        return ctx
    return multiprocessing.get_context("spawn")


def run_pose(
    inputs: str | Path | Sequence[str | Path],
    out: str | Path,
    labels: str | Path | None = None,
    workers: int | None = None,
    max_persons: int = 2,
    max_side: int | None = 640,
    progress: bool = True,
) -> dict[str, Any]:
    """Extract the poses of many videos into one annotation pickle, in parallel and resumably.

    ``inputs``: video paths, folders (searched recursively) and/or video-list files (``path label`` per
    line, relative paths against the list's folder). ``labels``: a class-names file (one per line),
    stored as ``classes``. Each finished video is written at once to
    ``<out>.parts/<safe-stem>-<hash>.npz``; a rerun skips videos whose part exists and matches (same
    file size and mtime, ``max_persons``, ``max_side``). A video that cannot be decoded is reported in
    ``stats['failed']`` and left out; it never stops the others. ``workers``: processes (default: the
    usable cores); one worker runs in this process.

    Writes ``out`` ({``split``: {``all``: ids}, ``annotations``, [``classes``]}, via ``save_pickle``) and
    returns stats: ``videos``, ``computed``, ``resumed``, ``failed`` (list of {video, error}),
    ``frames`` (in the output), ``frames_computed``, ``seconds`` (wall clock of this run), ``fps``
    (frames computed per second of this run), ``per_video`` (frame_dir -> frames, seconds, fps,
    person_share, second_person_share, resumed), ``workers``, ``out``.
    """
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from lightact.data.skeleton.pickle_io import save_pickle

    start = time.perf_counter()
    if not mediapipe_available():
        raise MissingDependencyError(f"pose extraction needs MediaPipe: {_INSTALL_HINT}")
    out = Path(out)
    classes: list[str] | None = None
    if labels is not None:
        classes = [
            line.strip() for line in Path(labels).read_text(encoding="utf-8").splitlines() if line.strip()
        ]
    videos = collect_videos(inputs)
    parts_dir = out.with_name(out.name + ".parts")
    parts = [part_path(parts_dir, v) for v, _ in videos]

    results: dict[int, tuple[PoseResult, float]] = {}
    summaries: dict[int, dict[str, Any]] = {}
    failed: dict[int, str] = {}
    todo: list[int] = []
    for i, (video, _) in enumerate(videos):
        loaded = _load_part(parts[i], video, max_persons, max_side) if video.is_file() else None
        if loaded is None:
            todo.append(i)
        else:
            results[i] = loaded

    estimates: dict[int, int] = {}
    for i in todo:
        try:
            estimates[i] = max(1, video_info(videos[i][0]).num_frames)
        except VideoDecodeError:
            estimates[i] = 1
    n_workers = max(1, min(workers if workers is not None else available_cores(), len(todo) or 1))

    with progress_bar(progress, "frames") as bar:
        task = bar.add_task(f"pose: {len(videos)} videos", total=sum(estimates.values()) or None)
        done_frames: dict[int, int] = {i: 0 for i in todo}

        def show(i: int, n: int) -> None:
            done_frames[i] = n
            finished = len(summaries) + len(failed)
            bar.update(
                task,
                completed=sum(done_frames.values()),
                total=sum(max(estimates[j], done_frames[j]) for j in todo),
                description=f"pose: {finished}/{len(todo)} videos"
                + (f", {len(failed)} failed" if failed else ""),
            )

        def finish(i: int, summary: dict[str, Any]) -> None:
            if "error" in summary:
                failed[i] = summary["error"]
                show(i, estimates[i])
            else:
                summaries[i] = summary
                show(i, summary["frames"])

        if todo and n_workers == 1:
            with PoseExtractor(max_persons=max_persons, max_side=max_side) as extractor:
                for i in todo:
                    finish(i, _process_one(extractor, videos[i][0], parts[i], lambda n, i=i: show(i, n)))
        elif todo:
            ctx = _pool_context()
            queue = ctx.Queue()
            pool = ProcessPoolExecutor(
                max_workers=n_workers,
                mp_context=ctx,
                initializer=_worker_init,
                initargs=(max_persons, max_side, queue),
            )
            try:
                pending = {pool.submit(_worker_run, i, str(videos[i][0]), str(parts[i])): i for i in todo}
                while pending:
                    done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    with contextlib.suppress(Exception):  # queue.Empty ends the draining
                        while True:
                            i, n = queue.get_nowait()
                            if i not in summaries and i not in failed:
                                show(i, n)
                    for future in done:
                        i = pending.pop(future)
                        try:
                            finish(i, future.result())
                        except BrokenProcessPool:
                            finish(i, {"error": f"{videos[i][0]}: a worker process died; rerun to retry"})
            finally:
                # On Ctrl-C: drop the videos not started yet; the running ones finish and are kept.
                pool.shutdown(wait=True, cancel_futures=True)
                queue.close()

    # Results of this run are read back from their parts, so a rerun's output is byte-identical.
    for i in summaries:
        loaded = _load_part(parts[i], videos[i][0], max_persons, max_side)
        if loaded is None:  # cannot happen unless the file was changed meanwhile
            failed[i] = f"{videos[i][0]}: its result {parts[i]} could not be read back"
        else:
            results[i] = loaded

    ok = sorted(results)
    ids = _unique_ids([videos[i][0] for i in ok])
    annotations = [
        _annotation(results[i][0], frame_dir, results[i][1], videos[i][1])
        for i, frame_dir in zip(ok, ids, strict=True)
    ]
    data: dict[str, Any] = {"split": {"all": ids}, "annotations": annotations}
    if classes is not None:
        data["classes"] = classes
    save_pickle(data, out)

    per_video = {}
    for i, frame_dir in zip(ok, ids, strict=True):
        result = results[i][0]
        per_video[frame_dir] = {
            "video": str(videos[i][0]),
            "frames": result.total_frames,
            "seconds": result.seconds,
            "fps": result.fps,
            "person_share": result.person_share,
            "second_person_share": result.second_person_share,
            "resumed": i not in summaries,
        }
    seconds = time.perf_counter() - start
    frames_computed = sum(s["frames"] for i, s in summaries.items() if i in results)
    failures = [{"video": str(videos[i][0]), "error": failed[i]} for i in sorted(failed)]
    if failures:
        shown = "; ".join(f["error"] for f in failures[:3])
        more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
        warnings.warn(f"{len(failures)} video(s) failed and were left out: {shown}{more}", stacklevel=2)
    return {
        "out": str(out),
        "videos": len(videos),
        "computed": len([i for i in summaries if i in results]),
        "resumed": len(results) - len([i for i in summaries if i in results]),
        "failed": failures,
        "frames": sum(results[i][0].total_frames for i in ok),
        "frames_computed": frames_computed,
        "seconds": seconds,
        "fps": frames_computed / seconds if seconds > 0 else 0.0,
        "per_video": per_video,
        "workers": n_workers if todo else 0,
    }
