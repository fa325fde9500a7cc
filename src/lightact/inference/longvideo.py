"""Classify (or score) long videos with a trained long-video model (STAN or a baseline).

A video goes through exactly what the training store went through: the extraction settings are
read from the checkpoint (``meta["data"]["extraction"]``), the frame and clip encoders rebuilt (the
same weights file, or the same seeded random initialisation) and the video decoded as a stream
(:func:`lightact.data.longvideo.extract.extract_video`), so memory stays small and grows linearly
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

from lightact.data.longvideo.dataset import features_to_inputs
from lightact.data.longvideo.extract import Encoders, ExtractionSettings, extract_video
from lightact.data.longvideo.store import VideoFeatures, read_features
from lightact.data.video.reader import VIDEO_SUFFIXES
from lightact.engine.checkpoint import load_model
from lightact.inference.files import input_files, predict_each
from lightact.inference.results import ClassScore, Prediction, WindowPrediction, top_classes

__all__ = [
    "DEFAULT_WINDOW_S",
    "LongVideoRecognizer",
    "predict_files",
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


class LongVideoRecognizer:
    """A trained long-video model plus the encoders that made its training features."""

    def __init__(self, model: torch.nn.Module, meta: dict[str, Any], device: str = "cpu") -> None:
        self.model = model.to(device).eval()
        self.meta = meta
        self.device = torch.device(device)
        data = meta.get("data") or {}
        if "extraction" not in data:
            raise ValueError(
                "the checkpoint does not say how its features were extracted (no data.extraction)"
            )
        self.settings = ExtractionSettings(**data["extraction"])
        self.task = meta.get("task", data.get("task", "classification"))
        self.classes: list[str] = list(meta["classes"])
        self._encoders: Encoders | None = None

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, device: str = "cpu") -> LongVideoRecognizer:
        model, meta = load_model(checkpoint)
        if meta.get("modality") != "longvideo":
            raise ValueError(f"{checkpoint} holds a {meta.get('modality')} model, not a long-video one")
        return cls(model, meta, device)

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
        duration = float(f.meta.get("duration") or 0.0) or float(f.frame_times.max().item() + 1.0)
        fps = float(f.meta.get("video_fps") or self.settings.fps)
        window = float(window or DEFAULT_WINDOW_S)
        stride = float(stride or window / 2)
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


def predict_files(
    checkpoint: Path,
    paths: Path | list[Path],
    window: float | None = None,
    stride: float | None = None,
    topk: int = 5,
    out_dir: str | Path | None = None,
    device: str = "cpu",
    skip_errors: bool = False,
    **_: Any,
) -> list[Prediction]:
    """Predict every video (or feature file) given or in the given folders; with ``out_dir`` write
    ``<stem>.json`` and ``<stem>_timeline.png``. ``window``/``stride`` in seconds (default 30 / 15).
    With ``skip_errors`` an undecodable file is skipped with a warning (it stops the run otherwise)."""
    recognizer = LongVideoRecognizer.from_checkpoint(checkpoint, device)
    inputs = paths if isinstance(paths, list) else [paths]
    suffixes = VIDEO_SUFFIXES | {".safetensors"}
    files = [f for p in inputs for f in input_files(Path(p), suffixes, "video or .safetensors feature file")]
    return predict_each(
        files, lambda file: recognizer.predict(file, window, stride, topk), out_dir, skip_errors
    )
