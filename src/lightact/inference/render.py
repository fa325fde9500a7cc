"""What the recogniser sees, drawn on the input: ``lightact predict ... --render out.mp4``.

A skeleton model's video gets each tracked person's skeleton (MediaPipe's 33 landmarks) in that
person's colour with their id, and, per person (or per pair, for a model of interactions), the
current action and its top-3 scores; a clip model's video and an image model's picture get the
label panel. "Current" at a frame is the window covering it whose centre is nearest.

Drawing is PIL's (installed with torchvision; no OpenCV), text sized from the frame height so it
reads the same at 320x240 and at 1080p; encoding is PyAV's: H.264 (libx264) where the bundled
FFmpeg has it, else MPEG-4 part 2, written to a temporary file and renamed into place.
:class:`VideoWriter` and :func:`draw_overlay` are what the live loop (:mod:`lightact.inference.live`)
and a server draw with; :func:`render_skeleton_video`, :func:`render_label_video` and
:func:`render_image` take a finished prediction.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from lightact.inference.results import ClassScore, Prediction

__all__ = [
    "PALETTE",
    "PersonDrawing",
    "VideoWriter",
    "current_window",
    "draw_overlay",
    "live_panel",
    "pick_encoder",
    "render_image",
    "render_label_video",
    "render_skeleton_video",
]

# Distinct on dark and light backgrounds, and for the common colour-vision deficiencies (Okabe-Ito).
PALETTE = [(230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (204, 121, 167), (213, 94, 0)]
_ENCODERS = ("libx264", "h264", "mpeg4")
_MIN_VISIBILITY = 0.3  # MediaPipe's visibility below which a landmark is a guess: not drawn


def pick_encoder() -> str:
    """The first video encoder this PyAV's FFmpeg has: H.264 (libx264), else MPEG-4 part 2."""
    import av

    for name in _ENCODERS:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # noqa: BLE001 - PyAV raises UnknownCodecError or ValueError by version
            continue
        return name
    raise RuntimeError("this PyAV's FFmpeg has neither an H.264 nor an MPEG-4 encoder")


class VideoWriter:
    """Frames (RGB uint8, one size) into an MP4 at ``fps``; :meth:`write` takes a frame and,
    optionally, its time in seconds (frames of a live source arrive irregularly). The file appears
    at ``path`` only when :meth:`close` succeeds."""

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int] | None = None) -> None:
        import av

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}.", suffix=".mp4")
        os.close(fd)
        self._container = av.open(self._tmp, mode="w", format="mp4")
        self.codec = pick_encoder()
        rate = Fraction(fps).limit_denominator(1001)
        self._stream = self._container.add_stream(self.codec, rate=rate)
        self._stream.pix_fmt = "yuv420p"
        if self.codec != "mpeg4":
            self._stream.options = {"crf": "20", "preset": "veryfast"}
        else:
            self._stream.bit_rate = 4_000_000
        # Timestamps in milliseconds, so that irregular (live) frames keep their own times.
        self._stream.codec_context.time_base = Fraction(1, 1000)
        self._fps = float(fps)
        self._size = size
        self._count = 0
        self._last_pts = -1

    def write(self, rgb: np.ndarray, time: float | None = None) -> None:
        import av

        if self._size is None:
            self._size = (rgb.shape[1], rgb.shape[0])
        width, height = self._size
        if self._count == 0:
            # yuv420p needs even sizes: an odd row or column is cut.
            self._stream.width, self._stream.height = width - width % 2, height - height % 2
        rgb = np.ascontiguousarray(rgb[: self._stream.height, : self._stream.width])
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        pts = int(round(1000 * (time if time is not None else self._count / self._fps)))
        frame.pts = max(pts, self._last_pts + 1)
        frame.time_base = Fraction(1, 1000)
        self._last_pts = frame.pts
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self._count += 1

    def close(self) -> Path:
        """Flush, close and move the file into place; returns its path."""
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            if self._count == 0:
                raise ValueError(f"{self.path}: no frame to write")
            os.chmod(self._tmp, 0o644)
            os.replace(self._tmp, self.path)
        finally:
            Path(self._tmp).unlink(missing_ok=True)
        return self.path

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            try:
                self._container.close()
            finally:
                Path(self._tmp).unlink(missing_ok=True)


@lru_cache(maxsize=16)
def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def text_size(height: int) -> int:
    """Font size for a frame ``height`` pixels high: 13 px at 240, 36 px at 1080."""
    return max(12, int(round(height / 30)))


@dataclass
class PersonDrawing:
    """One person on one frame: ``xy`` ``[V, 2]`` in frame pixels, ``visibility`` ``[V]``, the
    person's id (its colour), and the lines of text about them."""

    person: int
    xy: np.ndarray
    visibility: np.ndarray
    label: str = ""


@dataclass
class Overlay:
    """What :func:`draw_overlay` puts on a frame: people and a panel of ``(text, colour)`` lines
    (top left), with a smaller footer line (bottom left)."""

    people: list[PersonDrawing] = field(default_factory=list)
    panel: list[tuple[str, tuple[int, int, int]]] = field(default_factory=list)
    footer: str = ""


def draw_overlay(rgb: np.ndarray, overlay: Overlay, bones: Sequence[tuple[int, int]] = ()) -> np.ndarray:
    """``rgb`` (uint8 ``[H, W, 3]``) with ``overlay`` drawn on it; a new array."""
    from PIL import Image, ImageDraw

    image = Image.fromarray(np.ascontiguousarray(rgb))
    height = image.height
    size = text_size(height)
    line = max(1, int(round(height / 240)))
    draw = ImageDraw.Draw(image, "RGBA")
    for person in overlay.people:
        colour = PALETTE[person.person % len(PALETTE)]
        seen = person.visibility >= _MIN_VISIBILITY
        for child, parent in bones:
            if seen[child] and seen[parent]:
                draw.line([tuple(person.xy[child]), tuple(person.xy[parent])], fill=colour, width=2 * line)
        radius = 1.5 * line + 1
        for x, y in person.xy[seen]:
            draw.ellipse(
                [x - radius, y - radius, x + radius, y + radius], fill=(255, 255, 255), outline=colour
            )
        if seen.any():
            x0, y0 = person.xy[seen].min(0)
            tag = person.label or f"P{person.person}"
            _label(draw, (x0, max(0.0, y0 - size * 1.4)), tag, colour, size)
    if overlay.panel:
        _panel(draw, overlay.panel, size, image.width)
    if overlay.footer:
        small = _font(max(10, int(size * 0.8)))
        box = draw.textbbox((0, 0), overlay.footer, font=small)
        y = height - (box[3] - box[1]) - size // 2
        draw.rectangle([0, y - size // 4, box[2] + size, height], fill=(0, 0, 0, 150))
        draw.text((size // 2, y), overlay.footer, fill=(230, 230, 230), font=small)
    return np.asarray(image)


def _label(draw, xy: tuple[float, float], text: str, colour: tuple[int, int, int], size: int) -> None:
    """``text`` on a box of the person's colour (black text on it: the palette is light)."""
    font = _font(size)
    x, y = xy
    box = draw.textbbox((x, y), text, font=font)
    pad = max(2, size // 5)
    draw.rectangle([box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad], fill=(*colour, 220))
    draw.text((x, y), text, fill=(0, 0, 0), font=font)


def _panel(draw, lines: list[tuple[str, tuple[int, int, int]]], size: int, width: int) -> None:
    """Lines of text on a translucent dark box in the top-left corner; a line starting with two
    spaces is a detail line (smaller, grey)."""
    pad = size // 2
    fonts = [_font(int(size * 0.85)) if text.startswith("  ") else _font(size) for text, _ in lines]
    boxes = [draw.textbbox((0, 0), text.strip(), font=f) for (text, _), f in zip(lines, fonts, strict=True)]
    heights = [max(b[3], int(f.size * 1.15)) for b, f in zip(boxes, fonts, strict=True)]
    box_width = min(width - 2, max(b[2] for b in boxes) + 2 * pad + size)
    draw.rectangle([0, 0, box_width, sum(heights) + 2 * pad], fill=(0, 0, 0, 160))
    y = pad
    for (text, colour), font, h in zip(lines, fonts, heights, strict=True):
        x = pad + (size if text.startswith("  ") else 0)
        draw.text(
            (x, y), text.strip(), fill=colour if not text.startswith("  ") else (210, 210, 210), font=font
        )
        y += h


def current_window(prediction: Prediction, time: float):
    """The window of ``prediction`` shown at ``time``: among those covering it, the one whose
    centre is nearest (``None`` before the first and after the last)."""
    best, distance = None, None
    for w in prediction.windows:
        if w.start_time <= time <= w.end_time:
            d = abs((w.start_time + w.end_time) / 2 - time)
            if distance is None or d < distance:
                best, distance = w, d
    return best


def _scores(topk: Sequence[ClassScore], n: int = 3) -> str:
    return "  ".join(f"{c.label} {c.probability:.0%}" for c in topk[:n])


def _lines(
    persons: list[int] | None, topk: Sequence[ClassScore] | None
) -> list[tuple[str, tuple[int, int, int]]]:
    """A person's (or pair's, or clip's) current action and, under it, the top 3."""
    who = "+".join(f"P{p}" for p in persons or [])
    colour = PALETTE[persons[0] % len(PALETTE)] if persons else (255, 255, 255)
    prefix = f"{who}: " if who else ""
    if not topk:
        return [(f"{prefix}(not seen)", colour)]
    top = topk[0]
    return [(f"{prefix}{top.label} {top.probability:.0%}", colour), ("  " + _scores(topk), colour)]


def _panel_lines(predictions: Sequence[Prediction], time: float) -> list[tuple[str, tuple[int, int, int]]]:
    """Per prediction (a person, a pair, or the clip): its action in the window shown at ``time``."""
    lines: list[tuple[str, tuple[int, int, int]]] = []
    for prediction in predictions:
        window = current_window(prediction, time)
        lines += _lines(prediction.persons, window.topk if window is not None and window.has_person else None)
    return lines


def live_panel(predictions: Sequence[Prediction]) -> list[tuple[str, tuple[int, int, int]]]:
    """The panel of the live loop: each prediction of the rolling window, by its overall top 3."""
    return [line for p in predictions for line in _lines(p.persons, p.topk)]


def render_skeleton_video(
    video: str | Path, predictions: Sequence[Prediction], annotation: dict[str, Any], out: str | Path
) -> Path:
    """``video`` with the poses of ``annotation`` (2D ``keypoint`` in video pixels on the model's
    frame grid, ``keypoint_score``) and the actions of ``predictions`` (one per person, or one for
    everybody together) drawn on every frame, written to ``out``."""
    from lightact.data.skeleton.layouts import MEDIAPIPE33
    from lightact.data.video.reader import iter_timed_frames, video_info

    keypoint = np.asarray(annotation["keypoint"], dtype=np.float32)
    score = np.asarray(annotation.get("keypoint_score", np.ones(keypoint.shape[:3])), dtype=np.float32)
    fps = float(annotation["fps"])
    tags = _person_tags(predictions)
    info = video_info(video)
    bones = MEDIAPIPE33.bones if keypoint.shape[2] == MEDIAPIPE33.num_joints else ()
    with VideoWriter(out, info.fps or 25.0) as writer:
        for frame in iter_timed_frames(video):
            g = min(int(round(frame.time * fps)), keypoint.shape[1] - 1)
            people = [
                PersonDrawing(m, keypoint[m, g], score[m, g], tags.get(m, f"P{m}"))
                for m in range(keypoint.shape[0])
                if score[m, g].any()
            ]
            overlay = Overlay(people, _panel_lines(predictions, frame.time), f"{frame.time:5.1f} s")
            writer.write(draw_overlay(frame.rgb, overlay, bones), frame.time)
    return Path(out)


def _person_tags(predictions: Sequence[Prediction]) -> dict[int, str]:
    """The tag above each person: their id, with the partner's for an interaction ("P0 & P1")."""
    tags: dict[int, str] = {}
    for prediction in predictions:
        persons = prediction.persons or []
        for p in persons:
            others = [f"P{q}" for q in persons if q != p]
            tags[p] = f"P{p}" + (f" & {' & '.join(others)}" if others else "")
    return tags


def render_label_video(video: str | Path, prediction: Prediction, out: str | Path) -> Path:
    """``video`` with the current window's top-3 of a clip model drawn on every frame."""
    from lightact.data.video.reader import iter_timed_frames, video_info

    info = video_info(video)
    with VideoWriter(out, info.fps or 25.0) as writer:
        for frame in iter_timed_frames(video):
            overlay = Overlay([], _panel_lines([prediction], frame.time), f"{frame.time:5.1f} s")
            writer.write(draw_overlay(frame.rgb, overlay), frame.time)
    return Path(out)


IMAGE_RENDER_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def render_image(image: str | Path | np.ndarray, prediction: Prediction, out: str | Path) -> Path:
    """An image model's input with its top-3 drawn on it, written as ``out`` (PNG, JPEG, ...)."""
    from PIL import Image

    from lightact.data.image.sources import read_rgb
    from lightact.utils import atomic_write

    out = Path(out)
    if out.suffix.lower() not in IMAGE_RENDER_SUFFIXES:
        raise ValueError(
            f"{out}: an image model's input renders to an image ({', '.join(IMAGE_RENDER_SUFFIXES)}), "
            "not a video"
        )
    rgb = image if isinstance(image, np.ndarray) else read_rgb(Path(image))
    drawn = draw_overlay(rgb, Overlay([], _panel_lines([prediction], 0.5)))
    kind = {".jpg": "JPEG", ".jpeg": "JPEG"}.get(out.suffix.lower(), out.suffix.lstrip(".").upper())
    atomic_write(out, lambda tmp: Image.fromarray(drawn).save(tmp, format=kind))
    return out
