"""Decode only the frames a clip needs: PyAV with seeking, or a folder of JPEG frames.

:func:`read_clip` opens a video once, asks ``indices(num_frames)`` which frames it wants (so the
sampler sees the real frame count), seeks to the key frame before each wanted frame that is far from
the decoder's position, decodes forward to it, and converts only the wanted frames to RGB (scaled in
the same libswscale call when ``short_side`` is given). Frame numbers come from presentation
timestamps (:func:`~lightact.data.video.reader.numbered_frames`: a frame a variable-rate stream
skips repeats the previous one); AVI, and a stream without usable timestamps, is decoded from the
start instead. The header's frame count is
an estimate for some containers (WebM): a wanted frame past the real end is replaced by the last one.

Frame folders (``img_00001.jpg``, ... as written by MMAction2's extraction tools) go through
:func:`read_frame_folder` with the same interface.

Both return ``(clip, indices)``: ``clip`` a uint8 tensor ``[T, 3, H, W]``, ``indices`` the frame
numbers used. Every failure is a :class:`VideoDecodeError` naming the file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lightact.data.video.reader import VideoDecodeError, _av, _open, _stream_fps, numbered_frames, warn_if_cut

__all__ = ["FRAME_TEMPLATE", "count_folder_frames", "read_clip", "read_frame_folder", "short_side_size"]

IndexFn = Callable[[int], np.ndarray]
FRAME_TEMPLATE = "img_{:05d}.jpg"


def short_side_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """(width, height) scaled so that the shorter side is ``short_side`` (aspect kept; None = as is)."""
    if short_side is None:
        return width, height
    if short_side < 1:
        raise ValueError(f"short_side must be positive, got {short_side}")
    scale = short_side / min(width, height)
    return max(short_side, round(width * scale)), max(short_side, round(height * scale))


def _resolve(indices: IndexFn | np.ndarray | list[int], num_frames: int) -> np.ndarray:
    wanted = indices(num_frames) if callable(indices) else indices
    wanted = np.asarray(wanted, dtype=np.int64)
    if wanted.ndim != 1 or len(wanted) == 0:
        raise ValueError(f"frame indices must be a non-empty 1D list, got shape {wanted.shape}")
    if wanted.min() < 0:
        raise ValueError(f"negative frame index {int(wanted.min())}")
    return wanted


def _estimated_frames(container, stream, fps: float) -> int:
    if stream.frames:
        return int(stream.frames)
    duration = 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / _av().time_base
    return max(1, int(round(duration * fps))) if duration > 0 and fps > 0 else 0


def read_clip(
    path: str | Path,
    indices: IndexFn | np.ndarray | list[int],
    short_side: int | None = None,
    threads: int = 1,
    seek_gap: int = 16,
) -> tuple[Tensor, np.ndarray]:
    """Decode the frames ``indices`` of ``path`` (callable: given the frame count, returns them).

    ``seek_gap``: a wanted frame more than this many frames ahead of the decoder is reached by a seek
    (to the preceding key frame) rather than by decoding everything in between. ``threads``: FFmpeg
    decoding threads (1 in data-loader workers, which already run in parallel).
    """
    path = Path(path)
    av = _av()
    container, stream = _open(path)
    try:
        if threads != 1:
            stream.thread_type = "AUTO"
            stream.thread_count = threads
        fps = _stream_fps(stream)
        count = _estimated_frames(container, stream, fps)
        if count <= 0:
            count = sum(1 for _ in container.decode(stream))  # no header information at all
            container.seek(0)
        wanted = _resolve(indices, count)
        try:
            frames = _decode_wanted(container, stream, fps, sorted(set(wanted.tolist())), seek_gap)
        except (av.FFmpegError, OSError) as err:
            raise VideoDecodeError(f"{path}: decoding failed ({err})") from err
        if not frames:
            raise VideoDecodeError(f"{path}: no frame could be decoded")
        # A header that over-counts leaves wanted frames past the end: use the last real frame.
        known = np.array(sorted(frames))
        if wanted.max() > known[-1]:
            warn_if_cut(path, int(known[-1]) + 1, count)
        take = known[np.clip(np.searchsorted(known, wanted, side="right") - 1, 0, len(known) - 1)]
        size = None
        out = []
        for i in take.tolist():
            frame = frames[i]
            if size is None:
                size = short_side_size(frame.width, frame.height, short_side)
            try:
                if size == (frame.width, frame.height):
                    rgb = frame.to_ndarray(format="rgb24")
                else:
                    w, h = size
                    rgb = frame.to_ndarray(width=w, height=h, format="rgb24", interpolation="AREA")
            except (av.FFmpegError, ValueError) as err:
                raise VideoDecodeError(f"{path}: cannot convert frame {i} to RGB ({err})") from err
            out.append(torch.from_numpy(np.ascontiguousarray(rgb)))
        return torch.stack(out).permute(0, 3, 1, 2).contiguous(), take
    finally:
        container.close()


def _decode_wanted(container, stream, fps: float, wanted: list[int], seek_gap: int) -> dict:
    """Frame number -> decoded ``av.VideoFrame`` for every wanted frame that exists.

    A frame's number is its presentation time x fps, counted from the stream's start time.
    """
    time_base = stream.time_base
    start = stream.start_time or 0
    # AVI stores no real presentation times (PyAV derives them from decode order, off by the B-frame
    # delay), so frame numbers there come from counting.
    formats = set((container.format.name or "").split(","))
    if time_base is None or fps <= 0 or "avi" in formats:
        return _decode_sequential(container, stream, wanted)

    def number(frame) -> int | None:
        if frame.pts is None:
            return None
        return int(round(float((frame.pts - start) * time_base) * fps))

    frames: dict[int, object] = {}
    decoder = None
    position = -1  # frame number the decoder has reached
    last = None  # (number, frame) of the last frame decoded
    remaining = list(wanted)
    while remaining:
        target = remaining[0]
        first = decoder is None or target - position > seek_gap or target <= position
        if first:
            seconds = Fraction(target) / Fraction(fps).limit_denominator(100000)
            pts = start + int(math.floor(seconds / time_base))
            container.seek(max(pts, start), stream=stream, backward=True, any_frame=False)
            decoder = container.decode(stream)
        reached = False
        for frame in decoder:
            i = number(frame)
            if i is None or (not first and i <= position):
                # no timestamps, or timestamps out of order: fall back to counting from the start
                container.seek(0)
                return _decode_sequential(container, stream, wanted)
            if first and i > target:
                # The seek landed past the target (inexact index): decode from the start instead.
                container.seek(0)
                return _decode_sequential(container, stream, wanted)
            if first and i <= position:
                # No key frame between us and the target: seeking was wasted; seek less eagerly.
                seek_gap *= 2
            first = False
            position = i
            last = (i, frame)
            if i in remaining:
                frames[i] = frame
            if i >= target:
                reached = True
                break
        remaining = [w for w in remaining if w > position]
        if not reached:  # end of stream: the header over-counted
            break
    if remaining and last is not None:
        frames.setdefault(*last)  # wanted frames past the end get the last real one
    return frames


def _decode_sequential(container, stream, wanted: list[int]) -> dict:
    """Decode from the start, numbering frames as :func:`numbered_frames` does (a frame the
    timestamps skip is the previous one again)."""
    wanted_set, final = set(wanted), max(wanted)
    frames = {}
    i, frame, previous = -1, None, None
    for i, frame in numbered_frames(container, stream):
        # Wanted frames in a gap before this one repeat the previous frame.
        frames.update({w: previous for w in wanted_set if w < i and w not in frames and previous is not None})
        if i in wanted_set:
            frames[i] = frame
        if i >= final:
            break
        previous = frame
    if frame is not None and i < final:
        frames.setdefault(i, frame)  # wanted frames past the end get the last real one
    return frames


def count_folder_frames(folder: str | Path, template: str = FRAME_TEMPLATE, start_index: int = 1) -> int:
    """Number of consecutive frames ``template.format(start_index), ...`` present in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VideoDecodeError(f"{folder}: no such frame folder")
    prefix = template.split("{", 1)[0]
    suffix = template.rsplit("}", 1)[-1]
    upper = sum(1 for p in folder.iterdir() if p.name.startswith(prefix) and p.name.endswith(suffix))
    # trust the listing, but make sure the numbering really is consecutive up to there
    while upper > 0 and not (folder / template.format(start_index + upper - 1)).is_file():
        upper -= 1
    return upper


def read_frame_folder(
    folder: str | Path,
    indices: IndexFn | np.ndarray | list[int],
    short_side: int | None = None,
    num_frames: int | None = None,
    template: str = FRAME_TEMPLATE,
    start_index: int = 1,
) -> tuple[Tensor, np.ndarray]:
    """Like :func:`read_clip` for a folder of JPEG (or PNG) frames named by ``template``."""
    from torchvision.io import ImageReadMode, decode_image, read_file
    from torchvision.transforms.v2 import functional as TF

    folder = Path(folder)
    count = num_frames or count_folder_frames(folder, template, start_index)
    if count <= 0:
        raise VideoDecodeError(f"{folder}: no frames named like {template.format(start_index)}")
    wanted = np.minimum(_resolve(indices, count), count - 1)
    cache: dict[int, Tensor] = {}
    out = []
    for i in wanted.tolist():
        if i not in cache:
            file = folder / template.format(start_index + i)
            try:
                image = decode_image(read_file(str(file)), mode=ImageReadMode.RGB)
            except (RuntimeError, OSError) as err:
                raise VideoDecodeError(f"{file}: cannot read frame ({err})") from err
            if short_side is not None:
                w, h = short_side_size(image.shape[2], image.shape[1], short_side)
                image = TF.resize(image, [h, w], antialias=True)
            cache[i] = image
        out.append(cache[i])
    return torch.stack(out), wanted
