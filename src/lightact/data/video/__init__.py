"""Video input: streamed decoding with PyAV (the ``video`` extra)."""

from lightact.data.video.reader import (
    MissingDependencyError,
    VideoDecodeError,
    VideoInfo,
    iter_frames,
    scaled_size,
    video_info,
)

__all__ = [
    "MissingDependencyError",
    "VideoDecodeError",
    "VideoInfo",
    "iter_frames",
    "scaled_size",
    "video_info",
]
