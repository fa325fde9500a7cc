"""Which detection is which person: bounding boxes, a small tracker that keeps identities across
frames, and the removal of appearances too short to be a person.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``[x0, y0, x1, y1]`` boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def contained(a: np.ndarray, b: np.ndarray) -> float:
    """Share of box ``a``'s area that lies inside box ``b``."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1])
    return float(ix * iy / area) if area > 0 else 1.0


def landmark_box(xy: np.ndarray, width: int, height: int) -> np.ndarray:
    """[x0, y0, x1, y1] in pixels around ALL 33 landmarks, clipped to the frame.

    All landmarks, not only the visible ones: MediaPipe places occluded and off-frame joints where the
    body should be, so the box covers the whole person (a box of the visible joints leaves e.g. the hair
    and shoulders of a close-up face unmasked, and the next slot then "finds" them as a second person).
    """
    x0, y0 = xy.min(axis=0)
    x1, y1 = xy.max(axis=0)
    return np.array(
        [np.clip(x0, 0, width), np.clip(y0, 0, height), np.clip(x1, 0, width), np.clip(y1, 0, height)],
        dtype=np.float64,
    )


def drop_short_runs(present: np.ndarray, min_run: int) -> np.ndarray:
    """``present`` [T] with every run of consecutive True shorter than ``min_run`` set to False."""
    keep = present.copy()
    t = 0
    while t < len(keep):
        if not keep[t]:
            t += 1
            continue
        end = t
        while end < len(keep) and keep[end]:
            end += 1
        if end - t < min_run:
            keep[t:end] = False
        t = end
    return keep


class Tracker:
    """Gives each detection a stable output index in ``0 .. slots-1``.

    Detections are matched to the people of earlier frames (each remembered by its last box, for up to
    ``max_lost`` frames after it was last seen) by the assignment with the highest total affinity
    (IoU plus a centroid-proximity bonus); pairs with no overlap whose centroids are further apart than
    ``max_jump`` box diagonals never match. An unmatched detection takes a free index (never used, or
    its person lost for longer than ``max_lost``), else the index whose person was lost longest.
    """

    def __init__(self, slots: int, max_lost: int = 15, max_jump: float = 0.75) -> None:
        self.slots = slots
        self.max_lost = max_lost
        self.max_jump = max_jump
        self.boxes: list[np.ndarray | None] = [None] * slots
        self.last_seen = [-(10**9)] * slots

    def _affinity(self, track: np.ndarray, det: np.ndarray) -> float | None:
        iou = box_iou(track, det)
        diag = float(np.hypot(track[2] - track[0], track[3] - track[1])) + 1e-6
        dist = float(
            np.hypot((track[0] + track[2] - det[0] - det[2]) / 2, (track[1] + track[3] - det[1] - det[3]) / 2)
        )
        if iou <= 0.0 and dist > self.max_jump * diag:
            return None
        return iou + 0.5 * max(0.0, 1.0 - dist / (self.max_jump * diag))

    def assign(self, frame: int, boxes: Sequence[np.ndarray]) -> list[int]:
        live = [
            s
            for s in range(self.slots)
            if self.boxes[s] is not None and frame - self.last_seen[s] <= self.max_lost
        ]
        affinity = {
            (d, s): a
            for d, box in enumerate(boxes)
            for s in live
            if (a := self._affinity(self.boxes[s], box)) is not None  # type: ignore[arg-type]
        }
        best: tuple[float, dict[int, int]] = (0.0, {})
        # Exact search over all partial matchings: at most 4 detections x 4 people.
        options = [[None, *[s for s in live if (d, s) in affinity]] for d in range(len(boxes))]
        for choice in itertools.product(*options):
            used = [s for s in choice if s is not None]
            if len(used) != len(set(used)):
                continue
            total = sum(affinity[(d, s)] for d, s in enumerate(choice) if s is not None)
            if total > best[0]:
                best = (total, {d: s for d, s in enumerate(choice) if s is not None})
        result = dict(best[1])
        taken = set(result.values())
        for d in range(len(boxes)):
            if d in result:
                continue
            free = [s for s in range(self.slots) if s not in taken]
            # Never used first, then lost longest (smallest last_seen) - both sort first by last_seen.
            s = min(free, key=lambda s: (self.boxes[s] is not None, self.last_seen[s], s))
            result[d] = s
            taken.add(s)
        for d, s in result.items():
            self.boxes[s] = np.asarray(boxes[d], dtype=np.float64)
            self.last_seen[s] = frame
        return [result[d] for d in range(len(boxes))]
