"""Classify skeleton sequences and videos with a trained lightact model.

:class:`Recognizer` wraps a trained skeleton model (a work directory or its ``model.safetensors``)
and turns any of these into a :class:`Prediction`:

* a numpy array ``[M, T, V, C]`` of joint coordinates (or ``[T, V, C]`` for one person);
* an annotation dict in the MMAction2/pyskl pickle schema (``keypoint``, optional ``keypoint_score``
  and ``fps``), or a whole annotation file's dict (``{"annotations": [...]}``, giving a list);
* a path to a skeleton pickle (always a list, one prediction per annotation), a ``.npy`` array, or a
  video, whose poses :func:`lightact.data.skeleton.pose.extract_pose` extracts.

Input in another joint layout than the model's (a video gives MediaPipe's 33 landmarks) is converted
by :func:`lightact.data.skeleton.retarget.retarget` where a mapping exists, and refused with a clear
error where none does.

Windows
-------
A clip of at most :data:`WHOLE_CLIP_MAX_FRAMES` (300, NTU's longest clips at 30 fps) frames is
classified whole. A longer one is cut into windows of :data:`DEFAULT_WINDOW` (150 frames, 5 s at
30 fps: longer than most single actions, short enough to follow a sequence of them) with a stride of
half a window; the last window is aligned with the end of the clip, so no frame is left out. A padded
model (ST-GCN) never gets more than the ``data.max_frames`` it was trained with. Every window goes
through exactly what an evaluated sample goes through: the training run's ``data.test_transforms``
(read from the ``config.yaml`` beside the weights), ``eval.clip_len`` resampling when it was set,
score channel, joint/bone/motion features or padding, batching, softmax. The overall probabilities
are the mean of the windows' (windows with no person in them are reported but left out of the mean).
"""

from __future__ import annotations

import importlib
import json
import math
import pickle
import re
import warnings
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lightact.data.skeleton.layouts import Layout, get_layout, list_layouts
from lightact.data.skeleton.retarget import RetargetError, retarget, supported_mappings
from lightact.data.skeleton.transforms import Compose, TemporalResample, build_transforms
from lightact.data.video.reader import VIDEO_SUFFIXES
from lightact.engine.checkpoint import read_meta, resolve_weights_path

__all__ = [
    "DEFAULT_FPS",
    "DEFAULT_WINDOW",
    "SKELETON_SUFFIXES",
    "WHOLE_CLIP_MAX_FRAMES",
    "ClassScore",
    "NoPersonError",
    "Prediction",
    "PredictionInputError",
    "Recognizer",
    "WindowPrediction",
    "predict_path",
    "window_starts",
]

DEFAULT_FPS = 30.0  # NTU RGB+D and the synthetic data are 30 fps
WHOLE_CLIP_MAX_FRAMES = 300
DEFAULT_WINDOW = 150
SKELETON_SUFFIXES = frozenset({".pkl", ".pickle", ".npy"})
_BATCH_SIZE = 32
# Padded models (ST-GCN) average over person slots, and lightact's NTU converter and synthetic data
# always have two (the second all zeros for one-person actions): inputs with fewer get empty slots.
PADDED_PERSONS = 2


class PredictionInputError(ValueError):
    """The input cannot be classified by this model (shape, joint layout, channels, file type)."""


class NoPersonError(PredictionInputError):
    """Nobody is seen in any frame of the input."""


# ---------------------------------------------------------------------------------------------------
# results


@dataclass
class ClassScore:
    label: str
    index: int
    probability: float

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "index": self.index, "probability": self.probability}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassScore:
        return cls(str(data["label"]), int(data["index"]), float(data["probability"]))


def top_classes(probabilities: np.ndarray, classes: Sequence[str], k: int) -> list[ClassScore]:
    """The ``k`` most probable classes, best first."""
    # A stable sort keeps ties in class order, so the ranking is reproducible.
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [ClassScore(classes[i], int(i), float(probabilities[i])) for i in order]


@dataclass
class WindowPrediction:
    """One window: frames ``[start_frame, end_frame)``, times in seconds, class probabilities
    (``None`` when nobody is seen in the window) and their top k."""

    start_frame: int
    end_frame: int
    start_time: float
    end_time: float
    probabilities: np.ndarray | None
    topk: list[ClassScore]

    @property
    def has_person(self) -> bool:
        return self.probabilities is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "person": self.has_person,
            "probabilities": None if self.probabilities is None else [float(p) for p in self.probabilities],
            "topk": [c.to_dict() for c in self.topk],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowPrediction:
        probs = data.get("probabilities")
        return cls(
            start_frame=int(data["start_frame"]),
            end_frame=int(data["end_frame"]),
            start_time=float(data["start_time"]),
            end_time=float(data["end_time"]),
            probabilities=None if probs is None else np.asarray(probs, dtype=np.float64),
            topk=[ClassScore.from_dict(c) for c in data.get("topk", [])],
        )


@dataclass
class Prediction:
    """What a model says about one input.

    ``probabilities`` (over ``classes``) is the mean of the windows' probabilities; ``topk`` ranks
    it. ``source`` is the input (file path, or "array" / "annotation"), ``sample`` the annotation's
    ``frame_dir`` when it has one. ``layout`` is the model's joint layout, ``input_layout`` the
    layout the input was converted from (``None`` when it was already in the model's).
    """

    source: str
    classes: list[str]
    probabilities: np.ndarray
    topk: list[ClassScore]
    windows: list[WindowPrediction]
    fps: float
    num_frames: int
    window: int
    stride: int
    layout: str
    input_layout: str | None = None
    sample: str | None = None

    @property
    def label(self) -> str:
        """The most probable class overall."""
        return self.topk[0].label

    @property
    def score(self) -> float:
        return self.topk[0].probability

    @property
    def name(self) -> str:
        """A short name for titles: the sample's, else the source file's stem."""
        if self.sample:
            return self.sample
        return Path(self.source).name if self.source not in ("array", "annotation") else self.source

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable data; :meth:`from_dict` reads it back."""
        return {
            "source": self.source,
            "sample": self.sample,
            "label": self.label,
            "score": self.score,
            "topk": [c.to_dict() for c in self.topk],
            "classes": list(self.classes),
            "probabilities": [float(p) for p in self.probabilities],
            "fps": self.fps,
            "num_frames": self.num_frames,
            "duration": self.duration,
            "window": self.window,
            "stride": self.stride,
            "layout": self.layout,
            "input_layout": self.input_layout,
            "windows": [w.to_dict() for w in self.windows],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Prediction:
        return cls(
            source=str(data["source"]),
            classes=[str(c) for c in data["classes"]],
            probabilities=np.asarray(data["probabilities"], dtype=np.float64),
            topk=[ClassScore.from_dict(c) for c in data["topk"]],
            windows=[WindowPrediction.from_dict(w) for w in data["windows"]],
            fps=float(data["fps"]),
            num_frames=int(data["num_frames"]),
            window=int(data["window"]),
            stride=int(data["stride"]),
            layout=str(data["layout"]),
            input_layout=data.get("input_layout"),
            sample=data.get("sample"),
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    def save_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def load_json(cls, path: str | Path) -> Prediction:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def table(self, windows: bool = False):
        """A :class:`rich.table.Table`: the overall top k, or with ``windows`` each window's top-1."""
        from rich.table import Table

        span = f"{self.num_frames} frames, {self.duration:.1f} s at {self.fps:g} fps"
        if windows:
            table = Table(title=f"{self.name}: {len(self.windows)} window(s) of {self.window} frames")
            for column in ("start (s)", "end (s)", "class", "probability"):
                table.add_column(column, justify="left" if column == "class" else "right")
            for w in self.windows:
                top = w.topk[0] if w.topk else None
                table.add_row(
                    f"{w.start_time:.2f}",
                    f"{w.end_time:.2f}",
                    top.label if top else "(no person)",
                    f"{top.probability:.1%}" if top else "-",
                )
            return table
        used = sum(w.has_person for w in self.windows)
        table = Table(
            title=f"{self.name}: [bold]{self.label}[/bold] ({self.score:.1%})",
            caption=f"{span}; mean of {used} window(s) of {self.window} frames, stride {self.stride}",
            min_width=72,
        )
        for column in ("rank", "class", "probability"):
            table.add_column(column, justify="left" if column == "class" else "right")
        for rank, c in enumerate(self.topk, 1):
            table.add_row(str(rank), c.label, f"{c.probability:.1%}")
        return table

    def save_timeline(self, path: str | Path, num_classes: int = 5) -> Path:
        """Write a PNG: per-window probability of the overall top classes against time (each
        window's value drawn at its centre and across its span), the overall answer in the title.
        Windows without a person are shaded grey."""
        from matplotlib.figure import Figure

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        shown = [c.index for c in self.topk[:num_classes]]
        fig = Figure(figsize=(9, 4.2))
        ax = fig.subplots()
        centres = np.array([(w.start_time + w.end_time) / 2 for w in self.windows])
        for rank, index in enumerate(shown):
            values = np.array(
                [w.probabilities[index] if w.has_person else np.nan for w in self.windows], dtype=float
            )
            (line,) = ax.plot(
                centres, values, marker="o", lw=2 if rank == 0 else 1.3, label=self.classes[index]
            )
            for w, v in zip(self.windows, values, strict=True):  # each window's extent, faintly
                if not np.isnan(v):
                    ax.hlines(v, w.start_time, w.end_time, color=line.get_color(), alpha=0.25, lw=4)
        empty = [w for w in self.windows if not w.has_person]
        for i, w in enumerate(empty):
            ax.axvspan(
                w.start_time, w.end_time, color="0.85", zorder=0, label="no person" if i == 0 else None
            )
        ax.set_xlim(0, max(self.duration, 1e-6))
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("probability")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
        ax.set_title(
            f"{self.name}: {self.label} ({self.score:.0%}, mean of "
            f"{sum(w.has_person for w in self.windows)} window(s))"
        )
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        return path


# ---------------------------------------------------------------------------------------------------
# windows


def window_starts(num_frames: int, window: int, stride: int) -> list[int]:
    """First frames of the windows covering ``num_frames`` frames: every ``stride`` frames while a
    whole window fits, plus one ending at the last frame if those leave a tail uncovered. A clip no
    longer than ``window`` is one window starting at 0."""
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be at least 1 frame, got {window} and {stride}")
    if num_frames <= window:
        return [0]
    starts = list(range(0, num_frames - window + 1, stride))
    if starts[-1] + window < num_frames:
        starts.append(num_frames - window)
    return starts


# ---------------------------------------------------------------------------------------------------
# the recogniser


@dataclass
class _Input:
    source: str
    annotation: dict[str, Any]
    label: str = ""  # how error messages name it; the source by default

    def __post_init__(self) -> None:
        self.label = self.label or self.source


def _positive_int(value: int | None, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{what} must be a positive number of frames, got {value!r}")
    return int(value)


class Recognizer:
    """A trained skeleton model ready to classify inputs; see the module notes.

    Build it with :meth:`from_checkpoint`. ``classes`` are the class names, ``layout`` the joint
    layout the model reads, ``channels`` the coordinates (+ score) per joint it expects.
    """

    def __init__(
        self,
        model: nn.Module,
        meta: dict[str, Any],
        *,
        test_transforms: Sequence[str | dict[str, Any]] | None = None,
        clip_len: int | None = None,
        max_frames: int = 300,
        device: str | torch.device = "cpu",
        batch_size: int = _BATCH_SIZE,
        retarget_options: dict[str, Any] | None = None,
    ) -> None:
        from lightact.engine.checkpoint import layout_from_dict

        self.meta = meta
        self.classes: list[str] = [str(c) for c in meta["classes"]]
        layout = meta["kwargs"]["layout"]
        self.layout: Layout = layout_from_dict(layout) if isinstance(layout, dict) else get_layout(layout)
        self.model_name: str = meta["model"]
        self.input_format: str = meta["input_format"]
        if self.input_format not in ("packed", "padded"):
            raise ValueError(f"unknown model input format {self.input_format!r}")
        in_channels = int(meta["kwargs"].get("in_channels", getattr(model, "in_channels", 3)))
        self.channels = in_channels // 3 if self.input_format == "packed" else in_channels
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.max_frames = int(max_frames)
        self.batch_size = int(batch_size)
        self.retarget_options = dict(retarget_options or {})
        transforms = list(build_transforms(list(test_transforms or []), self.layout).transforms)
        if clip_len:  # as ``evaluate`` does for one test view
            transforms.append(TemporalResample(int(clip_len), random_offset=False))
        self.transform = Compose(transforms)

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        *,
        transforms: Sequence[str | dict[str, Any]] | None = None,
        batch_size: int = _BATCH_SIZE,
        retarget_options: dict[str, Any] | None = None,
    ) -> Recognizer:
        """Load a work directory or its ``model.safetensors``. The test transforms, ``eval.clip_len``
        and ``data.max_frames`` come from the ``config.yaml`` beside the weights; ``transforms``
        replaces the test transforms. Without a config no transform is applied (with a warning)."""
        from lightact.engine.checkpoint import load_model

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(
                f"no checkpoint at {path}: pass a lightact work directory (holding model.safetensors) "
                "or its model.safetensors file"
            )
        try:
            model, meta = load_model(path)
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"{err}: pass a lightact work directory (holding model.safetensors) or the file itself"
            ) from None
        except (KeyError, TypeError, json.JSONDecodeError) as err:
            raise ValueError(
                f"{path} is not a lightact model: its model description is unreadable ({err!r})"
            ) from None
        for key in ("classes", "kwargs", "input_format", "model"):
            if key not in meta:
                raise ValueError(f"{path} is not a lightact model: its description has no {key!r}")
        config = _saved_config(path)
        data = config.get("data") or {}
        if transforms is None:
            if config:
                transforms = data.get("test_transforms") or []
            else:
                warnings.warn(
                    f"no config.yaml beside {path}: windows are classified without the training run's "
                    "test transforms",
                    stacklevel=2,
                )
        try:
            return cls(
                model,
                meta,
                test_transforms=transforms,
                clip_len=(config.get("eval") or {}).get("clip_len"),
                max_frames=data.get("max_frames") or 300,
                device=device,
                batch_size=batch_size,
                retarget_options=retarget_options,
            )
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: cannot rebuild the test pipeline: {err}") from None

    # ------------------------------------------------------------------------------------------- api

    def predict(
        self,
        x: Any,
        window: int | None = None,
        stride: int | None = None,
        topk: int = 5,
        fps: float | None = None,
    ) -> Prediction | list[Prediction]:
        """Classify ``x`` (see the module notes for what it may be) in windows of ``window`` frames,
        ``stride`` apart (defaults: the whole clip up to 300 frames, else 150-frame windows at half a
        window's stride). ``fps`` (default: the input's own, else 30) turns frames into seconds.
        Returns one :class:`Prediction`, or a list for pickle files and annotation-file dicts."""
        window = _positive_int(window, "window")
        stride = _positive_int(stride, "stride")
        if isinstance(topk, bool) or not isinstance(topk, (int, np.integer)) or topk < 1:
            raise ValueError(f"topk must be a positive integer, got {topk!r}")
        if fps is not None and not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        inputs, many = self._read(x)
        if not many:
            return self._predict_one(inputs[0], window, stride, int(topk), fps)
        predictions, empty = [], []
        for item in inputs:
            try:
                predictions.append(self._predict_one(item, window, stride, int(topk), fps))
            except NoPersonError:
                empty.append(str(item.annotation.get("frame_dir") or item.label))
        if empty:
            if not predictions:
                raise NoPersonError(f"no person was found in {inputs[0].source}")
            warnings.warn(
                f"skipping {len(empty)} sample(s) in which no person is seen: "
                + ", ".join(map(str, empty[:5])),
                stacklevel=2,
            )
        return predictions

    def probabilities(self, clips: Iterable[dict[str, Any]]) -> np.ndarray:
        """Class probabilities ``[N, classes]`` of whole clips, each a dict with ``keypoint``
        (``[M, T, V, C]`` in the model's layout) and optional ``keypoint_score``, processed as a test
        sample is (test transforms, features, batching, softmax)."""
        from lightact.data.skeleton.batching import collate_packed, make_collate_padded
        from lightact.data.skeleton.dataset import SkeletonDataset

        annotations = [
            {
                "frame_dir": str(clip.get("frame_dir", f"clip{i}")),
                "label": -1,
                "keypoint": np.asarray(clip["keypoint"], dtype=np.float32),
                **(
                    {"keypoint_score": np.asarray(clip["keypoint_score"], dtype=np.float32)}
                    if clip.get("keypoint_score") is not None
                    else {}
                ),
            }
            for i, clip in enumerate(clips)
        ]
        if not annotations:
            return np.zeros((0, len(self.classes)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # empty clips are the caller's business
            dataset = SkeletonDataset(annotations, self.layout, self.input_format, self.transform, seed=0)
        if len(dataset.annotations) != len(annotations):
            raise NoPersonError("a clip given to Recognizer.probabilities has no person in it")
        collate = collate_packed if self.input_format == "packed" else make_collate_padded(self.max_frames)
        out = []
        with torch.inference_mode():
            for first in range(0, len(dataset), self.batch_size):
                batch = collate(
                    [dataset[i] for i in range(first, min(first + self.batch_size, len(dataset)))]
                )
                logits = self.model(*(t.to(self.device) for t in batch.inputs))
                out.append(logits.float().softmax(-1).cpu().numpy())
        return np.concatenate(out).astype(np.float64)

    def default_window(self, num_frames: int) -> int:
        """The window used when none is given: the whole clip up to 300 frames (and the padded
        model's ``max_frames``), else 150 frames."""
        limit = WHOLE_CLIP_MAX_FRAMES
        if self.input_format == "padded":
            limit = min(limit, self.max_frames)
        return num_frames if num_frames <= limit else min(DEFAULT_WINDOW, limit)

    # -------------------------------------------------------------------------------------- internals

    def _predict_one(
        self, item: _Input, window: int | None, stride: int | None, topk: int, fps: float | None
    ) -> Prediction:
        keypoint, score, input_layout = self._prepare(item)
        total = keypoint.shape[1]
        if fps is None:
            fps = _input_fps(item)
        window = min(window or self.default_window(total), total)
        stride = stride or max(1, window // 2)
        resampled = any(isinstance(t, TemporalResample) for t in self.transform.transforms)
        if self.input_format == "padded" and window > self.max_frames and not resampled:
            warnings.warn(
                f"windows of {window} frames are longer than the {self.max_frames} frames this model "
                f"takes (data.max_frames): it sees only the first {self.max_frames} of each",
                stacklevel=3,
            )
        clips, spans, seen = [], [], []
        for start in window_starts(total, window, stride):
            end = min(start + window, total)
            clip_kp = keypoint[:, start:end]
            spans.append((start, end))
            has_person = bool(np.any(clip_kp != 0))
            seen.append(has_person)
            if has_person:
                clip = {"frame_dir": f"{item.source}[{start}:{end}]", "keypoint": clip_kp}
                if score is not None:
                    clip["keypoint_score"] = score[:, start:end]
                clips.append(clip)
        probs = iter(self.probabilities(clips))
        windows = []
        for (start, end), has_person in zip(spans, seen, strict=True):
            p = next(probs) if has_person else None
            windows.append(
                WindowPrediction(
                    start_frame=start,
                    end_frame=end,
                    start_time=start / fps,
                    end_time=end / fps,
                    probabilities=p,
                    topk=[] if p is None else top_classes(p, self.classes, topk),
                )
            )
        overall = np.mean([w.probabilities for w in windows if w.has_person], axis=0)
        frame_dir = item.annotation.get("frame_dir")
        return Prediction(
            source=item.source,
            classes=list(self.classes),
            probabilities=overall,
            topk=top_classes(overall, self.classes, topk),
            windows=windows,
            fps=float(fps),
            num_frames=int(total),
            window=int(window),
            stride=int(stride),
            layout=self.layout.name,
            input_layout=input_layout,
            sample=None if frame_dir is None else str(frame_dir),
        )

    def _prepare(self, item: _Input) -> tuple[np.ndarray, np.ndarray | None, str | None]:
        """Keypoints (and scores) of ``item`` in the model's layout and channel format."""
        ann, source = item.annotation, item.label
        if "keypoint" not in ann:
            raise PredictionInputError(f"{source}: the annotation has no 'keypoint' array")
        keypoint = _as_keypoint(ann["keypoint"], source)
        if keypoint.shape[0] == 0 or keypoint.shape[1] == 0 or not np.any(keypoint != 0):
            raise NoPersonError(f"no person was found in {source}")
        if not np.isfinite(keypoint).all():
            raise PredictionInputError(f"{source}: the keypoints hold NaN or infinite values")
        input_layout = None
        source_layout = ann.get("layout")
        joints = keypoint.shape[2]
        convert = joints != self.layout.num_joints or (
            source_layout not in (None, self.layout.name)
            and (source_layout, self.layout.name) in supported_mappings()
        )
        if convert:
            source_layout = source_layout or _layout_by_joint_count(joints)
            if source_layout is None:
                raise PredictionInputError(
                    f"{source}: the input has {joints} joints per frame, but the model was trained on layout "
                    f"{self.layout.name!r} with {self.layout.num_joints} joints "
                    f"({', '.join(self.layout.joints[:4])}, ...)"
                )
            try:
                ann = retarget({**ann, "layout": source_layout}, self.layout.name, **self.retarget_options)
            except RetargetError as err:
                raise PredictionInputError(
                    f"{source}: the input has {joints} joints per frame (layout {source_layout!r}) but the "
                    f"model reads layout {self.layout.name!r} ({self.layout.num_joints} joints): {err}"
                ) from None
            input_layout = source_layout
            keypoint = _as_keypoint(ann["keypoint"], source)
            if not np.any(keypoint != 0):
                raise NoPersonError(f"no person was found in {source}")
        score = ann.get("keypoint_score")
        if score is not None:
            score = np.asarray(score, dtype=np.float32)
            if score.ndim == 2 and keypoint.shape[0] == 1:
                score = score[None]
            if score.shape != keypoint.shape[:3]:
                raise PredictionInputError(
                    f"{source}: 'keypoint_score' has shape {score.shape}, expected {keypoint.shape[:3]} "
                    "(persons, frames, joints)"
                )
        coords = keypoint.shape[-1]
        if score is not None and coords == self.channels:
            score = None  # the model was trained on coordinates alone
        given = coords + (score is not None)
        if given != self.channels:
            what = f"{coords} coordinates" + (" + a score" if score is not None else "")
            raise PredictionInputError(
                f"{source}: the model expects {self.channels} values per joint (3D coordinates, or 2D "
                f"coordinates + a score, as it was trained), the input has {what}"
            )
        if self.input_format == "padded" and keypoint.shape[0] < PADDED_PERSONS:
            missing = PADDED_PERSONS - keypoint.shape[0]
            keypoint = np.concatenate([keypoint, np.zeros((missing, *keypoint.shape[1:]), np.float32)])
            if score is not None:
                score = np.concatenate([score, np.zeros((missing, *score.shape[1:]), np.float32)])
        return keypoint, score, input_layout

    def _read(self, x: Any) -> tuple[list[_Input], bool]:
        if isinstance(x, np.ndarray):
            return [_Input("array", {"keypoint": x})], False
        if torch.is_tensor(x):
            return [_Input("array", {"keypoint": x.detach().cpu().numpy()})], False
        if isinstance(x, dict):
            if "annotations" in x:
                return _annotation_list(x["annotations"], "annotation"), True
            return [_Input(str(x.get("frame_dir") or "annotation"), x)], False
        if isinstance(x, (list, tuple)) and x and all(isinstance(a, dict) for a in x):
            return _annotation_list(x, "annotation"), True
        if isinstance(x, (str, Path)):
            return self._read_path(Path(x))
        raise PredictionInputError(
            f"cannot classify a {type(x).__name__}: give a keypoint array [M, T, V, C], an annotation dict, "
            "or the path of a .pkl, .npy or video file"
        )

    def _read_path(self, path: Path) -> tuple[list[_Input], bool]:
        if not path.exists():
            raise FileNotFoundError(f"no input at {path}")
        if path.is_dir():
            raise PredictionInputError(f"{path} is a folder: use predict_path to classify every file in it")
        suffix = path.suffix.lower()
        if suffix in (".pkl", ".pickle"):
            from lightact.data.skeleton.pickle_io import safe_load_pickle

            data = safe_load_pickle(path)
            if isinstance(data, dict) and "annotations" in data:
                return _annotation_list(data["annotations"], str(path)), True
            if isinstance(data, dict) and "keypoint" in data:
                return [_Input(str(path), data)], True
            if isinstance(data, list) and data and all(isinstance(a, dict) for a in data):
                return _annotation_list(data, str(path)), True
            raise PredictionInputError(
                f"{path} is neither an annotation, a list of them, nor a dict with an 'annotations' list"
            )
        if suffix == ".npy":
            try:
                array = np.load(path, allow_pickle=False)
            except ValueError as err:
                raise PredictionInputError(f"{path}: not a plain numeric .npy array ({err})") from None
            return [_Input(str(path), {"keypoint": array})], False
        if suffix in VIDEO_SUFFIXES:
            return [_Input(str(path), _extract_pose(path))], False
        raise PredictionInputError(
            f"{path}: unsupported file type {suffix or '(none)'}; give a skeleton pickle (.pkl), a .npy "
            f"array or a video ({', '.join(sorted(VIDEO_SUFFIXES))})"
        )


def _extract_pose(path: Path) -> dict[str, Any]:
    try:
        from lightact.data.skeleton.pose import extract_pose
    except ImportError as err:
        raise PredictionInputError(
            f"{path}: classifying a video needs the pose extractor (lightact.data.skeleton.pose and "
            f"MediaPipe), which cannot be imported: {err}"
        ) from None
    try:
        annotation = extract_pose(str(path))
    except ImportError as err:  # MediaPipe itself is missing (pose.MissingDependencyError)
        raise PredictionInputError(f"{path}: classifying a video needs MediaPipe: {err}") from None
    if not isinstance(annotation, dict) or "keypoint" not in annotation:
        raise PredictionInputError(f"{path}: the pose extractor returned no annotation")
    annotation = dict(annotation)
    annotation.setdefault("layout", "mediapipe33")
    if annotation.get("frame_dir") in (None, ""):
        annotation["frame_dir"] = path.stem
    return annotation


def _annotation_list(annotations: Any, source: str) -> list[_Input]:
    if not isinstance(annotations, list) or not annotations:
        raise PredictionInputError(f"{source} holds no annotation")
    out = []
    for i, ann in enumerate(annotations):
        if not isinstance(ann, dict) or "keypoint" not in ann:
            raise PredictionInputError(f"{source}: annotation {i} has no 'keypoint' array")
        out.append(_Input(source, ann, f"{source} (sample {ann.get('frame_dir', i)})"))
    return out


def _as_keypoint(keypoint: Any, source: str) -> np.ndarray:
    try:
        keypoint = np.asarray(keypoint, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise PredictionInputError(f"{source}: keypoints are not a numeric array ({err})") from None
    if keypoint.ndim == 3:  # one person: [T, V, C]
        keypoint = keypoint[None]
    if keypoint.ndim != 4 or keypoint.shape[-1] not in (2, 3):
        raise PredictionInputError(
            f"{source}: keypoints must be [M persons, T frames, V joints, C = 2 or 3 coordinates] "
            f"(or [T, V, C] for one person), got shape {keypoint.shape}"
        )
    return keypoint


def _layout_by_joint_count(joints: int) -> str | None:
    """The one built-in layout with this many joints, if exactly one has it."""
    matches = [name for name in list_layouts() if get_layout(name).num_joints == joints]
    return matches[0] if len(matches) == 1 else None


def _input_fps(item: _Input) -> float:
    fps = item.annotation.get("fps")
    try:
        fps = float(fps) if fps is not None else DEFAULT_FPS
    except (TypeError, ValueError):
        fps = DEFAULT_FPS
    return fps if math.isfinite(fps) and fps > 0 else DEFAULT_FPS


def _saved_config(path: Path) -> dict[str, Any]:
    """The raw ``config.yaml`` saved beside the weights (``{}`` when there is none)."""
    import yaml

    config = (path if path.is_dir() else path.parent) / "config.yaml"
    if not config.is_file():
        return {}
    try:
        raw = yaml.safe_load(config.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{config} is not valid YAML ({err})") from None
    return raw if isinstance(raw, dict) else {}


# ---------------------------------------------------------------------------------------------------
# files and folders


def input_files(path: Path, suffixes: Collection[str], what: str) -> list[Path]:
    """``path`` itself, or the files of a folder whose suffix is one of ``suffixes`` (not recursive,
    sorted by name); ``what`` names them in the error for a folder that holds none."""
    if not path.exists():
        raise FileNotFoundError(f"no input at {path}")
    if not path.is_dir():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise PredictionInputError(f"{path} holds no {what} ({', '.join(sorted(suffixes))})")
    return files


def unique_name(text: str, used: set[str]) -> str:
    """A file-name-safe form of ``text``, numbered when ``used`` already holds it; added to ``used``."""
    name = base = _safe_name(text)
    n = 1
    while name in used:
        n += 1
        name = f"{base}_{n}"
    used.add(name)
    return name


def predict_each(
    files: Sequence[Path],
    predict_one: Callable[[Path], Prediction],
    out_dir: str | Path | None,
    skip_errors: bool,
    errors: tuple[type[BaseException], ...] = (ValueError, OSError),
    timeline: bool = True,
) -> list[Prediction]:
    """``predict_one`` on every file; with ``out_dir`` write ``<name>.json`` and (with ``timeline``)
    ``<name>_timeline.png`` for each. With ``skip_errors`` and several files, a file that fails with
    one of ``errors`` is skipped with a warning (a single file's error always propagates)."""
    out = Path(out_dir) if out_dir is not None else None
    predictions: list[Prediction] = []
    used: set[str] = set()
    for file in files:
        try:
            prediction = predict_one(file)
        except errors as err:
            if not skip_errors or len(files) == 1:
                raise
            warnings.warn(f"skipping {file}: {err}", stacklevel=3)
            continue
        predictions.append(prediction)
        if out is not None:
            name = unique_name(file.stem, used)
            prediction.save_json(out / f"{name}.json")
            if timeline:
                prediction.save_timeline(out / f"{name}_timeline.png")
    return predictions


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "input"


def predict_path(
    checkpoint: str | Path | Recognizer,
    input: str | Path,
    window: int | None = None,
    stride: int | None = None,
    topk: int = 5,
    out_dir: str | Path | None = None,
    *,
    device: str = "cpu",
    skip_errors: bool = False,
) -> list[Prediction]:
    """Classify a file or every ``.pkl``/``.pickle``/``.npy``/video file of a folder (not recursive,
    sorted by name). With ``out_dir``, write ``<name>.json`` and ``<name>_timeline.png`` for each
    prediction: ``<name>`` is the file's stem, with ``_<frame_dir>`` appended for a pickle holding
    several annotations (and a number when names would collide). With ``skip_errors`` a file that
    cannot be classified is skipped with a warning instead of stopping the run."""
    if not isinstance(checkpoint, Recognizer):
        modality = read_meta(resolve_weights_path(checkpoint)).get("modality", "skeleton")
        if modality != "skeleton":
            # Clips, images and long videos have predictors of their own, with the same options.
            predictor = importlib.import_module(f"lightact.inference_{modality}")
            return predictor.predict_files(
                Path(checkpoint),
                Path(input),
                window=window,
                stride=stride,
                topk=topk,
                out_dir=out_dir,
                device=device,
                skip_errors=skip_errors,
            )
    recognizer = (
        checkpoint if isinstance(checkpoint, Recognizer) else Recognizer.from_checkpoint(checkpoint, device)
    )
    input = Path(input)
    files = input_files(
        input, SKELETON_SUFFIXES | VIDEO_SUFFIXES, "skeleton (.pkl, .pickle, .npy) or video file"
    )
    out = Path(out_dir) if out_dir is not None else None
    predictions: list[Prediction] = []
    used: set[str] = set()
    for file in files:
        try:
            result = recognizer.predict(file, window=window, stride=stride, topk=topk)
        except (ValueError, OSError, pickle.UnpicklingError) as err:  # UnsafePickleError included
            if not skip_errors or not input.is_dir():
                raise
            warnings.warn(f"skipping {file}: {err}", stacklevel=2)
            continue
        results = result if isinstance(result, list) else [result]
        for prediction in results:
            predictions.append(prediction)
            if out is None:
                continue
            name = file.stem
            if len(results) > 1:
                name = f"{name}_{prediction.sample or len(used)}"
            name = unique_name(name, used)
            prediction.save_json(out / f"{name}.json")
            prediction.save_timeline(out / f"{name}_timeline.png")
    if not predictions:
        raise PredictionInputError(f"nothing in {input} could be classified")
    return predictions
