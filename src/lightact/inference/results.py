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
    in the model's). ``persons`` says whose action this is: the indices of the tracked persons of a
    skeleton input the model saw (one for a person classified on their own, several for an
    interaction), ``None`` for inputs without persons (clips, images).
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
    persons: list[int] | None = None

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
    def who(self) -> str:
        """Whose action it is, for tables and pictures: "person 0", "persons 0+1", or ""."""
        if not self.persons:
            return ""
        ids = "+".join(str(p) for p in self.persons)
        return f"person {ids}" if len(self.persons) == 1 else f"persons {ids}"

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
            "persons": self.persons,
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
            persons=None if data.get("persons") is None else [int(p) for p in data["persons"]],
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
        """A :class:`rich.table.Table`: the overall top k, or with ``windows`` each window's top-1.
        Class names and titles are :class:`rich.text.Text`, never read as markup."""
        from rich.table import Table
        from rich.text import Text

        span = f"{self.num_frames} frames, {self.duration:.1f} s at {self.fps:g} fps"
        if windows:
            title = Text(f"{self.name}: {len(self.windows)} window(s) of {self.window} frames")
            table = Table(title=title)
            for column in ("start (s)", "end (s)", "class", "probability"):
                table.add_column(column, justify="left" if column == "class" else "right")
            for w in self.windows:
                top = w.topk[0] if w.topk else None
                table.add_row(
                    f"{w.start_time:.2f}",
                    f"{w.end_time:.2f}",
                    Text(top.label if top else "(no person)"),
                    f"{top.probability:.1%}" if top else "-",
                )
            return table
        if self.task == "regression":
            title = Text(f"{self.name}: " + ", ".join(f"{c.label} {c.probability:.4g}" for c in self.topk))
        else:
            who = f" ({self.who})" if self.who else ""
            title = Text.assemble(f"{self.name}{who}: ", (self.label, "bold"), f" ({self.score:.1%})")
        if self.whole_video:
            caption = f"{span}; the model on the whole video ({len(self.windows)} segments in the JSON)"
        else:
            used = sum(w.has_person for w in self.windows)
            caption = f"{span}; mean of {used} window(s) of {self.window} frames, stride {self.stride}"
        table = Table(title=title, caption=Text(caption), min_width=72)
        for column in ("rank", "class", "probability"):
            table.add_column(column, justify="left" if column == "class" else "right")
        for rank, c in enumerate(self.topk, 1):
            table.add_row(str(rank), Text(c.label), f"{c.probability:.1%}")
        return table

    def save_timeline(self, path: str | Path) -> Path:
        """Write a PNG of what the model says over time (:func:`timeline_figure`)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig = timeline_figure(self)
        fig.savefig(path, dpi=100, bbox_inches="tight")
        # A figure is full of reference cycles: cleared, its artists and buffers go now rather than
        # at the next full garbage collection (a server drawing one per request saw-toothed by
        # ~60 MiB without this; docs/serve.md).
        fig.clear()
        return path


def _owned_spans(windows: Sequence[WindowPrediction]) -> list[tuple[float, float]]:
    """The part of the timeline each window speaks for: overlapping windows split the overlap at
    the midpoint between their centres, so every instant is drawn once."""
    centres = [(w.start_time + w.end_time) / 2 for w in windows]
    spans = []
    for i, w in enumerate(windows):
        left = w.start_time if i == 0 else max(w.start_time, (centres[i - 1] + centres[i]) / 2)
        right = w.end_time if i == len(windows) - 1 else min(w.end_time, (centres[i] + centres[i + 1]) / 2)
        spans.append((left, right))
    return spans


def _class_colours(count: int) -> list:
    from matplotlib import colormaps

    if count <= 10:
        return list(colormaps["tab10"].colors[:count])
    if count <= 20:
        return list(colormaps["tab20"].colors[:count])
    return [colormaps["hsv"](i / count) for i in range(count)]


def timeline_figure(prediction: Prediction):
    """A matplotlib figure of ``prediction`` over time.

    Classification: each window's top class is a segment coloured by class, as high as its
    probability, over the part of the timeline the window speaks for (overlaps split at the
    midpoint); consecutive windows with the same top class are named once when there is room.
    Every class that is top somewhere is in the legend, beside the plot. The black line is the
    overall answer's probability in each window; the title gives the overall answer (the mean over
    windows, or with ``whole_video`` the model on the whole input). Windows without a person are
    grey. Regression: each target's predicted value per window. With one window a note says how
    to get a timeline.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    p = prediction
    fig = Figure(figsize=(10, 4.2))
    ax = fig.subplots()
    spans = _owned_spans(p.windows)
    handles: list = []
    if p.task == "regression":
        centres = [(w.start_time + w.end_time) / 2 for w in p.windows]
        for c in p.topk:
            values = [w.probabilities[c.index] if w.has_person else np.nan for w in p.windows]
            (line,) = ax.step(centres, values, where="mid", marker="o", label=c.label)
            if p.whole_video:
                ax.axhline(p.probabilities[c.index], color=line.get_color(), ls="--", lw=1)
            handles.append(line)
        ax.set_ylabel("predicted value")
    else:
        tops = [int(np.argmax(w.probabilities)) if w.has_person else None for w in p.windows]
        # Legend order: the overall answer first, then the others by how many windows they top.
        counts = {i: tops.count(i) for i in dict.fromkeys(t for t in tops if t is not None)}
        order = sorted(counts, key=lambda i: (i != p.topk[0].index, -counts[i]))
        colour = dict(zip(order, _class_colours(len(order)), strict=True))
        for (left, right), w, top in zip(spans, p.windows, tops, strict=True):
            if top is not None:
                ax.bar(
                    left,
                    w.probabilities[top],
                    width=right - left,
                    align="edge",
                    color=colour[top],
                    edgecolor="white",
                    linewidth=0.6,
                )
        _name_runs(ax, spans, tops, p.classes, max(p.duration, 1e-6))
        handles += [Patch(color=colour[i], label=f"{p.classes[i]} ({counts[i]} window(s))") for i in order]
        if p.whole_video:  # the answer is the model on the whole input, not these windows' mean
            handles.append(
                ax.axhline(p.score, color="black", ls="--", lw=1.2, label=f"{p.label}, whole video")
            )
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("probability of the window's top class")
    empty = [w for w in p.windows if not w.has_person]
    for w in empty:
        ax.axvspan(w.start_time, w.end_time, color="0.85", zorder=0)
    if empty:
        handles.append(Patch(color="0.85", label="no person"))
    ax.set_xlim(0, max(p.duration, 1e-6))
    ax.set_xlabel("time (s)")
    ax.grid(axis="y", alpha=0.3)
    columns = 1 if len(handles) <= 16 else 2
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0,
        fontsize=8,
        ncols=columns,
        frameon=False,
    )
    ax.set_title(_timeline_title(p), fontsize=10, loc="left")
    fig.tight_layout()
    return fig


def _name_runs(ax, spans, tops, classes, duration: float) -> None:
    """Write the class name over each run of consecutive windows with the same top class:
    horizontally where it fits, upright where only that fits, not at all on a sliver."""
    width_in = ax.figure.get_figwidth() * ax.get_position().width
    per_char = 0.075 / width_in * duration  # an 8-point character, in seconds of the axis
    start = 0
    for i in range(1, len(tops) + 1):
        if i < len(tops) and tops[i] == tops[start]:
            continue
        left, right = spans[start][0], spans[i - 1][1]
        name = classes[tops[start]] if tops[start] is not None else ""
        if name and right - left >= 2.5 * per_char:
            flat = right - left >= (len(name) + 1) * per_char
            ax.text((left + right) / 2, 0.03, name, ha="center", va="bottom", fontsize=8,
                    rotation=0 if flat else 90, clip_on=True)  # fmt: skip
        start = i


def _timeline_title(p: Prediction) -> str:
    score = f"{p.score:.4g}" if p.task == "regression" else f"{p.score:.0%}"
    answer = score if p.task == "regression" else f"{p.label} ({score})"
    if p.whole_video:
        seconds = p.window / p.fps if p.fps else 0
        title = (
            f"{p.name}: overall {answer}, the model on the whole video; "
            f"bars: {len(p.windows)} segments of {seconds:.0f} s"
        )
    else:
        used = sum(w.has_person for w in p.windows)
        title = f"{p.name}: overall {answer}, the mean of {used} window(s) of {p.window} frames"
    if len(p.windows) == 1:
        title += "\none window covers the whole input: a shorter --window (and --stride) gives a timeline"
    return title
