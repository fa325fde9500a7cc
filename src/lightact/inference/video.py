"""Predict actions in videos with a trained clip model (``lightact predict WORK_DIR VIDEO``).

The video is covered by windows (``window`` frames of the source video, every ``stride`` frames);
from each window a clip is sampled as the evaluation samples it (uniform segments: the middle frame
of each; dense: ``num_frames`` frames ``frame_interval`` apart around the window's centre), resized
and centre-cropped with the preprocessing stored in the checkpoint. The answer for the video is the
mean of the windows' probabilities. All the windows' frames are decoded in one seeking pass.

Default window: dense models, their clip span; uniform models, the whole video up to 10 s, else 5 s
windows. Default stride: half a window.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lightact.data.video.clips import read_clip
from lightact.data.video.reader import VIDEO_SUFFIXES, VideoDecodeError, video_info
from lightact.data.video.sampling import clip_indices
from lightact.data.video.transforms import center_crop, normalize, resize_short_side
from lightact.inference.base import Predictor
from lightact.inference.files import InputFiles, window_starts
from lightact.inference.results import Prediction, WindowPrediction, top_classes

__all__ = ["VideoRecognizer"]


class VideoRecognizer(Predictor):
    """A trained clip classifier with its preprocessing; :meth:`predict` takes a video file."""

    modality = "video"
    inputs = InputFiles(VIDEO_SUFFIXES, "video", errors=(VideoDecodeError,))

    def __init__(
        self, model: nn.Module, meta: dict[str, Any], device: str | torch.device = "cpu", batch_size: int = 8
    ) -> None:
        super().__init__(model, meta, device)
        data = meta.get("data") or {}
        self.batch_size = batch_size
        self.num_frames = int(data.get("num_frames", 8))
        self.sampling = data.get("sampling", "uniform")
        self.frame_interval = int(data.get("frame_interval", 1))
        self.resize = data.get("resize")
        self.crop = int(data.get("crop", 224))
        self.mean = tuple(data.get("mean", (0.485, 0.456, 0.406)))
        self.std = tuple(data.get("std", (0.229, 0.224, 0.225)))

    def default_window(self, total: int, fps: float) -> int:
        if self.sampling == "dense":
            return (self.num_frames - 1) * self.frame_interval + 1
        fps = fps or 25.0
        return total if total <= 10 * fps else int(round(5 * fps))

    @torch.inference_mode()
    def probabilities(self, clips: torch.Tensor) -> np.ndarray:
        """Class probabilities for uint8 clips ``[N, T, 3, crop, crop]``."""
        out = []
        for chunk in clips.split(self.batch_size):
            x = normalize(chunk, self.mean, self.std).to(self.device)
            out.append(self.model(x).float().softmax(-1).cpu())
        return torch.cat(out).numpy().astype(np.float64)

    def predict(
        self, path: str | Path, window: int | None = None, stride: int | None = None, topk: int = 5
    ) -> Prediction:
        window, stride, topk = self.check_options(window, stride, topk)
        path = Path(path)
        info = video_info(path)
        total = max(info.num_frames, 1)
        window = min(window or self.default_window(total, info.fps), total)
        stride = stride or max(1, window // 2)
        starts = window_starts(total, window, stride)
        per_window = [
            s + clip_indices(self.sampling, window, self.num_frames, False, None, self.frame_interval)
            for s in starts
        ]
        frames, _ = read_clip(path, np.concatenate(per_window), self.resize)
        if min(frames.shape[-2:]) < self.crop:
            frames = resize_short_side(frames, self.crop)
        clips = center_crop(frames, self.crop).reshape(
            len(starts), self.num_frames, *frames.shape[1:2], self.crop, self.crop
        )
        probs = self.probabilities(clips)
        fps = info.fps or 25.0
        windows = []
        for s, p in zip(starts, probs, strict=True):
            end = min(s + window, total)
            top = top_classes(p, self.classes, topk)
            windows.append(WindowPrediction(s, end, s / fps, end / fps, p, top))
        overall = probs.mean(0)
        return Prediction(
            source=str(path),
            classes=self.classes,
            probabilities=overall,
            topk=top_classes(overall, self.classes, topk),
            windows=windows,
            fps=fps,
            num_frames=total,
            window=window,
            stride=stride,
        )
