"""Streamed video decoding with PyAV: frames are decoded one at a time, never the whole video at once.

>>> info = video_info("clip.mp4")            # fps, num_frames, width, height, duration
>>> for rgb in iter_frames("clip.mp4", max_side=640):
...     ...                                  # uint8 [H, W, 3], longer side <= 640

A file that cannot be opened or decoded raises :class:`VideoDecodeError` (a ``ValueError``) that names
the file, and for errors in the middle of a stream, the index of the frame that failed.
"""

from __future__ import annotations

import queue
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import numpy as np

from lightact.errors import DataError

__all__ = [
    "MissingDependencyError",
    "TimedFrame",
    "VideoDecodeError",
    "VideoInfo",
    "iter_frames",
    "decode_timed",
    "iter_timed_frames",
    "prefetch",
    "scaled_size",
    "video_info",
]

T = TypeVar("T")


# File suffixes taken for videos when a folder is searched (pose, predict, feature extraction).
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts"}
)


class MissingDependencyError(ImportError):
    """An optional dependency is not installed; the message says what to install."""


class VideoDecodeError(DataError):
    """A video could not be opened or decoded. The message names the file (and the frame, mid-stream)."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about its first video stream.

    ``num_frames`` comes from the container header when it has one, otherwise it is estimated as
    ``round(duration * fps)``; only decoding every frame gives the exact count.
    """

    fps: float
    num_frames: int
    width: int
    height: int
    duration: float  # seconds; 0.0 when the container does not say


def _av():
    try:
        import av  # PyAV; imported lazily so that importing this module stays cheap
    except ImportError as err:
        raise MissingDependencyError("video decoding needs PyAV: pip install av") from err
    return av


def _open(path: Path):
    """The opened container and its first video stream; every failure becomes a VideoDecodeError."""
    av = _av()
    if not path.is_file():
        raise VideoDecodeError(f"{path}: no such video file")
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise VideoDecodeError(f"{path}: cannot open as a video ({err})") from err
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(f"{path}: has no video stream")
    return container, container.streams.video[0]


def _stream_fps(stream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return float(rate)
    return 0.0


def video_info(path: str | Path) -> VideoInfo:
    """Frame rate, frame count (estimated when the header lacks it), size and duration, without decoding."""
    path = Path(path)
    container, stream = _open(path)
    try:
        fps = _stream_fps(stream)
        duration = 0.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * Fraction(stream.time_base))
        elif container.duration is not None:
            duration = container.duration / _av().time_base
        num_frames = int(stream.frames or 0)
        if num_frames <= 0 and duration > 0 and fps > 0:
            num_frames = int(round(duration * fps))
        if duration <= 0 and num_frames > 0 and fps > 0:
            duration = num_frames / fps
        width = int(stream.codec_context.width or 0)
        height = int(stream.codec_context.height or 0)
        return VideoInfo(fps=fps, num_frames=num_frames, width=width, height=height, duration=duration)
    finally:
        container.close()


def scaled_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) scaled down, aspect kept, so that the longer side is at most ``max_side``.

    Frames are never upscaled; ``None`` (or a limit at least the longer side) keeps the size.
    """
    if max_side is None or max(width, height) <= max_side:
        return width, height
    if max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    scale = max_side / max(width, height)
    return max(1, int(round(width * scale))), max(1, int(round(height * scale)))


_REORDER = 8  # frames an AVI's decoder-order timestamps may be out of display order


def numbered_frames(container, stream, frames: Iterator | None = None) -> Iterator[tuple[int, object]]:
    """``(number, frame)`` for each decoded frame: its position in the video's frame sequence, from
    its timestamp.

    A variable-frame-rate file (or an AVI with dropped frames) decodes fewer frames than its frame
    sequence holds: a frame's number is its presentation time x the stream's frame rate, so a gap in
    the numbers is a frame that repeats the previous one; counting decoded frames instead would
    squeeze 30 s into 5. An AVI's timestamps are frame positions in decoding order (shifted by the
    B-frame delay, out of display order for H.264): they are sorted within a window of
    :data:`_REORDER` frames and counted from the first. Frames without timestamps are counted.
    ``frames`` is the decoder's iterator (default: decode ``stream`` from where it stands).
    """
    import heapq

    frames = container.decode(stream) if frames is None else frames
    fps, time_base, start = _stream_fps(stream), stream.time_base, stream.start_time or 0
    avi = "avi" in set((container.format.name or "").split(","))
    timed = time_base is not None and fps > 0
    last, first, pending, stamps = -1, None, [], []  # pending: frames awaiting their (AVI) number
    for frame in frames:
        if frame.pts is None or not timed:
            number = last + 1
        elif not avi:
            number = int(round(float((frame.pts - start) * time_base) * fps))
        else:
            heapq.heappush(stamps, frame.pts)
            pending.append(frame)
            if len(pending) <= _REORDER:
                continue
            stamp = heapq.heappop(stamps)
            first = stamp if first is None else first
            number, frame = stamp - first, pending.pop(0)
        last = max(last + 1, number)
        yield last, frame
    for frame in pending:
        stamp = heapq.heappop(stamps)
        first = stamp if first is None else first
        last = max(last + 1, stamp - first)
        yield last, frame


def warn_if_cut(path: str | Path, decoded: int, expected: int) -> None:
    """Warn when a video decodes to clearly fewer frames than its header announces: a file cut
    short (an interrupted download or copy) otherwise passes for a shorter video."""
    if expected > 0 and decoded < expected - 2 and decoded < 0.95 * expected:
        warnings.warn(
            f"{path}: decoded {decoded} of the {expected} frames its header announces; the file "
            "may be cut short (only the decoded frames are used)",
            stacklevel=3,
        )


def iter_frames(path: str | Path, max_side: int | None = None) -> Iterator[np.ndarray]:
    """Decode ``path`` frame by frame: RGB uint8 arrays [H, W, 3], downscaled to ``max_side``.

    Decoding is threaded (FFmpeg's frame/slice threads) and streamed: only the current frame is held.
    Scaling and the conversion to RGB happen in one libswscale call (area filter when downscaling).
    A file that decodes to clearly fewer frames than its header says warns (:func:`warn_if_cut`).
    The file is closed when the iterator is exhausted, closed or garbage collected.
    """
    for frame in iter_timed_frames(path, max_side):
        yield frame.rgb


@dataclass(frozen=True)
class TimedFrame:
    """A decoded frame: its index in the stream, its presentation time in seconds from the first
    frame, and its pixels (RGB uint8 ``[H, W, 3]``)."""

    index: int
    time: float
    rgb: np.ndarray


def iter_timed_frames(
    path: str | Path, max_side: int | None = None, fps: float | None = None
) -> Iterator[TimedFrame]:
    """Decode ``path`` like :func:`iter_frames`, keeping only the frames due at ``fps`` (every frame
    when ``None``): a frame is kept when its timestamp reaches the next multiple of ``1 / fps``, so
    the kept frames follow the stream's own clock, also for a variable frame rate. Every frame is
    decoded (inter-frame codecs need them), but only kept ones are scaled and converted to RGB."""
    path = Path(path)
    container, stream = _open(path)
    try:
        yield from decode_timed(container, stream, str(path), max_side, fps)
    finally:
        container.close()


def decode_timed(
    container,
    stream,
    name: str,
    max_side: int | None = None,
    fps: float | None = None,
    on_skip: Callable[[int, float], None] | None = None,
) -> Iterator[TimedFrame]:
    """:func:`iter_timed_frames` on an opened PyAV container (a file, a camera, a stream URL);
    ``name`` names the source in errors; ``on_skip(index, time)`` is called for each frame that is
    not due. The caller closes the container."""
    av = _av()
    stream.thread_type = "AUTO"
    rate = _stream_fps(stream) or 25.0
    index, due = 0, 0.0
    first: float | None = None
    last: float | None = None
    ordered = True
    frames = container.decode(stream)
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            break
        except (av.FFmpegError, OSError) as err:
            raise VideoDecodeError(f"{name}: decoding failed at frame {index} ({err})") from err
        # Timestamps, where the container has usable ones (a variable frame rate); an AVI with
        # B-frames stores them in decoding order, and from the first one that goes backwards the
        # frame index at the nominal rate is the clock.
        stamp = float(frame.time) if frame.time is not None else None
        if stamp is None or (last is not None and stamp <= last):
            ordered = False
        last = stamp
        first = stamp if first is None else first
        time = stamp - first if ordered and stamp is not None else index / rate
        # Half a source frame of slack: a 30 fps stream sampled at 10 fps keeps every third frame.
        if fps is None or time + 0.5 / rate >= due:
            if fps is not None:
                due = max(due + 1.0 / fps, time + 0.5 / fps)
            width, height = scaled_size(frame.width, frame.height, max_side)
            try:
                if (width, height) == (frame.width, frame.height):
                    rgb = frame.to_ndarray(format="rgb24")
                else:
                    rgb = frame.to_ndarray(width=width, height=height, format="rgb24", interpolation="AREA")
            except (av.FFmpegError, ValueError) as err:
                raise VideoDecodeError(f"{name}: cannot convert frame {index} to RGB ({err})") from err
            yield TimedFrame(index, time, np.ascontiguousarray(rgb))
        elif on_skip is not None:
            on_skip(index, time)
        index += 1
    if index == 0:
        raise VideoDecodeError(f"{name}: no frame could be decoded")
    # A variable-rate AVI's header counts frame slots, of which only the held frames decode: the
    # last frame's position, not the number decoded, tells a cut file (as the clip reader judges it).
    warn_if_cut(name, max(index, int(round(time * rate)) + 1), int(stream.frames or 0))


_DONE = object()


def prefetch(items: Iterable[T], depth: int = 8) -> Iterator[T]:
    """Iterate ``items`` in a background thread, at most ``depth`` ahead of the consumer (decoding
    overlaps with what the consumer does: PyAV and MediaPipe release the GIL while they work). An
    error in the producer is raised in the consumer; closing the iterator stops the producer."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(_DONE)
        except BaseException as err:  # handed to the consumer, who raises it
            buffer.put(err)

    thread = threading.Thread(target=produce, name="lightact-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full buffer
            try:
                buffer.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)
        close = getattr(items, "close", None)
        if close is not None:
            close()
