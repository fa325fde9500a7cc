"""What a prediction is: class scores, windows over time, and the whole input's answer.

Every predictor (:mod:`lightact.inference.skeleton`, ``video``, ``image``, ``longvideo``) returns a
:class:`Prediction`; it serialises to plain JSON and back, prints as a table and draws its timeline.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lightact.errors import DataError

__all__ = [
    "TASKS",
    "ClassScore",
    "NoPersonError",
    "Prediction",
    "PredictionInputError",
    "WindowPrediction",
    "top_classes",
]


class PredictionInputError(DataError):
    """The input cannot be classified by this model (shape, joint layout, channels, file type)."""


class NoPersonError(PredictionInputError):
    """Nobody is seen in any frame of the input."""


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


TASKS = ("classification", "regression")


@dataclass
class Prediction:
    """What a model says about one input.

    ``probabilities`` (over ``classes``) is the mean of the windows' probabilities, or, with
    ``whole_video``, the model's answer on the whole input (a long-video model: the answer may rest
    on events minutes apart, so it is not an average of segments); ``topk`` ranks it. ``task`` is
    "classification" or "regression"; a regression model's ``probabilities`` are its predicted
    values, one per target (``classes`` names the targets), and ``topk`` lists them in target order.
    ``source`` is the input (file path, or "array" / "annotation"), ``sample`` the annotation's
    ``frame_dir`` when it has one. ``layout`` is a skeleton model's joint layout (empty for other
    inputs), ``input_layout`` the layout the input was converted from (``None`` when it was already
    in the model's).
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
    layout: str = ""
    input_layout: str | None = None
    sample: str | None = None
    task: str = "classification"
    whole_video: bool = False

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}: a prediction is one of {', '.join(TASKS)}")

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
            "task": self.task,
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
            "whole_video": self.whole_video,
            "layout": self.layout,
            "input_layout": self.input_layout,
            "windows": [w.to_dict() for w in self.windows],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Prediction:
        """Read :meth:`to_dict`'s data (a file written before ``task`` and ``whole_video`` were
        recorded reads as a classification averaged over its windows)."""
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
            task=str(data.get("task", "classification")),
            whole_video=bool(data.get("whole_video", False)),
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
        if self.task == "regression":
            title = f"{self.name}: " + ", ".join(f"{c.label} {c.probability:.4g}" for c in self.topk)
        else:
            title = f"{self.name}: [bold]{self.label}[/bold] ({self.score:.1%})"
        if self.whole_video:
            caption = f"{span}; the model on the whole video ({len(self.windows)} segments in the JSON)"
        else:
            used = sum(w.has_person for w in self.windows)
            caption = f"{span}; mean of {used} window(s) of {self.window} frames, stride {self.stride}"
        table = Table(title=title, caption=caption, min_width=72)
        for column in ("rank", "class", "probability"):
            table.add_column(column, justify="left" if column == "class" else "right")
        for rank, c in enumerate(self.topk, 1):
            table.add_row(str(rank), c.label, f"{c.probability:.1%}")
        return table

    def save_timeline(self, path: str | Path, num_classes: int = 5) -> Path:
        """Write a PNG: each window's probability of the overall top classes (a regression model's
        predicted values) against time, drawn at the window's centre and faintly across its span.
        Windows without a person are shaded grey. The title gives the overall answer; with
        ``whole_video`` that answer is the model on the whole input, drawn as dashed lines."""
        from matplotlib.figure import Figure

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        regression = self.task == "regression"
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
            for w, v in zip(self.windows, values, strict=True):
                if not np.isnan(v):
                    ax.hlines(v, w.start_time, w.end_time, color=line.get_color(), alpha=0.25, lw=4)
            if self.whole_video:
                ax.axhline(self.probabilities[index], color=line.get_color(), ls="--", lw=1)
        empty = [w for w in self.windows if not w.has_person]
        for i, w in enumerate(empty):
            ax.axvspan(
                w.start_time, w.end_time, color="0.85", zorder=0, label="no person" if i == 0 else None
            )
        ax.set_xlim(0, max(self.duration, 1e-6))
        if not regression:
            ax.set_ylim(0, 1.02)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("predicted value" if regression else "probability")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8, framealpha=0.8)
        score = f"{self.score:.4g}" if regression else f"{self.score:.0%}"
        if self.whole_video:
            answer = score if regression else f"{self.label} ({score})"
            seconds = self.window / self.fps if self.fps else 0
            ax.set_title(
                f"{self.name}: {answer} on the whole video (dashed); dots: {len(self.windows)} segments "
                f"of {seconds:.0f} s",
                fontsize=10,
            )
        else:
            used = sum(w.has_person for w in self.windows)
            ax.set_title(f"{self.name}: {self.label} ({score}, mean of {used} window(s))")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        return path
