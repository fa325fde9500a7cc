"""Classify (or score) long videos with a trained long-video model (STAN or a baseline).

A video goes through exactly what the training store went through: the extraction settings are
read from the checkpoint (``meta["data"]["extraction"]``), the frame and clip encoders rebuilt (the
same weights file, or the same seeded random initialisation) and the video decoded as a stream
(:func:`lightact.features.extract.extract_video`), so memory stays small and grows linearly
with the length. Then:

* **overall answer**: the model on the whole video, the way it was trained (the answer may depend on
  events minutes apart, so it is *not* an average of segment scores);
* **segments over time**: the model on windows of ``window`` seconds (default 30 s, stride half a
  window; the last window ends at the video's end), each window's features with times counted from
  the window's start, as if it were a short video of its own. They show where in the video the
  evidence for each class lies; a segment holding only part of a long-range pattern is expected to
  be unsure.

``window`` and ``stride`` are in **seconds** here (the skeleton and clip predictors count frames);
:class:`lightact.inference.Prediction` records them in frames of the video, like the others. A
``.safetensors`` feature file from a store is accepted in place of a video (no decoding then).
For a regression model, ``probabilities`` hold the predicted values, one per target.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lightact.data.longvideo.dataset import features_to_inputs
from lightact.data.longvideo.store import VideoFeatures, read_features
from lightact.data.video.reader import VIDEO_SUFFIXES
from lightact.features.extract import Encoders, ExtractionSettings, extract_video
from lightact.inference.base import Predictor
from lightact.inference.files import InputFiles
from lightact.inference.results import ClassScore, Prediction, WindowPrediction, top_classes

__all__ = [
    "DEFAULT_WINDOW_S",
    "LongVideoRecognizer",
    "segment_starts",
]

DEFAULT_WINDOW_S = 30.0


def segment_starts(duration: float, window: float, stride: float) -> list[float]:
    """Window starts (seconds) covering ``[0, duration]``: every ``stride`` while a window fits, plus
    one ending at ``duration`` if a tail is left; a video no longer than ``window`` is one window."""
    if window <= 0 or stride <= 0:
        raise ValueError(f"window and stride must be positive seconds, got {window} and {stride}")
    if duration <= window:
        return [0.0]
    starts = list(np.arange(0.0, duration - window + 1e-9, stride))
    if starts[-1] + window < duration - 1e-9:
        starts.append(duration - window)
    return [float(s) for s in starts]


class LongVideoRecognizer(Predictor):
    """A trained long-video model plus the encoders that made its training features."""

    modality = "longvideo"
    inputs = InputFiles(VIDEO_SUFFIXES | {".safetensors"}, "video or .safetensors feature file")
    window_unit = "seconds"

    def __init__(self, model: nn.Module, meta: dict[str, Any], device: str | torch.device = "cpu") -> None:
        super().__init__(model, meta, device)
        data = meta.get("data") or {}
        if "extraction" not in data:
            raise ValueError(
                "the checkpoint does not say how its features were extracted (no data.extraction)"
            )
        self.settings = ExtractionSettings(**data["extraction"])
        self.task = meta.get("task", data.get("task", "classification"))
        self._encoders: Encoders | None = None

    @property
    def encoders(self) -> Encoders:
        if self._encoders is None:
            self._encoders = Encoders.build(self.settings, self.device)
        return self._encoders

    def features(self, path: str | Path) -> VideoFeatures:
        path = Path(path)
        if path.suffix == ".safetensors":
            return read_features(path)
        return extract_video(path, self.encoders, self.settings)

    @torch.inference_mode()
    def _scores(self, frames, frame_times, clips, clip_times) -> np.ndarray:
        inputs = features_to_inputs(frames, frame_times, clips, clip_times)
        out = self.model(*(x.to(self.device) for x in inputs)).float()[0]
        return (out.softmax(-1) if self.task == "classification" else out).cpu().numpy().astype(np.float64)

    def _ranked(self, scores: np.ndarray, k: int) -> list[ClassScore]:
        if self.task == "classification":
            return top_classes(scores, self.classes, k)
        return [
            ClassScore(name, i, float(v))
            for i, (name, v) in enumerate(zip(self.classes, scores, strict=True))
        ]

    def predict(
        self, path: str | Path, window: float | None = None, stride: float | None = None, topk: int = 5
    ) -> Prediction:
        """Overall answer and per-segment scores for one video (or feature file)."""
        self.check_options(window, stride, topk)  # before the video is decoded
        return self.predict_features(self.features(path), path, window, stride, topk)

    def predict_features(
        self,
        f: VideoFeatures,
        source: str | Path,
        window: float | None = None,
        stride: float | None = None,
        topk: int = 5,
    ) -> Prediction:
        """:meth:`predict` on features already extracted (``source`` names them in the result)."""
        window, stride, topk = self.check_options(window, stride, topk)
        duration = float(f.meta.get("duration") or 0.0) or float(f.frame_times.max().item() + 1.0)
        fps = float(f.meta.get("video_fps") or self.settings.fps)
        window = window or DEFAULT_WINDOW_S
        stride = stride or window / 2
        centres = f.clip_centres
        overall = self._scores(f.frame_features, f.frame_times, f.clip_features, centres)
        windows = []
        for start in segment_starts(duration, window, stride):
            end = min(duration, start + window)
            fm = (f.frame_times >= start) & (f.frame_times < end)
            cm = (centres >= start) & (centres < end)
            scores = self._scores(
                f.frame_features[fm], f.frame_times[fm] - start, f.clip_features[cm], centres[cm] - start
            )
            windows.append(
                WindowPrediction(
                    start_frame=int(round(start * fps)),
                    end_frame=int(round(end * fps)),
                    start_time=start,
                    end_time=end,
                    probabilities=scores,
                    topk=self._ranked(scores, topk),
                )
            )
        return Prediction(
            source=str(source),
            classes=self.classes,
            probabilities=overall,
            topk=self._ranked(overall, topk),
            windows=windows,
            fps=fps,
            num_frames=int(f.meta.get("video_frames") or round(duration * fps)),
            window=int(round(window * fps)),
            stride=int(round(stride * fps)),
            task=self.task,
            whole_video=True,
        )
