"""A skeleton model on a live source: ``lightact predict WORK_DIR --live SOURCE``.

SOURCE is a camera (``/dev/video0``, or an index ``0`` for it; read through PyAV's v4l2 input), a
stream URL (``rtsp://``, ``http://``, ``udp://``, ...: whatever PyAV's FFmpeg opens), or a video file,
played at its own frame rate as if it were a camera.

The *reader* thread decodes the source as it arrives (a file: paced by its timestamps) and keeps the
frames due at the pose rate (``pose_fps``, 10 by default; the rest are skipped by design and counted
as such), converted at the pose size, in a one-frame mailbox: when the next due frame arrives before
the last was taken, the older one is *dropped* and counted, so the answer never falls behind the
source. The *main* thread hands the newest frame to the pose stream whenever its first person slot
is free (MediaPipe, tracked identities; each slot in its own thread, so the second person of one
frame is found while the first slot is on the next frame:
:class:`~lightact.data.skeleton.pose.extractor.SlotStream`), takes the people of the frames done, in
order, keeps the last ``window`` frames' worth of seconds of them, and every ``stride`` frames'
worth of seconds classifies that rolling window (resampled to the model's rate, each person on their
own or everybody together as :meth:`SkeletonRecognizer.predict` decides), printing the top k per
person and the latency from the frame's arrival to the answer.

It ends at the end of a file, after ``seconds``, or on Ctrl-C (SIGINT), and returns (and writes to
``out_dir/live_summary.json``) a summary: frames seen, due, processed, dropped and skipped, latency
p50/p95/max, and every update's predictions. With ``render`` the processed frames, with skeletons,
ids and the current actions drawn, are written as a video with their own timestamps.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lightact.data.skeleton.pose.extractor import frame_arrays
from lightact.data.video.reader import TimedFrame, VideoDecodeError, decode_timed

__all__ = ["LiveReader", "open_source", "run_live"]

DEFAULT_WINDOW_S = 3.0  # seconds classified at each update when --window is not given
UPDATES_PER_WINDOW = 6  # the default stride: half a second for the default window
# How long the pose loop waits for a new frame while frames are in the person slots' threads.
_POLL_S = 0.002


def open_source(source: str):
    """``(container, stream, is_file)`` for a camera (``/dev/videoN`` or an index), a URL or a file;
    an ``OSError`` naming the source when it cannot be opened."""
    import av

    device = f"/dev/video{source}" if re.fullmatch(r"\d+", source) else source
    is_camera = device.startswith("/dev/video")
    is_url = "://" in source
    try:
        if is_camera:
            container = av.open(device, format="v4l2")
        elif is_url:
            options = {"rtsp_transport": "tcp"} if source.startswith("rtsp") else {}
            container = av.open(source, options=options, timeout=10.0)
        else:
            if not Path(source).is_file():
                raise FileNotFoundError(
                    f"no live source at {source}: give a camera (/dev/video0 or 0), a URL or a file"
                )
            container = av.open(source)
    except av.FFmpegError as err:
        raise OSError(f"cannot open live source {source}: {err}") from None
    if not container.streams.video:
        container.close()
        raise OSError(f"live source {source} has no video stream")
    return container, container.streams.video[0], not (is_camera or is_url)


@dataclass
class _Due:
    frame: TimedFrame
    arrival: float  # perf_counter when the frame was there (a paced file: when it was due)


@dataclass
class LiveCounts:
    seen: int = 0  # every frame the source gave
    due: int = 0  # frames due at the pose rate
    dropped: int = 0  # due frames replaced by a newer one before the pose step took them
    processed: int = 0


class LiveReader(threading.Thread):
    """The reader thread: frames due at ``pose_fps`` into a one-frame mailbox, dropping (and
    counting) a frame not taken before the next is due; a file is paced by its timestamps."""

    def __init__(self, source: str, pose_fps: float | None, max_side: int | None, pace: bool | None = None):
        super().__init__(name="lightact-live-reader", daemon=True)
        self.source = source
        self.container, self.stream, is_file = open_source(source)
        self.fps = float(self.stream.average_rate or self.stream.guessed_rate or 25.0)
        self.pace = is_file if pace is None else pace
        self.pose_fps = pose_fps
        self.max_side = max_side
        self.counts = LiveCounts()
        self.error: BaseException | None = None
        self.finished = threading.Event()
        self.stop = threading.Event()
        self._mailbox: _Due | None = None
        self._ready = threading.Condition()
        self.size = (int(self.stream.codec_context.height or 0), int(self.stream.codec_context.width or 0))

    def run(self) -> None:
        start = time.perf_counter()
        try:
            frames = decode_timed(
                self.container, self.stream, self.source, self.max_side, self.pose_fps, self._skipped
            )
            for frame in frames:
                if self.pace and self.stop.wait(max(0.0, start + frame.time - time.perf_counter())):
                    break
                if self.stop.is_set():
                    break
                with self._ready:
                    self.counts.seen = frame.index + 1
                    self.counts.due += 1
                    if self._mailbox is not None:
                        self.counts.dropped += 1
                    self._mailbox = _Due(frame, time.perf_counter())
                    self._ready.notify()
        except (VideoDecodeError, OSError) as err:
            self.error = err
        finally:
            self.container.close()
            with self._ready:
                self.finished.set()
                self._ready.notify()

    def _skipped(self, index: int, _time: float) -> None:
        with self._ready:
            self.counts.seen = index + 1

    def take(self, timeout: float = 0.5) -> _Due | None:
        """The newest due frame, waiting up to ``timeout``; ``None`` when there is none (yet, or
        any more: see :attr:`finished`)."""
        with self._ready:
            if self._mailbox is None and not self.finished.is_set():
                self._ready.wait(timeout)
            item, self._mailbox = self._mailbox, None
        return item


@dataclass
class _Rolling:
    """The last seconds of poses: per processed frame its time, 2D pixels, scores and 3D."""

    seconds: float
    times: deque = field(default_factory=deque)
    rows: deque = field(default_factory=deque)

    def add(self, t: float, row: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        self.times.append(t)
        self.rows.append(row)
        while self.times and self.times[0] < t - self.seconds:
            self.times.popleft()
            self.rows.popleft()

    def annotation(self, fps: float) -> dict[str, Any]:
        kp, score, kp3d = (np.stack(a, axis=1) for a in zip(*self.rows, strict=True))
        times = np.asarray(self.times) - self.times[0]
        return {
            "frame_dir": "live",
            "keypoint": kp,
            "keypoint_score": score,
            "keypoint_3d": kp3d,
            "frame_times": times,
            "fps": fps,
            "layout": "mediapipe33",
        }


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


class _Classifier(threading.Thread):
    """Classifies rolling-window snapshots off the pose loop (torch and ONNX Runtime release the GIL),
    so that pose estimation never waits for the model: a snapshot handed over while the previous one
    is still being classified replaces it, and that update is counted as skipped."""

    def __init__(self, classify: Callable[[dict[str, Any]], list], on_result: Callable[..., None]) -> None:
        super().__init__(name="lightact-live-model", daemon=True)
        self.classify = classify
        self.on_result = on_result
        self.skipped = 0
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self._next: tuple | None = None
        self._ready = threading.Condition()

    def submit(self, snapshot: dict[str, Any], t: float, arrival: float) -> None:
        with self._ready:
            if self._next is not None:
                self.skipped += 1
            self._next = (snapshot, t, arrival)
            self._ready.notify()

    def run(self) -> None:
        while True:
            with self._ready:
                while self._next is None and not self.stop.is_set():
                    self._ready.wait(0.1)
                if self._next is None:  # stopped with nothing left to classify
                    return
                job, self._next = self._next, None
            snapshot, t, arrival = job
            try:
                self.on_result(self.classify(snapshot), t, arrival)
            except Exception as err:  # noqa: BLE001 - reported in the summary, never a dead loop
                self.error = err
                return

    def finish(self, timeout: float = 30.0) -> None:
        """Classify what is still pending, then end."""
        with self._ready:
            self.stop.set()
            self._ready.notify()
        self.join(timeout)


def run_live(
    recognizer,
    source: str,
    *,
    window: int | None = None,
    stride: int | None = None,
    topk: int = 5,
    render: str | Path | None = None,
    out_dir: str | Path | None = None,
    seconds: float | None = None,
    echo: Callable[[str], None] = print,
    extractor=None,
    model_threads: int | None = 1,
) -> dict[str, Any]:
    """Classify ``source`` live with a :class:`~lightact.inference.skeleton.SkeletonRecognizer`
    (see the module notes); ``window`` and ``stride`` count frames at the model's rate. Returns the
    summary. ``extractor`` replaces the MediaPipe :class:`PoseExtractor` (anything with ``start()``
    and ``track(frame, index)``, which is then called for each frame in turn; or with ``stream()``
    as well, a :class:`~lightact.data.skeleton.pose.extractor.SlotStream`). The model runs with
    ``model_threads`` intra-op threads (torch; one by default: decoding and pose estimation have the
    other cores)."""
    from lightact.data.skeleton.resample import resample_poses
    from lightact.inference.results import NoPersonError

    if recognizer.modality != "skeleton":
        raise ValueError(
            f"--live classifies poses: it needs a skeleton model, not a {recognizer.modality} one"
        )
    window, stride, topk = recognizer.check_options(window, stride, topk)
    window_s = window / recognizer.fps if window else DEFAULT_WINDOW_S
    update_s = stride / recognizer.fps if stride else window_s / UPDATES_PER_WINDOW
    options = dict(recognizer.pose_options)
    if extractor is None:
        from lightact.data.skeleton.pose.extractor import DEFAULT_SEARCH_PADDING, PoseExtractor, graph_threads

        max_persons = options.get("max_persons", 2)
        extractor = PoseExtractor(
            max_persons=max_persons,
            max_side=options.get("max_side", 640),
            second_search_every=options.get("second_search_every", 1),
            inference_threads=graph_threads(max_persons, requested=options.get("inference_threads")),
            search_padding=options.get("search_padding", DEFAULT_SEARCH_PADDING),
        )
    reader = LiveReader(source, options.get("pose_fps"), options.get("max_side", 640))
    rolling = _Rolling(window_s)
    updates: list[dict[str, Any]] = []
    latencies: list[float] = []
    current: list = []

    def classify(snapshot: dict[str, Any]) -> list:
        try:
            result = recognizer.predict(resample_poses(snapshot, recognizer.fps), topk=topk)
        except NoPersonError:
            return []
        return result if isinstance(result, list) else [result]

    def on_result(result: list, t: float, arrival: float) -> None:
        nonlocal current
        current = result
        latency = time.perf_counter() - arrival
        latencies.append(latency)
        update = {
            "time": round(t, 3),
            "latency_ms": round(1000 * latency, 1),
            "people": [{"persons": p.persons, "topk": [c.to_dict() for c in p.topk]} for p in result],
        }
        updates.append(update)
        echo(_update_line(update, t))

    classifier = _Classifier(classify, on_result)
    writer = None
    started = time.perf_counter()
    ended = "end of source"
    warm_up = getattr(extractor, "warm_up", None)
    if warm_up is not None:  # MediaPipe's start-up before the first frame is due, not on it
        height, width = reader.size
        warm_up(*_scaled(height or 360, width or 640, options.get("max_side", 640)))
    with _torch_threads(model_threads if recognizer.backend == "torch" else None), _interruptible():
        extractor.start()
        stream = extractor.stream() if hasattr(extractor, "stream") else _OneByOne(extractor)
        reader.start()
        classifier.start()
        next_update = 0.0
        in_flight: deque[_Due] = deque()  # frames handed to the pose stream, oldest first

        def finish_frames(wait: bool = False) -> None:
            nonlocal writer, next_update
            for people in stream.finished(wait):
                item = in_flight.popleft()
                frame = item.frame
                row = _pose_row(people, frame, reader.size, options)
                reader.counts.processed += 1
                rolling.add(frame.time, row)
                if frame.time >= next_update:
                    next_update = frame.time + update_s
                    classifier.submit(rolling.annotation(reader.fps), frame.time, item.arrival)
                if render is not None:
                    from lightact.inference.render import VideoWriter

                    writer = writer or VideoWriter(render, reader.fps)
                    writer.write(_drawn(frame, people, current, reader.size), frame.time)

        try:
            while True:
                finish_frames()
                if seconds is not None and time.perf_counter() - started >= seconds:
                    ended = "time limit"
                    break
                if not stream.first_slot_free:
                    stream.wait(0.5)
                    continue
                # While frames are in flight, look for their people between short waits for the
                # next frame, so that neither waits for the other.
                item = reader.take(_POLL_S if in_flight else 0.5)
                if item is not None:
                    stream.put(item.frame.rgb)
                    in_flight.append(item)
                elif reader.finished.is_set():
                    if not in_flight:
                        break
                    stream.wait(0.5)
            while in_flight:  # the frames already taken are answered, not lost
                finish_frames(wait=True)
        except KeyboardInterrupt:
            ended = "interrupted"
        finally:
            stream.close()
            reader.stop.set()
            reader.join(timeout=5)
            classifier.finish()
            if writer is not None:
                writer.close()
    if reader.error is not None and reader.counts.processed == 0:
        raise reader.error
    counts = reader.counts
    summary = {
        "source": source,
        "ended": ended,
        "seconds": round(time.perf_counter() - started, 3),
        "pose_fps": options.get("pose_fps"),
        "source_fps": reader.fps,
        "window_s": window_s,
        "update_s": update_s,
        "frames_seen": counts.seen,
        "frames_due": counts.due,
        "frames_processed": counts.processed,
        "frames_dropped": counts.dropped,
        "frames_skipped_by_rate": counts.seen - counts.due,
        "dropped_share_of_due": counts.dropped / counts.due if counts.due else 0.0,
        "latency_ms": {
            "p50": _round(_percentile(latencies, 50)),
            "p95": _round(_percentile(latencies, 95)),
            "max": _round(max(latencies) if latencies else None),
        },
        "updates": len(updates),
        "updates_skipped": classifier.skipped,
        "predictions": updates,
        "render": str(render) if render is not None else None,
        "error": next((str(e) for e in (reader.error, classifier.error) if e is not None), None),
    }
    if out_dir is not None:
        from lightact.utils import atomic_write

        path = Path(out_dir) / "live_summary.json"
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2) + "\n"))
        summary["summary_file"] = str(path)
    return summary


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt in the block (the loop then ends with its summary), also in a
    process that inherited SIGINT ignored (started by a program or script that ignores it, where
    Python installs no handler): that is how a live run is meant to end. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` for the block (nothing without torch or a value)."""
    torch = sys.modules.get("torch")
    if torch is None or threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _scaled(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    from lightact.data.video.reader import scaled_size

    w, h = scaled_size(width, height, max_side)
    return h, w


def _round(value: float | None) -> float | None:
    return None if value is None else round(1000 * value, 1)


def _pose_row(people: list, frame: TimedFrame, size: tuple[int, int], options: dict[str, Any]):
    """One processed frame's tracked people as ``(2D pixels of the source [M, 33, 2], scores
    [M, 33], 3D [M, 33, 3])`` (MediaPipe axes to lightact's: y up)."""
    height, width = size if all(size) else frame.rgb.shape[:2]
    return frame_arrays(people, options.get("max_persons", 2), height, width)


class _OneByOne:
    """The stream interface of :class:`~lightact.data.skeleton.pose.extractor.SlotStream` over an
    extractor that only has ``track(frame, index)``: each frame's people found when it is put."""

    def __init__(self, extractor) -> None:
        self._extractor = extractor
        self._done: list[list] = []
        self._index = 0
        self.first_slot_free = True

    def put(self, frame: np.ndarray) -> None:
        self._done.append(self._extractor.track(frame, self._index))
        self._index += 1

    def finished(self, wait: bool = False) -> list[list]:
        done, self._done = self._done, []
        return done

    def wait(self, timeout: float | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def _update_line(update: dict[str, Any], t: float) -> str:
    parts = []
    for person in update["people"]:
        who = "+".join(f"P{p}" for p in person["persons"] or [])
        top = ", ".join(f"{c['label']} {c['probability']:.0%}" for c in person["topk"][:3])
        parts.append(f"{who}: {top}")
    what = " | ".join(parts) or "nobody seen"
    return f"{t:7.2f} s  {what}  (latency {update['latency_ms']:.0f} ms)"


def _drawn(frame: TimedFrame, people, predictions, size: tuple[int, int]) -> np.ndarray:
    """The processed frame with its people's skeletons and ids and the current actions."""
    from lightact.data.skeleton.layouts import MEDIAPIPE33
    from lightact.inference.render import Overlay, PersonDrawing, draw_overlay, live_panel

    h, w = frame.rgb.shape[:2]
    drawings = [PersonDrawing(slot, xy * (w, h), vis, f"P{slot}") for slot, xy, vis, _ in people]
    overlay = Overlay(drawings, live_panel(predictions), f"{frame.time:5.1f} s  live")
    return draw_overlay(frame.rgb, overlay, MEDIAPIPE33.bones)
