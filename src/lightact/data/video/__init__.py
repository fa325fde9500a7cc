"""Video input: streamed decoding (PyAV)."""

from lightact.data.video.reader import VideoDecodeError, VideoInfo, iter_frames, scaled_size, video_info

__all__ = ["VideoDecodeError", "VideoInfo", "iter_frames", "scaled_size", "video_info"]
