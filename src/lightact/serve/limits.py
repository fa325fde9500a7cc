"""What a public demo needs before it runs a model on a stranger's file: the limits, the file's
kind told from its bytes, and a bounded pool of workers.

* :class:`Limits`: upload cap, time limit per request, workers and queue, how long results stay.
* :func:`sniff`: the kind of an uploaded file from its content (magic bytes, then PIL for images
  and PyAV for videos), never from its name; :class:`UnsupportedFile` when it is none of them.
* :class:`WorkerPool`: a fixed number of inference threads and a small queue; :class:`PoolFull`
  when both are taken, :class:`TimeLimitExceeded` when a request's work outlives its time limit.

Why threads: inference is CPU-bound torch (or ONNX Runtime) code that releases the GIL in its
kernels, decoding (FFmpeg) and MediaPipe release it too, and each worker runs with the server's
one intra-op thread; so ``workers`` threads use ``workers`` cores while the event loop stays free to
answer ``/health`` and to queue or refuse requests. Processes would copy every model into every
worker and pay a start-up per worker. The price is the time limit: a thread cannot be stopped, so
a request past its limit is answered 504 and its work is *abandoned*, not killed: it runs to its
end in its thread, keeps its worker (and its place in the pool's capacity) until then, and its
folder is removed when it ends. The pool therefore never runs more than ``workers`` predictions at
once, however many requests time out; the upload cap and the video duration cap bound how long
one prediction can take.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "KINDS",
    "Limits",
    "PoolFull",
    "TimeLimitExceeded",
    "Upload",
    "UnsupportedFile",
    "WorkerPool",
    "freeze_start_up_objects",
    "release_free_memory",
    "thaw_start_up_objects",
    "sniff",
]

T = TypeVar("T")

# What the page and /models call the kinds of input; a model takes one or more of them.
KINDS = ("video", "image", "skeleton")
_HEAD = 16  # bytes read for the magic numbers


@dataclass(frozen=True)
class Limits:
    """A server's limits (``lightact serve`` options of the same names)."""

    max_upload_mb: float = 50.0  # the whole request body, file and fields
    max_video_s: float = 120.0  # longer videos are refused before any work is queued
    timeout_s: float = 120.0  # from entering the queue to the answer
    workers: int = 2  # predictions run at once
    queue: int = 4  # requests waiting for a worker; one more is answered 429
    keep_s: float = 600.0  # rendered video and timelines stay downloadable this long

    def __post_init__(self) -> None:
        for name in ("max_upload_mb", "max_video_s", "timeout_s", "keep_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.workers < 1 or self.queue < 0:
            raise ValueError(f"workers must be at least 1 and queue at least 0: {self.workers}, {self.queue}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class UnsupportedFile(ValueError):
    """The upload is not a video, an image or a skeleton file, judged by its content (HTTP 415)."""


class PoolFull(RuntimeError):
    """Every worker is busy and the queue is full (HTTP 429)."""


class TimeLimitExceeded(TimeoutError):
    """A request's work did not finish within the time limit (HTTP 504)."""


@dataclass(frozen=True)
class Upload:
    """What :func:`sniff` found: the ``kind`` (one of :data:`KINDS`), the ``suffix`` the predictors
    read it by, and a ``format`` name for messages (``"pickle"``, ``"npy"``, ``"PNG"``, ``"mp4"``)."""

    kind: str
    suffix: str
    format: str


# Video containers by their first bytes: (offset, magic, format, suffix). The bytes only say which
# container it claims to be; PyAV opening it (the predictor's first step) says whether it is one.
_VIDEO_MAGIC = (
    (4, b"ftyp", "mp4", ".mp4"),  # MP4, QuickTime, 3GP, M4V
    (4, b"moov", "mov", ".mov"),  # QuickTime without ftyp
    (4, b"mdat", "mov", ".mov"),
    (0, b"\x1a\x45\xdf\xa3", "matroska", ".mkv"),  # Matroska and WebM (what MediaRecorder writes)
    (0, b"FLV", "flv", ".flv"),
    (0, b"\x00\x00\x01\xba", "mpeg", ".mpg"),  # MPEG program stream
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "asf", ".wmv"),
)
# PIL formats the image predictor reads (lightact.data.image.sources.IMAGE_SUFFIXES).
_IMAGE_FORMATS = {
    "PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "WEBP": ".webp", "PPM": ".ppm", "TIFF": ".tif"
}  # fmt: skip


def sniff(path: str | Path) -> Upload:
    """The kind of the file at ``path`` from its bytes: a NumPy ``.npy`` array or a binary pickle
    (protocol 2-5; what ``pickle.dump`` and the pyskl tools write) for skeletons, an image PIL
    verifies, or a video container (its magic number, else PyAV finds a video stream in it).
    :class:`UnsupportedFile` for anything else, and for an empty file."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(_HEAD)
    if not head:
        raise UnsupportedFile("the file is empty")
    if head.startswith(b"\x93NUMPY"):
        return Upload("skeleton", ".npy", "npy")
    if head[0] == 0x80 and len(head) > 1 and 2 <= head[1] <= 5:
        return Upload("skeleton", ".pkl", "pickle")
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return Upload("video", ".avi", "avi")
    if head[0] == 0x47 and _is_transport_stream(path):
        return Upload("video", ".ts", "mpegts")
    for offset, magic, name, suffix in _VIDEO_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return Upload("video", suffix, name)
    image = _image_format(path)
    if image is not None:
        return Upload("image", _IMAGE_FORMATS[image], image)
    video = _video_format(path)
    if video is not None:
        return Upload("video", ".mp4" if "mp4" in video else ".mkv", video)
    raise UnsupportedFile("by its content, not a video, an image or a skeleton file (.pkl or .npy)")


def _is_transport_stream(path: Path) -> bool:
    """MPEG-TS: 188-byte packets, each starting with the sync byte 0x47."""
    with open(path, "rb") as f:
        data = f.read(188 * 3 + 1)
    return len(data) > 188 * 2 and all(data[i] == 0x47 for i in range(0, len(data), 188))


def _image_format(path: Path) -> str | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path, formats=list(_IMAGE_FORMATS)) as image:
            image.verify()
            return image.format
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None


def _video_format(path: Path) -> str | None:
    """PyAV's name for the container at ``path`` when it holds a video stream (not a still image,
    which PIL has already turned down, nor text FFmpeg would show as ANSI art)."""
    import av

    try:
        with av.open(str(path), mode="r") as container:
            name = container.format.name
            if not container.streams.video or "pipe" in name or name in ("image2", "tty"):
                return None
            return name
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError):
        return None


def _libc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS, Windows): nothing to do
        return None


_MALLOC_TRIM = _libc_trim()


def release_free_memory() -> None:
    """After a request: collect its reference cycles now, and hand the freed heap pages back to
    the system (glibc's ``malloc_trim``; elsewhere only the first).

    Why: a request leaves thousands of objects in cycles (a timeline's matplotlib artists and
    transforms, exceptions with their frames) that Python's full collection frees only now and then
    (its trigger scales with the hundreds of thousands of objects torch and the models hold), and
    glibc keeps freed heap memory for reuse, fragmented across the workers' arenas; so a server's
    resident memory saw-tooths and creeps up although nothing is kept. Measured here: 150 timelines
    took a process from 805 to 888 MiB, one ``malloc_trim`` brought it back to 814. With the
    start-up objects frozen (:func:`freeze_start_up_objects`) a collection costs about 1 ms, not
    0.3-0.5 s, and a trim under 1 ms (10 ms at worst)."""
    gc.collect()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def freeze_start_up_objects() -> None:
    """Move everything alive now (torch, the models, the libraries) out of the garbage collector's
    reach (``gc.freeze``), so that collecting after each request walks that request's objects only;
    :func:`thaw_start_up_objects` undoes it."""
    gc.collect()
    gc.freeze()


def thaw_start_up_objects() -> None:
    gc.unfreeze()


class WorkerPool:
    """``workers`` threads and room for ``queue`` more requests waiting for one.

    :meth:`run` refuses (:class:`PoolFull`) a request that finds every place taken, and gives up
    (:class:`TimeLimitExceeded`) on one not done within ``timeout_s``; the abandoned work keeps its
    place until it ends. ``on_done`` (cleaning up after it) runs once, when the work has ended, was
    cancelled before it started, or was refused."""

    def __init__(self, workers: int, queue: int, initializer: Callable[[], None] | None = None) -> None:
        self.capacity = workers + queue
        self._executor = ThreadPoolExecutor(workers, "lightact-predict", initializer=initializer)
        self._lock = threading.Lock()
        self._taken = 0

    @property
    def taken(self) -> int:
        """Requests running or waiting (abandoned ones included, until they end)."""
        return self._taken

    @property
    def full(self) -> bool:
        return self._taken >= self.capacity

    def refuse_if_full(self) -> None:
        """:class:`PoolFull` now, before a request does any work, if :meth:`run` would refuse it."""
        if self.full:
            raise PoolFull(f"the server is busy ({self.capacity} requests running or waiting)")

    def _release(self, _: Future) -> None:
        with self._lock:
            self._taken -= 1

    async def run(
        self, fn: Callable[..., T], *args: Any, timeout_s: float, on_done: Callable[[], None] | None = None
    ) -> T:
        with self._lock:
            try:
                self.refuse_if_full()
            except PoolFull:
                if on_done is not None:
                    on_done()
                raise
            self._taken += 1
        try:
            future = self._executor.submit(fn, *args)
        except BaseException:
            with self._lock:
                self._taken -= 1
            if on_done is not None:
                on_done()
            raise
        future.add_done_callback(self._release)
        if on_done is not None:
            future.add_done_callback(lambda _: on_done())
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout_s)
        except asyncio.TimeoutError:
            future.cancel()  # still waiting in the queue: never starts; running: runs to its end
            raise TimeLimitExceeded(f"the request took longer than the time limit, {timeout_s:g} s") from None

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
