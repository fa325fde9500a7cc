"""MediaPipe, the optional dependency of pose extraction: importing it, quieting its start-up
noise, and telling whether it is installed.

MediaPipe is installed with ``pip install 'lightact[pose]'``; only ``model_complexity=1`` is used
because it is the model the wheel ships (0 and 2 are downloaded at run time).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator

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


@contextlib.contextmanager
def quiet_fd2() -> Iterator[None]:
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


def mediapipe_available() -> bool:
    """Whether MediaPipe can be imported (without importing it when it is already loaded)."""
    if sys.modules.get("mediapipe") is not None:
        return True
    try:
        import_mediapipe()
    except ImportError:
        return False
    return True
