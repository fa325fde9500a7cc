"""Feature extraction for long videos: streamed decoding, batched encoding, resumable, sharded.

>>> settings = ExtractionSettings(frame_encoder="timm/resnet18", fps=1.0, clip_encoder="tv/r3d_18")
>>> summary = extract_features(["a.mp4", "b.mp4"], "store/", settings)

What happens to one video
-------------------------
Frames are decoded one at a time (:func:`lightact.data.video.reader.iter_frames`, downscaled in the
decoder to just what the encoders need). Frame ``i`` is at ``i / video_fps`` seconds.

* Static stream: the frame nearest to each multiple of ``1 / fps`` seconds is resized to
  ``frame_size`` and queued; every ``batch_size`` queued frames go through the frame encoder.
* Temporal stream: a clip starts every ``clip_stride`` seconds and takes ``clip_len`` frames spaced
  ``round(video_fps / clip_fps)`` frames apart (``clip_fps`` frames per second inside a clip). A
  clip is queued when its last frame arrives, and every ``clip_batch_size`` clips are encoded. A clip
  cut off by the end of the video is completed by repeating its last frame when it has at least
  half its frames (or when the video has no clip yet), and dropped otherwise.

At any time memory holds the frames of the clips in progress and of one batch, plus the features
so far (a few kB a second of video), so it grows linearly, and slowly, with the video's length.

Collections
-----------
* Resumable: a video whose feature file exists and reads back is skipped; files are written
  atomically, so an interrupted run leaves no half-written file under a real name.
* Sharded: under ``torchrun`` (or with ``RANK``/``WORLD_SIZE`` set) process ``r`` of ``w`` takes the
  videos at positions ``r, r + w, ...`` of the list sorted by store name: disjoint, complete and the
  same on every machine whatever order the paths were given in.
* Deterministic: the same video and settings give bit-identical features (encoders in eval mode,
  no randomness, the same batches in the same order).
* A video that cannot be decoded is reported by name and the others go on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lightact.data.longvideo.store import (
    FeatureStoreError,
    VideoFeatures,
    feature_path,
    read_header,
    video_key,
    write_features,
    write_settings,
)
from lightact.data.video.reader import VIDEO_SUFFIXES
from lightact.features.encoders import FeatureEncoder, build_encoder, resize_crop
from lightact.features.settings import ExtractionSettings

__all__ = [
    "ExtractionSettings",
    "Encoders",
    "extract_features",
    "extract_video",
    "find_videos",
    "shard",
    "shard_from_env",
]


@dataclass
class Encoders:
    frame: FeatureEncoder
    clip: FeatureEncoder
    device: torch.device

    @classmethod
    def build(cls, settings: ExtractionSettings, device: str | torch.device = "cpu") -> Encoders:
        device = torch.device(device)
        frame = build_encoder(settings.frame_encoder, "frame", settings.frame_size, settings.frame_weights)
        clip = build_encoder(
            settings.clip_encoder, "clip", settings.clip_size, settings.clip_weights, settings.clip_len
        )
        return cls(frame.to(device), clip.to(device), device)


def find_videos(inputs: Iterable[str | Path]) -> list[Path]:
    """Video files from files, folders (searched recursively) and lists (``.txt``/``.csv``: the first
    column of each line is a path, relative to the list's folder; a ``video_path`` header is skipped)."""
    videos: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            videos += sorted(p for p in item.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
        elif item.suffix.lower() in (".txt", ".csv") and item.is_file():
            for line in item.read_text().splitlines():
                first = line.replace(",", " ").split()
                if not first or first[0] in ("video_path", "path") or first[0].startswith("#"):
                    continue
                path = Path(first[0])
                videos.append(path if path.is_absolute() else item.parent / path)
        else:
            videos.append(item)
    return videos


def shard(videos: Sequence[Path], rank: int, world_size: int) -> list[Path]:
    """Process ``rank``'s share of ``videos``: every ``world_size``-th of the list sorted by store name."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not within a world of {world_size} process(es)")
    ordered = sorted(videos, key=lambda p: (video_key(p), str(p)))
    return ordered[rank::world_size]


def shard_from_env() -> tuple[int, int]:
    """``(rank, world_size)`` from torchrun's environment (``RANK``, ``WORLD_SIZE``); ``(0, 1)`` alone."""
    try:
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    except ValueError as err:
        raise ValueError(f"RANK / WORLD_SIZE must be integers ({err})") from None
    return rank, world


class _Batcher:
    """Queues inputs and encodes them ``size`` at a time, keeping the features in order."""

    def __init__(self, encoder: FeatureEncoder, size: int, device: torch.device) -> None:
        self.encoder, self.size, self.device = encoder, size, device
        self.pending: list[torch.Tensor] = []
        self.outputs: list[torch.Tensor] = []

    def add(self, x: torch.Tensor) -> None:
        self.pending.append(x)
        if len(self.pending) >= self.size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        batch = torch.stack(self.pending).to(self.device)
        self.pending = []
        self.outputs.append(self.encoder(self.encoder.normalise(batch)).cpu())

    def result(self, dim: int) -> torch.Tensor:
        self.flush()
        return torch.cat(self.outputs) if self.outputs else torch.zeros((0, dim))


def _decode_side(width: int, height: int, size: int) -> int | None:
    """The ``max_side`` to decode at so that the shorter side is still at least ``size``."""
    if min(width, height) <= 0:
        return None
    return max(size, -(-max(width, height) * size // min(width, height)))


def extract_video(
    path: str | Path,
    encoders: Encoders,
    settings: ExtractionSettings,
    batch_size: int = 32,
    clip_batch_size: int = 8,
    on_frame=None,
) -> VideoFeatures:
    """Features of one video, decoded as a stream (see the module docstring)."""
    from lightact.data.video.reader import VideoDecodeError, iter_frames, video_info

    path = Path(path)
    info = video_info(path)
    if info.fps <= 0:
        raise VideoDecodeError(f"{path}: the container gives no frame rate")
    vfps = info.fps
    size = max(settings.frame_size, settings.clip_size)
    step = max(1, round(vfps / settings.clip_fps))
    frames = _Batcher(encoders.frame, batch_size, encoders.device)
    clips = _Batcher(encoders.clip, clip_batch_size, encoders.device)
    frame_times: list[float] = []
    clip_times: list[tuple[float, float]] = []
    active: list[tuple[int, list[torch.Tensor], list[float]]] = []  # clips in progress: start, frames, times
    static_k, clip_k = 0, 0
    next_static, next_clip = 0, 0

    def finish(clip_frames: list[torch.Tensor], times: list[float]) -> None:
        clip_frames = clip_frames + [clip_frames[-1]] * (settings.clip_len - len(clip_frames))
        clips.add(torch.stack(clip_frames, dim=1))  # [3, T, S, S]
        clip_times.append((times[0], times[-1]))

    index = -1
    for index, rgb in enumerate(iter_frames(path, max_side=_decode_side(info.width, info.height, size))):
        t = index / vfps
        tensor = torch.from_numpy(rgb)
        if index == next_static:
            frames.add(resize_crop(tensor, settings.frame_size))
            frame_times.append(t)
            while next_static <= index:  # the nearest frame to the next multiple of 1 / fps
                static_k += 1
                next_static = round(static_k * vfps / settings.fps)
        while index >= next_clip:
            active.append((next_clip, [], []))
            clip_k += 1
            next_clip = round(clip_k * settings.clip_stride * vfps)
        small = None
        for start, clip_frames, times in active:
            if (index - start) % step == 0:
                small = resize_crop(tensor, settings.clip_size) if small is None else small
                clip_frames.append(small)
                times.append(t)
        still = []
        for start, clip_frames, times in active:
            if len(clip_frames) == settings.clip_len:
                finish(clip_frames, times)
            else:
                still.append((start, clip_frames, times))
        active = still
        if on_frame is not None:
            on_frame(index + 1)
    for _start, clip_frames, times in active:
        if clip_frames and (2 * len(clip_frames) >= settings.clip_len or not clip_times):
            finish(clip_frames, times)
    num_frames = index + 1
    meta = {
        "video": str(path),
        "video_fps": vfps,
        "video_frames": num_frames,
        "duration": num_frames / vfps,
        "width": info.width,
        "height": info.height,
        "frame_dim": encoders.frame.feature_dim(),
        "clip_dim": encoders.clip.feature_dim(settings.clip_len),
        "settings": settings.to_dict(),
    }
    return VideoFeatures(
        frame_features=frames.result(meta["frame_dim"]),
        frame_times=torch.tensor(frame_times, dtype=torch.float64),
        clip_features=clips.result(meta["clip_dim"]),
        clip_times=torch.tensor(clip_times, dtype=torch.float64).reshape(-1, 2),
        meta=meta,
    )


def _is_done(path: Path, settings: ExtractionSettings) -> bool:
    """A feature file that reads back and was made with these settings."""
    try:
        meta, _ = read_header(path)
    except FeatureStoreError:
        return False
    return meta.get("settings") == settings.to_dict()


def extract_features(
    inputs: Iterable[str | Path],
    out: str | Path,
    settings: ExtractionSettings | None = None,
    *,
    rank: int | None = None,
    world_size: int | None = None,
    device: str = "cpu",
    batch_size: int = 32,
    clip_batch_size: int = 8,
    progress: bool = False,
    encoders: Encoders | None = None,
) -> dict[str, Any]:
    """Extract every video of this process's shard into the store ``out``; returns a summary.

    ``rank``/``world_size`` default to torchrun's ``RANK``/``WORLD_SIZE``. Two different videos with
    the same file name would share a store name, which is refused before anything runs.
    """
    settings = settings or ExtractionSettings()
    out = Path(out)
    videos = find_videos(inputs)
    if not videos:
        raise ValueError("no video files found in the inputs")
    by_key: dict[str, Path] = {}
    for video in videos:
        other = by_key.setdefault(video_key(video), video)
        if other.resolve() != video.resolve():
            raise ValueError(
                f"{other} and {video} have the same name {video_key(video)!r} and would share a feature "
                "file; rename one, or extract them into separate stores"
            )
    unique = list(by_key.values())
    env_rank, env_world = shard_from_env()
    rank = env_rank if rank is None else rank
    world_size = env_world if world_size is None else world_size
    mine = shard(unique, rank, world_size)
    if encoders is None:
        # Built first: a wrong encoder name fails before the store records these settings.
        encoders = Encoders.build(settings, device)
    out.mkdir(parents=True, exist_ok=True)
    write_settings(out, settings.to_dict())

    todo = [v for v in mine if not _is_done(feature_path(out, v), settings)]
    summary: dict[str, Any] = {
        "videos": len(unique),
        "shard": len(mine),
        "rank": rank,
        "world_size": world_size,
        "skipped": len(mine) - len(todo),
        "extracted": 0,
        "failed": [],
        "frames": 0,
        "seconds": 0.0,
        "store": str(out),
    }
    started = time.perf_counter()
    bar = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
        )
        bar.start()
        overall = bar.add_task(f"rank {rank}/{world_size}: videos", total=len(todo))
    try:
        for video in todo:
            task = None
            if bar is not None:
                task = bar.add_task(f"  {video.name}", total=None)
            try:
                features = extract_video(
                    video,
                    encoders,
                    settings,
                    batch_size=batch_size,
                    clip_batch_size=clip_batch_size,
                    on_frame=(lambda n, task=task: bar.update(task, completed=n))
                    if bar is not None
                    else None,
                )
                write_features(feature_path(out, video), features)
                summary["extracted"] += 1
                summary["frames"] += features.meta["video_frames"]
            except (ValueError, OSError) as err:  # VideoDecodeError is a ValueError naming the file
                summary["failed"].append({"video": str(video), "error": str(err)})
            if bar is not None:
                bar.remove_task(task)
                bar.advance(overall)
    finally:
        if bar is not None:
            bar.stop()
    summary["seconds"] = time.perf_counter() - started
    return summary
