"""2D/3D poses of one video with MediaPipe Pose, as an annotation of the skeleton pickle.

MediaPipe's (legacy) Pose solution finds ONE person per image. To find up to ``max_persons`` people,
:class:`PoseExtractor` keeps one Pose instance per person *slot*, each in video (tracking) mode, and
runs them one after another on every frame (or each in its own thread, a frame behind the one before
it: ``process_frames(parallel_slots=True)``): slot ``k`` sees the frame with the people found by
slots ``0 .. k-1`` painted over (the box around all their landmarks, enlarged by ``mask_margin``,
filled with the frame's mean colour), so it must find somebody else. A slot that finds nobody ends
the frame: later slots would see the same picture. A slot tracking nobody searches alternately in the
frame and in the frame inside a black border (``search_padding``), where people too close for
MediaPipe's detector are found. Slots are only detectors; which *output* person a
detection belongs to is decided by a small tracker that matches detections to the previous frames'
people by bounding-box overlap and centroid distance (exact assignment, at most 4 x 4), and lets a
person that was lost for a while be re-acquired. Afterwards, appearances shorter than ``min_run``
frames (mostly leftovers of a masked person) are removed, and the people are ordered by the number
of frames they were seen in. ``docs/pose.md`` has measurements and the known failure cases.

Outputs per video (``M = max_persons`` always, ``T`` = decoded frames, 33 MediaPipe landmarks):

* ``keypoint`` float32 ``[M, T, 33, 2]``: x, y in pixels of the ORIGINAL video, clipped to the frame;
* ``keypoint_score`` float32 ``[M, T, 33]``: MediaPipe's landmark ``visibility``;
* ``keypoint_3d`` float32 ``[M, T, 33, 3]``: MediaPipe's ``pose_world_landmarks`` in metres, origin
  between the hips, converted from MediaPipe's axes (x right, y DOWN, z away from the camera) to
  x right, y UP, z away from the camera: ``(x, y, z) = (x_mp, -y_mp, z_mp)``.

A slot with no person in a frame is all zeros there, with score 0.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from lightact.data.skeleton.pose.mediapipe import MODEL_COMPLEXITY, mediapipe_log_filter, pose_graph
from lightact.data.skeleton.pose.tracking import Tracker, box_iou, contained, drop_short_runs, landmark_box
from lightact.data.video.reader import TimedFrame, iter_timed_frames, prefetch, video_info
from lightact.utils import available_cores, is_number

LAYOUT = "mediapipe33"
NUM_LANDMARKS = 33
# Frames a slot pipeline holds at once: enough for every slot to have work, few enough that the
# decoder's frames are not all held here.
_PIPELINE_DEPTH = 4
# XNNPACK threads one slot's graph may take. 2 are 1.6x faster than 1 for a graph alone on a 2-core
# machine (BENCHMARKS.md); more were not measured.
MAX_GRAPH_THREADS = 2
# PoseExtractor's search_padding: the border of every other search, a share of the frame's height and
# width on each side. At 10 poses/s, 0.5 kept somebody in all posed frames of the arm-wrestling
# close-ups (frames 120-200) against 0.34 without; a border on every search found nobody in the
# 1080p hugging clip, whose people are far away (BENCHMARKS.md).
DEFAULT_SEARCH_PADDING = 0.5

# One person found in a frame: xy normalised [33, 2], visibility [33], world xyz [33, 3] in
# MediaPipe axes, box in frame pixels [4].
_Person = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
# One person of a frame as :meth:`PoseExtractor.track` gives it: (person index kept across frames,
# xy normalised [33, 2], visibility [33], world xyz [33, 3] in MediaPipe axes).
Tracked = tuple[int, np.ndarray, np.ndarray, np.ndarray]


def graph_threads(max_persons: int, at_once: bool = True, requested: int | None = None) -> int:
    """XNNPACK threads for each person slot's graph: ``requested`` when given; else, in a process
    that may use every core and runs its slots ``at_once``, the cores shared out among the slots, at
    most :data:`MAX_GRAPH_THREADS`, and 1 when the slots run one after another. On 2 cores that is
    2 for one slot and 1 for two: with two people tracked, the first slot on 2 threads beside the
    second on 1 made a clip 1.35x slower than both on 1 (their threads contend for the cores:
    XNNPACK's waiting workers spin)."""
    if requested is not None:
        return requested
    if not at_once:
        return 1
    return max(1, min(MAX_GRAPH_THREADS, available_cores() // max(1, max_persons)))


def frame_arrays(
    people: Iterable[Tracked], max_persons: int, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame's tracked people (:meth:`PoseExtractor.track`'s tuples) as float32 arrays: 2D
    pixels of a ``height`` x ``width`` frame ``[M, 33, 2]`` (clipped to it), scores ``[M, 33]``
    and 3D ``[M, 33, 3]`` in lightact's axes (y up); a slot nobody holds is all zeros."""
    kp = np.zeros((max_persons, NUM_LANDMARKS, 2), np.float32)
    score = np.zeros((max_persons, NUM_LANDMARKS), np.float32)
    kp3d = np.zeros((max_persons, NUM_LANDMARKS, 3), np.float32)
    for slot, xy, vis, world in people:
        kp[slot] = np.clip(xy * (width, height), 0, (width - 1, height - 1))
        # A visible landmark never has score exactly 0, which marks "no person" here.
        score[slot] = np.clip(vis, 1e-6, 1.0)
        kp3d[slot] = world * (1.0, -1.0, 1.0)  # MediaPipe (x right, y down, z away) -> y up
    return kp, score, kp3d


def _rgb_frame(frame: np.ndarray, index: int) -> np.ndarray:
    """Frame ``index`` as MediaPipe takes it (C-contiguous); a ValueError naming it unless it is RGB
    uint8 ``[H, W, 3]``."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(
            f"frame {index}: expected an RGB uint8 [H, W, 3] array, got {frame.dtype} {frame.shape}"
        )
    return np.ascontiguousarray(frame)


@dataclass
class _FramePass:
    """One frame on its way through the person slots (:meth:`PoseExtractor._slot_pass`)."""

    rgb: np.ndarray
    image: np.ndarray | None = None  # what the next slot sees: the people found so far painted over
    found: list[_Person] = field(default_factory=list)
    done: bool = False  # a slot found nobody new: later slots do not run on this frame
    fill: np.ndarray | None = None  # the frame's mean colour, once a slot after the first needs it

    def __post_init__(self) -> None:
        if self.image is None:
            self.image = self.rgb


@dataclass
class PoseResult:
    """Pose of one video. Arrays are ``[M, T, ...]``; see the module docstring for their meaning."""

    keypoint: np.ndarray
    keypoint_score: np.ndarray
    keypoint_3d: np.ndarray
    img_shape: tuple[int, int]  # (h, w) of the frames MediaPipe saw
    original_shape: tuple[int, int]  # (h, w) of the video
    seconds: float  # decoding + pose, wall clock
    times: np.ndarray | None = None  # seconds of each frame from the first, when frames came timed
    # Person-frames removed as appearances shorter than min_run (why a video may have nobody left).
    short_runs_removed: int = 0

    @property
    def total_frames(self) -> int:
        return int(self.keypoint.shape[1])

    def on_frame_grid(self, fps: float) -> PoseResult:
        """The poses at every slot of a ``fps`` frame sequence, a slot without a frame of its own
        holding the frame before it (``times`` then None); itself when the frames were evenly
        timed (or untimed)."""
        if self.times is None or not len(self.times):
            return self
        slots = np.round(np.asarray(self.times) * fps).astype(np.int64)
        if np.array_equal(slots, np.arange(len(slots))):
            return self
        rows = np.searchsorted(slots, np.arange(int(slots.max()) + 1), side="right") - 1
        rows = np.clip(rows, 0, None)
        return replace(
            self,
            keypoint=np.ascontiguousarray(self.keypoint[:, rows]),
            keypoint_score=np.ascontiguousarray(self.keypoint_score[:, rows]),
            keypoint_3d=np.ascontiguousarray(self.keypoint_3d[:, rows]),
            times=None,
        )

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
        inference_threads: threads each slot's graph runs its models on (MediaPipe's own default is
            1; :func:`graph_threads` gives a process's share per slot). The poses are the same.
        search_padding: a slot that tracks nobody (MediaPipe runs its person detector then)
            searches alternately in the frame as it is and in the frame inside a black border of
            this share of its height and width on each side; a person found in the border is
            tracked in it. MediaPipe's detector misses people so close that they fill or leave the
            frame, and the border shrinks them; the plain searches keep finding people far away,
            whom a border makes too small (:meth:`_graph_padding` has the order). 0: plain
            searches only.
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
        inference_threads: int = 1,
        search_padding: float = DEFAULT_SEARCH_PADDING,
    ) -> None:
        if not 1 <= max_persons <= 4:
            raise ValueError(f"max_persons must be 1 to 4, got {max_persons}")
        if max_side is not None and max_side < 32:
            raise ValueError(f"max_side must be at least 32 (or None), got {max_side}")
        if not is_number(inference_threads, whole=True) or inference_threads < 1:
            raise ValueError(
                f"inference_threads must be a whole number at least 1, got {inference_threads!r}"
            )
        if not is_number(search_padding) or not 0 <= search_padding <= 2:
            raise ValueError(f"search_padding must be a number from 0 to 2, got {search_padding!r}")
        self.max_persons = max_persons
        self.max_side = max_side
        self.mask_margin = mask_margin
        self.max_lost = max_lost
        self.min_run = max(1, int(min_run))
        self.second_search_every = max(1, int(second_search_every))
        self.search_padding = float(search_padding)
        self._idle = [0] * max_persons  # frames each slot still skips before searching again
        self._clear_tracks()
        self._slots = []
        # Released in close(): the graphs log when they are built and when they first run.
        mediapipe_log_filter.hold()
        self._filtering = True
        try:
            for _ in range(max_persons):
                self._slots.append(
                    pose_graph(
                        inference_threads,
                        static_image_mode=False,
                        model_complexity=MODEL_COMPLEXITY,
                        smooth_landmarks=True,
                        enable_segmentation=False,
                        min_detection_confidence=min_detection_confidence,
                        min_tracking_confidence=min_tracking_confidence,
                    )
                )
        except BaseException:
            self.close()
            raise
        self._fresh = True

    def close(self) -> None:
        for pose in self._slots:
            pose.close()
        self._slots = []
        if self._filtering:
            self._filtering = False
            mediapipe_log_filter.release()

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
        self._clear_tracks()

    def _clear_tracks(self) -> None:
        m = self.max_persons
        self._tracking = [False] * m  # each slot's graph found somebody on its last call
        self._searched = [False] * m  # ... and that call was a search (it tracked nobody before it)
        self._padding = [0.0] * m  # the border of the image each slot's graph saw last

    def _graph_padding(self, k: int) -> float:
        """The border slot ``k``'s graph sees on this call. A graph that tracks somebody keeps the one
        it found them in (its track lives in that image's coordinates); the first search after a
        lost track keeps it too (the person is likely still at that distance); every failed search
        switches between none and :attr:`search_padding`."""
        searching = not self._tracking[k]
        if searching and self._searched[k]:
            self._padding[k] = 0.0 if self._padding[k] else self.search_padding
        self._searched[k] = searching
        return self._padding[k]

    def _slot_pass(self, k: int, frame: _FramePass) -> _FramePass:
        """Slot ``k`` on one frame, after slots ``0 .. k-1``: adds the person it finds to
        ``frame.found``, or marks the frame done (nobody new: later slots would see the same
        picture). Only slot ``k``'s own state (its graph, its idle count, its search border)
        changes, so different slots can work on different frames at once (:class:`SlotStream`)."""
        if frame.done:
            return frame
        height, width = frame.rgb.shape[:2]
        if k > 0:
            if self._idle[k] > 0:
                self._idle[k] -= 1
                frame.done = True
                return frame
            if frame.fill is None:
                frame.fill = frame.rgb.reshape(-1, 3).mean(axis=0).astype(np.uint8)
                frame.image = frame.rgb.copy()
            x0, y0, x1, y1 = frame.found[-1][3]
            mx, my = self.mask_margin * (x1 - x0), self.mask_margin * (y1 - y0)
            frame.image[
                max(0, int(y0 - my)) : min(height, int(np.ceil(y1 + my))),
                max(0, int(x0 - mx)) : min(width, int(np.ceil(x1 + mx))),
            ] = frame.fill
        padding = self._graph_padding(k)
        border = (round(height * padding), round(width * padding))
        image = frame.image
        if padding:
            image = np.pad(image, ((border[0], border[0]), (border[1], border[1]), (0, 0)))
        result = self._slots[k].process(image)
        self._tracking[k] = result.pose_landmarks is not None
        if result.pose_landmarks is None or result.pose_world_landmarks is None:
            return self._nobody_new(k, frame)
        lms = np.array([(p.x, p.y, p.visibility) for p in result.pose_landmarks.landmark], dtype=np.float64)
        world = np.array([(p.x, p.y, p.z) for p in result.pose_world_landmarks.landmark], dtype=np.float64)
        xy, vis = lms[:, :2], lms[:, 2]
        if padding:  # from the bordered image's [0, 1] to the frame's
            xy = (xy * image.shape[1::-1] - border[::-1]) / (width, height)
        box = landmark_box(xy * (width, height), width, height)
        # A degenerate (fully off-frame) pose, or the same person again (a slot tracking into a
        # masked area): nobody new.
        if (
            (box[2] - box[0]) < 2
            or (box[3] - box[1]) < 2
            or any(box_iou(box, f[3]) > 0.5 or contained(box, f[3]) > 0.8 for f in frame.found)
        ):
            return self._nobody_new(k, frame)
        frame.found.append((xy, vis, world, box))
        return frame

    def _nobody_new(self, k: int, frame: _FramePass) -> _FramePass:
        self._idle[k] = self.second_search_every - 1 if k > 0 else 0
        frame.done = True
        return frame

    def _detect(self, frame: np.ndarray) -> list[_Person]:
        """Up to ``max_persons`` people in one RGB frame, the slots one after another."""
        state = _FramePass(frame)
        for k in range(len(self._slots)):
            state = self._slot_pass(k, state)
        return state.found

    def stream(self) -> SlotStream:
        """A :class:`SlotStream` over the video begun with :meth:`start`: frames handed in one at a
        time, each person slot in its own thread (what the live loop uses)."""
        return SlotStream(self)

    def _pipelined(self, frames: Iterable[np.ndarray]) -> Iterator[list[Tracked]]:
        """:meth:`track` of every frame, in order, through a :class:`SlotStream`, with up to
        :data:`_PIPELINE_DEPTH` frames in flight."""
        with self.stream() as stream:
            for frame in frames:
                stream.put(frame)
                if stream.in_flight > _PIPELINE_DEPTH:
                    yield from stream.finished(wait=True)
            while stream.in_flight:
                yield from stream.finished(wait=True)

    def warm_up(self, height: int = 360, width: int = 640) -> None:
        """Run every slot's graph once on a blank frame, so that the first real frame does not pay
        for MediaPipe's start-up (about a second; what a live source would drop frames for), then
        forget it (:meth:`start`)."""
        blank = np.zeros((height, width, 3), np.uint8)
        for pose in self._slots:
            pose.process(blank)
        self._fresh = False
        self.start()

    def start(self) -> None:
        """Begin a new video (or stream) for :meth:`track`: the graphs and the tracker forget the
        previous one."""
        self._reset()
        self._tracker = Tracker(self.max_persons, max_lost=self.max_lost)

    def track(self, frame: np.ndarray, index: int) -> list[Tracked]:
        """The people of frame ``index`` (RGB uint8, processing size) of the video begun with
        :meth:`start`: ``(person index, xy normalised [33, 2], visibility [33], world xyz [33, 3]
        in MediaPipe axes)`` each, the index kept across frames by the tracker. ``index`` counts the
        frames given to :meth:`track` (what the tracker's ``max_lost`` counts in)."""
        return self._assign(index, self._detect(_rgb_frame(frame, index)))

    def _assign(self, index: int, people: list[_Person]) -> list[Tracked]:
        slots = self._tracker.assign(index, [p[3] for p in people])
        return [(slot, xy, vis, world) for (xy, vis, world, _), slot in zip(people, slots, strict=True)]

    def process_frames(
        self,
        frames: Iterable[np.ndarray | TimedFrame],
        original_shape: tuple[int, int] | None = None,
        on_frame: Callable[[int], None] | None = None,
        *,
        parallel_slots: bool = False,
    ) -> PoseResult:
        """Pose of a sequence of RGB uint8 frames (already at processing size), or of
        :class:`~lightact.data.video.reader.TimedFrame` s (their times kept in the result).

        ``original_shape`` (h, w) is the size the keypoints are given in (default: the frames' own);
        ``on_frame(n)`` is called with the number of frames done so far, every 16 frames and at the end.
        ``parallel_slots`` runs each person slot in its own thread, a frame behind the slot before it
        (the same result, sooner on a machine with a core to spare).
        """
        self.start()
        m = self.max_persons
        kp: list[np.ndarray] = []
        score: list[np.ndarray] = []
        kp3d: list[np.ndarray] = []
        times: list[float] = []
        shapes: list[tuple[int, int]] = []  # (h, w) of the first frame, once it has come

        def checked() -> Iterator[np.ndarray]:
            for t, item in enumerate(frames):
                frame = _rgb_frame(item.rgb if isinstance(item, TimedFrame) else item, t)
                if isinstance(item, TimedFrame):
                    times.append(item.time)
                if not shapes:
                    shapes.append((int(frame.shape[0]), int(frame.shape[1])))
                yield frame

        start = time.perf_counter()
        pipelined = parallel_slots and len(self._slots) > 1
        tracked = (
            self._pipelined(checked())
            if pipelined
            else (self._assign(t, self._detect(f)) for t, f in enumerate(checked()))
        )
        with contextlib.closing(tracked):  # an error here stops the slot threads at once
            for t, people in enumerate(tracked):
                f_kp, f_score, f_3d = frame_arrays(people, m, *(original_shape or shapes[0]))
                kp.append(f_kp)
                score.append(f_score)
                kp3d.append(f_3d)
                if on_frame is not None and (t + 1) % 16 == 0:
                    on_frame(t + 1)
        if not shapes:
            raise ValueError("no frames to process")
        img_shape = shapes[0]
        oh, ow = original_shape or img_shape
        if on_frame is not None:
            on_frame(len(kp))
        seconds = time.perf_counter() - start
        keypoint = np.stack(kp, axis=1)
        keypoint_score = np.stack(score, axis=1)
        keypoint_3d = np.stack(kp3d, axis=1)
        # A video shorter than min_run keeps a person seen in all of it (a 1-frame video).
        min_run = min(self.min_run, keypoint.shape[1])
        dropped = 0
        if min_run > 1:
            for person in range(m):
                present = (keypoint_score[person] > 0).any(axis=1)
                drop = present & ~drop_short_runs(present, min_run)
                dropped += int(drop.sum())
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
            times=np.asarray(times, dtype=np.float64) if len(times) == len(kp) else None,
            short_runs_removed=dropped,
        )

    def process_video(
        self,
        video: str | Path,
        on_frame: Callable[[int], None] | None = None,
        *,
        pose_fps: float | None = None,
        overlap: bool = False,
    ) -> PoseResult:
        """Decode ``video`` (streamed, downscaled to ``max_side``) and estimate its poses.

        ``pose_fps`` estimates poses at that rate only (frames due by their timestamps; the result's
        ``times`` say when each was), ``None`` on every frame. With ``overlap`` a decoding thread
        runs ahead of pose estimation (a bounded queue of frames), and each person slot runs in its
        own thread a frame behind the one before it (``process_frames(parallel_slots=True)``): a
        second core works on the second person while the first is found in the next frame. The
        poses are the same either way.

        Raises :class:`~lightact.data.video.VideoDecodeError` for a file that cannot be decoded.
        """
        video = Path(video)
        info = video_info(video)
        start = time.perf_counter()
        frames = iter_timed_frames(video, max_side=self.max_side, fps=pose_fps)
        result = self.process_frames(
            prefetch(frames) if overlap else frames,
            (info.height, info.width),
            on_frame=on_frame,
            parallel_slots=overlap,
        )
        if pose_fps is None and info.fps > 0:
            # Every decoded frame was posed: a variable-rate stream (or dropped frames) leaves
            # slots of the video's frame sequence without a frame, each showing the frame before
            # it, so its poses are that frame's; the rows are then the video's frames in time.
            result = result.on_frame_grid(info.fps)
        result.seconds = time.perf_counter() - start  # include the decoding
        return result


class SlotStream:
    """Frames through the person slots of a :class:`PoseExtractor`, each slot in its own thread a
    frame behind the slot before it (MediaPipe releases the GIL, so two slots use two cores).

    :meth:`put` hands in a frame (RGB uint8, processing size) and returns at once; :meth:`finished`
    hands out the people of the frames done so far, in the order they were put, with the person
    indices of :meth:`PoseExtractor.track` (the frames are counted from the extractor's
    :meth:`~PoseExtractor.start`). Every slot sees the same frames in the same order with the same
    people painted over as when the slots run one after another, so the people are the same.
    :attr:`first_slot_free` says whether a new frame would start at once: a live source hands in
    only then, and drops the frames that came meanwhile. Close it (or use it as a context manager)
    to stop the threads; frames still in flight are dropped.
    """

    def __init__(self, extractor: PoseExtractor) -> None:
        self._extractor = extractor
        self._workers = [
            ThreadPoolExecutor(1, thread_name_prefix=f"lightact-pose-slot{k}")
            for k in range(len(extractor._slots))
        ]
        self._first: Future | None = None  # the first slot's work on the newest frame
        self._frames: deque[Future] = deque()  # each frame in flight: its last slot's work
        self._index = 0

    @property
    def in_flight(self) -> int:
        return len(self._frames)

    @property
    def first_slot_free(self) -> bool:
        return self._first is None or self._first.done()

    def put(self, frame: np.ndarray) -> None:
        frame = _rgb_frame(frame, self._index + len(self._frames))
        slot_pass = self._extractor._slot_pass
        future = self._first = self._workers[0].submit(slot_pass, 0, _FramePass(frame))
        for k in range(1, len(self._workers)):
            future = self._workers[k].submit(lambda k, previous: slot_pass(k, previous.result()), k, future)
        self._frames.append(future)

    def wait(self, timeout: float | None = None) -> None:
        """Until the oldest frame in flight is done or, while the first slot is busy, that slot is
        free; at most ``timeout`` seconds."""
        oldest = self._frames[0] if self._frames else None
        if oldest is not None and oldest.done():
            return
        pending = [f for f in (self._first, oldest) if f is not None and not f.done()]
        if pending:
            futures.wait(pending, timeout, return_when=futures.FIRST_COMPLETED)

    def finished(self, wait: bool = False) -> list[list[Tracked]]:
        """The people of every frame done, oldest first (each frame once); with ``wait``, after
        waiting for the oldest frame in flight. A slot's error is raised here."""
        if wait and self._frames:
            self._frames[0].result()
        done = []
        while self._frames and self._frames[0].done():
            found = self._frames.popleft().result().found
            done.append(self._extractor._assign(self._index, found))
            self._index += 1
        return done

    def close(self) -> None:
        # Queued frames are dropped; a slot waiting on a dropped frame's earlier slot gets its
        # cancellation and ends, so joining cannot hang.
        for worker in self._workers:
            worker.shutdown(wait=False, cancel_futures=True)
        for worker in self._workers:
            worker.shutdown(wait=True)
        self._frames.clear()

    def __enter__(self) -> SlotStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pose_annotation(result: PoseResult, frame_dir: str, fps: float, label: int = -1) -> dict[str, Any]:
    """``result`` as one annotation of the skeleton pickle (the keys :func:`extract_pose` lists)."""
    extra = {}
    if (
        result.times is not None
        and len(result.times)
        and not np.allclose(result.times, np.arange(len(result.times)) / fps, atol=0.5 / fps)
    ):  # poses at another rate than the video's (or a variable one): when each was taken
        extra["frame_times"] = result.times.astype(np.float32)
    return {
        **extra,
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
        "short_runs_removed": int(result.short_runs_removed),
    }


def extract_pose(
    video: str | Path,
    max_persons: int = 2,
    max_side: int | None = 640,
    *,
    pose_fps: float | None = None,
    overlap: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """One annotation (standard skeleton-pickle schema, ``label`` -1) with the poses of ``video``.

    Keys: ``frame_dir`` (file stem), ``total_frames``, ``label``, ``keypoint`` [M, T, 33, 2] (original
    pixels), ``keypoint_score`` [M, T, 33], ``keypoint_3d`` [M, T, 33, 3] (metres, y up),
    ``img_shape`` (h, w of the processed frames), ``original_shape``, ``fps``, ``layout``; with a
    ``pose_fps`` below the video's, ``frame_times`` (seconds of each row; resample with
    :func:`lightact.data.skeleton.resample.resample_poses`). ``overlap`` decodes in a thread
    ahead of pose estimation and runs the person slots in threads of their own
    (:meth:`PoseExtractor.process_video`). ``kwargs`` go to :class:`PoseExtractor`; with
    ``overlap`` its ``inference_threads`` (not given, or None) default to :func:`graph_threads`.
    """
    video = Path(video)
    kwargs["inference_threads"] = graph_threads(max_persons, overlap, kwargs.get("inference_threads"))
    with PoseExtractor(max_persons=max_persons, max_side=max_side, **kwargs) as extractor:
        result = extractor.process_video(video, pose_fps=pose_fps, overlap=overlap)
    return pose_annotation(result, video.stem, video_info(video).fps)
