"""MediaPipe, the optional dependency of pose extraction: importing it, quieting its start-up
noise, building its Pose graphs on a chosen number of threads, and telling whether it is installed.

MediaPipe is installed with ``pip install 'lightact[pose]'``; only ``model_complexity=1`` is used
because it is the model the wheel ships (0 and 2 are downloaded at run time).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import sys
import threading
from collections.abc import Iterator
from typing import Any

from lightact.data.video.reader import MissingDependencyError

MODEL_COMPLEXITY = 1  # the only Pose model the mediapipe wheel ships; 0 and 2 are downloaded on first use
INSTALL_HINT = "pip install 'lightact[pose]' (or: pip install mediapipe==0.10.21)"


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


# What MediaPipe's C++ side writes to file descriptor 2 when its graphs start and first run:
# TensorFlow Lite's delegate notice, absl's pre-initialisation warning, and absl-format info and
# warning lines (``W0000 00:00:1796.. 21430 inference_feedback_manager.cc:114] ...``). Errors and
# fatal lines (``E``/``F``) are kept: they come with the exception that tells the user.
_NOISE = re.compile(
    rb"^(INFO: Created TensorFlow Lite|WARNING: All log messages before absl::InitializeLog"
    rb"|[IW]\d{4} [\d:.]+ +\d+ [\w./-]+:\d+\] )"
)
_ABSL_START = re.compile(rb"[IW]\d")


def _may_become_noise(unfinished: bytes) -> bool:
    """Whether a line still being written could turn into one of :data:`_NOISE`."""
    markers = (b"INFO: ", b"WARNING: ")
    return any(m.startswith(unfinished) or unfinished.startswith(m) for m in markers) or bool(
        _ABSL_START.match(unfinished)
    )


class _Fd2Filter:
    """Drops :data:`_NOISE` lines written to file descriptor 2 while at least one user holds it
    (holds nest, from any thread). MediaPipe's C++ code writes to the descriptor itself and offers
    Python no switch (``GLOG_minloglevel`` and ``TF_CPP_MIN_LOG_LEVEL`` do not reach it), so fd 2
    becomes a pipe whose reader thread passes every other byte, as it comes, to the stderr it
    replaced (Python tracebacks, warnings, progress bars). Releasing the last hold puts the real
    stderr back and waits until the pipe is drained, so nothing written before is lost or
    reordered after it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._saved: int | None = None
        self._write_end: int | None = None
        self._reader: threading.Thread | None = None

    def hold(self) -> None:
        with self._lock:
            self._holders += 1
            if self._holders > 1:
                return
            try:
                saved = os.dup(2)
            except OSError:  # no stderr to filter: leave it alone
                return
            try:
                read_end, write_end = os.pipe()
            except OSError:  # out of descriptors: unfiltered is better than failing
                os.close(saved)
                return
            sys.stderr.flush()
            os.dup2(write_end, 2)
            self._saved, self._write_end = saved, write_end
            self._reader = threading.Thread(target=self._pass_on, args=(read_end, saved), daemon=True)
            self._reader.start()

    def release(self) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders > 0 or self._saved is None:
                return
            sys.stderr.flush()
            os.dup2(self._saved, 2)
            os.close(self._write_end)  # the reader now sees the end of the pipe once it is drained
            self._reader.join()
            os.close(self._saved)
            self._saved = self._write_end = self._reader = None

    @staticmethod
    def _pass_on(read_end: int, out: int) -> None:
        # TensorFlow Lite writes its notice in pieces ("INFO: ", the text, "\n"): a line's start
        # that could still become noise waits for the rest; anything else (a progress bar's
        # carriage-return updates) passes at once.
        pending = b""
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                lines = (pending + chunk).splitlines(keepends=True)
                pending = (
                    lines.pop() if not lines[-1].endswith(b"\n") and _may_become_noise(lines[-1]) else b""
                )
                _write_all(out, b"".join(line for line in lines if not _NOISE.match(line)))
        if pending and not _NOISE.match(pending):
            _write_all(out, pending)


def _write_all(fd: int, data: bytes) -> None:
    with contextlib.suppress(OSError):  # stderr gone: nothing to tell
        while data:
            data = data[os.write(fd, data) :]


# Held by every PoseExtractor from its construction to its close.
mediapipe_log_filter = _Fd2Filter()


def import_mediapipe():
    """``(mediapipe, its Pose solution module)``; :class:`MissingDependencyError` naming the install
    command when MediaPipe is not installed."""
    try:
        with _quiet_python_stderr():
            import mediapipe as mp
            from mediapipe.python.solutions import pose as mp_pose
    except ImportError as err:
        raise MissingDependencyError(f"pose extraction needs MediaPipe: {INSTALL_HINT}") from err
    return mp, mp_pose


def pose_graph(inference_threads: int = 1, **options: Any) -> Any:
    """MediaPipe's (legacy) Pose solution built with ``options``, its two TensorFlow Lite models (the
    person detector and the landmark model) run by XNNPACK on ``inference_threads`` threads.

    MediaPipe's Linux build runs them on one thread, and its Python API cannot say otherwise: the
    models sit in nested subgraphs, and ``calculator_params`` only edits options it knows a type for
    (not the inference calculator's). The solution's base class hands the fully expanded graph to
    ``_modify_calculator_options`` before it builds it, so a subclass sets the thread count there.
    The poses are the same; one graph's pass takes about 0.6x the time on 2 threads
    (BENCHMARKS.md), but two graphs at work at once on 2 cores each would contend (XNNPACK's workers
    spin), so callers give each graph its share of the cores (:func:`graph_threads`).
    """
    _, mp_pose = import_mediapipe()
    if inference_threads == 1:
        return mp_pose.Pose(**options)
    return _threaded_pose_class(mp_pose.Pose)(inference_threads, **options)


@functools.cache
def _threaded_pose_class(pose_class: type) -> type:
    """A subclass of MediaPipe's ``Pose`` taking its XNNPACK thread count first (built once)."""
    from mediapipe.calculators.tensor.inference_calculator_pb2 import InferenceCalculatorOptions

    class ThreadedPose(pose_class):  # type: ignore[misc, valid-type]
        def __init__(self, inference_threads: int, **options: Any) -> None:
            self.inference_threads = inference_threads
            self.threaded_models = 0  # inference nodes given the thread count
            super().__init__(**options)

        def _modify_calculator_options(self, config: Any, calculator_params: Any) -> None:
            super()._modify_calculator_options(config, calculator_params)
            for node in config.node:
                if not node.calculator.startswith("InferenceCalculator"):
                    continue
                delegate = node.options.Extensions[InferenceCalculatorOptions.ext].delegate
                if delegate.WhichOneof("delegate") == "xnnpack":  # what 0.10.21's CPU graphs use
                    delegate.xnnpack.num_threads = self.inference_threads
                    self.threaded_models += 1

    return ThreadedPose


def mediapipe_available() -> bool:
    """Whether MediaPipe can be imported (without importing it when it is already loaded)."""
    if sys.modules.get("mediapipe") is not None:
        return True
    try:
        import_mediapipe()
    except ImportError:
        return False
    return True
