"""Fake MediaPipe Pose graphs for the pose extractor's tests (no MediaPipe needed): white squares
on dark frames are the "people"."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np


class FakePoseGraph:
    """A stand-in for a MediaPipe Pose graph: it "finds" the leftmost bright square of an image, and
    like a tracking graph its answer also depends on what it saw before (the visibility counts its
    calls), so a slot that saw other frames, or the same frames in another order, answers otherwise.
    ``wait_for_overlap``: the second graph's first call on a frame that is not blank (warm-up
    frames are) waits until the first graph has started on the next frame (at most 5 s) and records
    whether it did. ``reset`` forgets the calls, as a graph forgets its track. ``sizes``: the
    (height, width) of every image it was given, warm-up included, kept across resets."""

    created: list[FakePoseGraph] = []
    wait_for_overlap = False
    fail_at: tuple[int, int] | None = None  # (graph, call): that call raises

    def __init__(self, inference_threads: int = 1, **options: object) -> None:
        self.inference_threads = inference_threads
        self.calls, self.overlapped = 0, None
        self.sizes: list[tuple[int, int]] = []
        self.started = threading.Event()
        FakePoseGraph.created.append(self)

    def process(self, image: np.ndarray):
        self.calls += 1
        self.sizes.append(image.shape[:2])
        if FakePoseGraph.fail_at == (FakePoseGraph.created.index(self), self.calls):
            raise RuntimeError("graph failed")
        first = FakePoseGraph.created[0]
        if self is first and self.calls == 2:
            self.started.set()
        if (
            FakePoseGraph.wait_for_overlap
            and self is FakePoseGraph.created[1]
            and self.overlapped is None
            and image.any()
        ):
            self.overlapped = first.started.wait(timeout=5)
        bright = (image > 200).all(axis=2)
        columns = np.flatnonzero(bright.any(axis=0))
        if not len(columns):
            return SimpleNamespace(pose_landmarks=None, pose_world_landmarks=None)
        gaps = np.flatnonzero(np.diff(columns) > 1)
        last = columns[gaps[0]] if len(gaps) else columns[-1]  # the leftmost square's right edge
        rows = np.flatnonzero(bright[:, columns[0] : last + 1].any(axis=1))
        height, width = image.shape[:2]
        x = np.linspace(columns[0], last, 33) / width
        y = np.linspace(rows[0], rows[-1], 33) / height
        visibility = 0.05 + (self.calls % 10) / 10
        points = [SimpleNamespace(x=a, y=b, z=0.0, visibility=visibility) for a, b in zip(x, y, strict=True)]
        return SimpleNamespace(
            pose_landmarks=SimpleNamespace(landmark=points),
            pose_world_landmarks=SimpleNamespace(landmark=points),
        )

    def reset(self) -> None:
        self.calls, self.overlapped = 0, None
        self.started.clear()

    def close(self) -> None:
        pass


def square_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """Dark frames with 0-4 white squares ("people") at random places, a new draw every few frames."""
    rng = np.random.default_rng(seed)
    frames, squares = [], []
    for t in range(n):
        if t % 4 == 0:
            squares = [(rng.integers(0, 140), rng.integers(0, 90)) for _ in range(rng.integers(0, 5))]
        frame = np.full((120, 160, 3), 30, np.uint8)
        for x, y in squares:
            frame[y : y + 24, x : x + 16] = 255
        frames.append(frame)
    return frames


def use_fake_graphs(monkeypatch):
    """:class:`~lightact.data.skeleton.pose.extractor.PoseExtractor`, building FakePoseGraph s
    instead of MediaPipe's graphs for as long as ``monkeypatch`` lasts."""
    from lightact.data.skeleton.pose import extractor

    monkeypatch.setattr(extractor, "pose_graph", FakePoseGraph)
    monkeypatch.setattr(FakePoseGraph, "created", [])
    return extractor.PoseExtractor
