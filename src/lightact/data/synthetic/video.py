"""The embedded video dataset: small rendered clips where some classes differ only in time.

Sixteen classes of ``num_frames`` RGB frames (default 16 at 64x64), each clip a moving figure (a
shape or a stick person, random size, a bright colour from a palette shared by all classes) on a
varied darker background (a two-colour gradient at a random angle, soft blobs, faint static
distractors, per-frame sensor noise):

* ten **temporal** classes in five pairs whose members differ *only in direction or order*: left to
  right / right to left, up / down, growing / shrinking, raising / lowering arms, turning clockwise /
  anticlockwise. A clip of one class played backwards is a clip of its partner, drawn from the same
  distribution, so a model that pools frames without temporal modelling cannot tell a pair apart
  (at best 50 % within a pair);
* six **appearance** classes that differ only in what is seen (ball, box, triangle, ring, cross,
  a person standing), all drifting with the same random motion.

Everything is a pure function of ``seed`` (each clip is seeded by ``(seed, label, index)``).
:func:`generate_video_dataset` returns clips in memory (the quickstart trains from it without
decoding); :func:`write_video_dataset` writes H.264 MP4 files and MMAction2-style video lists
(``relative/path.mp4 label``) that ``data.format: list`` reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "APPEARANCE_CLASSES",
    "CLASSES",
    "TEMPORAL_CLASSES",
    "TEMPORAL_PAIRS",
    "SyntheticVideos",
    "generate_video_dataset",
    "render_clip",
    "write_video_dataset",
]

TEMPORAL_PAIRS = (
    ("moving something from left to right", "moving something from right to left"),
    ("moving something up", "moving something down"),
    ("something growing", "something shrinking"),
    ("person raising arms", "person lowering arms"),
    ("turning something clockwise", "turning something anticlockwise"),
)
TEMPORAL_CLASSES = tuple(name for pair in TEMPORAL_PAIRS for name in pair)
APPEARANCE_CLASSES = (
    "ball drifting",
    "box drifting",
    "triangle drifting",
    "ring drifting",
    "cross drifting",
    "person standing",
)
CLASSES = TEMPORAL_CLASSES + APPEARANCE_CLASSES
_SHAPES = ("ball", "box", "triangle", "ring", "cross", "diamond")
_PALETTE = np.array(
    [[1.0, 1.0, 1.0], [1.0, 0.9, 0.2], [0.3, 1.0, 1.0], [1.0, 0.5, 1.0], [0.6, 1.0, 0.4], [1.0, 0.7, 0.3]]
)


@dataclass
class SyntheticVideos:
    """Clips ``uint8 [T, H, W, 3]`` with labels, per split, and the class names."""

    classes: list[str]
    splits: dict[str, list[tuple[np.ndarray, int]]] = field(default_factory=dict)

    @property
    def temporal_labels(self) -> list[int]:
        return [self.classes.index(c) for c in TEMPORAL_CLASSES]


# ----------------------------------------------------------------------------- drawing


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return yy + 0.5, xx + 0.5


def _shape_mask(shape: str, yy, xx, cy: float, cx: float, r: float, angle: float = 0.0) -> np.ndarray:
    """Soft (anti-aliased) coverage in [0, 1] of a shape of radius ``r`` centred at (cy, cx)."""
    c, s = np.cos(angle), np.sin(angle)
    dy, dx = yy - cy, xx - cx
    u, v = c * dx + s * dy, -s * dx + c * dy  # rotated coordinates
    if shape == "ball":
        d = np.hypot(u, v) - r
    elif shape == "box":
        d = np.maximum(np.abs(u), np.abs(v)) - 0.8 * r
    elif shape == "diamond":
        d = (np.abs(u) + np.abs(v)) / np.sqrt(2) - 0.75 * r
    elif shape == "ring":
        d = np.abs(np.hypot(u, v) - 0.75 * r) - 0.3 * r
    elif shape == "cross":
        d = np.minimum(
            np.maximum(np.abs(u) - r, np.abs(v) - 0.3 * r), np.maximum(np.abs(v) - r, np.abs(u) - 0.3 * r)
        )
    elif shape == "triangle":
        # an upward triangle: three half-planes
        d = np.maximum.reduce([v - 0.6 * r, -0.866 * u - 0.5 * v - 0.45 * r, 0.866 * u - 0.5 * v - 0.45 * r])
    elif shape == "hand":  # a clock hand: a bar with a knob at its tip, for visible rotation
        bar = np.maximum(np.abs(v) - 0.22 * r, np.abs(u - 0.5 * r) - 0.75 * r)
        d = np.minimum(bar, np.hypot(u - 1.2 * r, v) - 0.35 * r)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return np.clip(0.5 - d, 0.0, 1.0)


def _segment_mask(yy, xx, p0, p1, width: float) -> np.ndarray:
    (y0, x0), (y1, x1) = p0, p1
    vy, vx = y1 - y0, x1 - x0
    length2 = max(vy * vy + vx * vx, 1e-6)
    t = np.clip(((yy - y0) * vy + (xx - x0) * vx) / length2, 0.0, 1.0)
    d = np.hypot(yy - (y0 + t * vy), xx - (x0 + t * vx)) - width / 2
    return np.clip(0.5 - d, 0.0, 1.0)


def _person_mask(yy, xx, cy: float, cx: float, height: float, arm_angle: float) -> np.ndarray:
    """Stick person centred at (cy, cx); ``arm_angle`` in radians from horizontal (+ up)."""
    unit = height / 6.0
    width = max(1.6, 0.55 * unit)
    head = (cy - 2.3 * unit, cx)
    neck, hip = (cy - 1.5 * unit, cx), (cy + 0.8 * unit, cx)
    shoulder = (cy - 1.1 * unit, cx)
    arm = 1.9 * unit
    parts = [
        np.clip(0.5 - (np.hypot(yy - head[0], xx - head[1]) - 0.8 * unit), 0, 1),
        _segment_mask(yy, xx, neck, hip, width),
        _segment_mask(yy, xx, hip, (cy + 2.9 * unit, cx - 0.9 * unit), width),
        _segment_mask(yy, xx, hip, (cy + 2.9 * unit, cx + 0.9 * unit), width),
    ]
    for side in (-1.0, 1.0):
        hand = (shoulder[0] - arm * np.sin(arm_angle), shoulder[1] + side * arm * np.cos(arm_angle))
        parts.append(_segment_mask(yy, xx, shoulder, hand, width))
    return np.maximum.reduce(parts)


def _background(rng: np.random.Generator, size: int, yy, xx) -> np.ndarray:
    c0, c1 = rng.uniform(0.05, 0.55, 3), rng.uniform(0.05, 0.55, 3)  # darker than any figure
    theta = rng.uniform(0, 2 * np.pi)
    ramp = ((np.cos(theta) * xx + np.sin(theta) * yy) / size + 1) / 2
    img = c0[None, None] * (1 - ramp[..., None]) + c1[None, None] * ramp[..., None]
    for _ in range(rng.integers(2, 5)):  # soft blobs
        cy, cx, sigma = rng.uniform(0, size, 2).tolist() + [rng.uniform(0.06, 0.2) * size]
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
        img += (rng.uniform(-0.15, 0.15, 3))[None, None] * blob[..., None]
    for _ in range(rng.integers(0, 2)):  # faint static distractors
        centre = rng.uniform(0.1 * size, 0.9 * size, 2)
        mask = _shape_mask(str(rng.choice(_SHAPES)), yy, xx, *centre, rng.uniform(0.04, 0.07) * size)
        img = img * (1 - 0.2 * mask[..., None]) + 0.2 * mask[..., None] * rng.uniform(0, 1, 3)
    return img.astype(np.float32)


def _ease(rng: np.random.Generator, frames: int) -> np.ndarray:
    """Progress 0 -> 1 over the clip, with a random start/end pause and mild acceleration."""
    t = np.linspace(0, 1, frames)
    a, b = sorted(rng.uniform(0, 0.3, 2) * np.array([1, -1]) + np.array([0, 1]))
    p = np.clip((t - a) / max(b - a, 1e-3), 0, 1)
    gamma = rng.uniform(0.7, 1.4)
    return p**gamma


def render_clip(label: int, rng: np.random.Generator, num_frames: int = 16, size: int = 64) -> np.ndarray:
    """One clip of class ``label`` (index into :data:`CLASSES`): uint8 ``[T, size, size, 3]``."""
    name = CLASSES[label]
    yy, xx = _grid(size)
    bg = _background(rng, size, yy, xx)
    # a bright colour from a palette shared by every class, so colour says nothing about the class
    colour = _PALETTE[rng.integers(len(_PALETTE))] * rng.uniform(0.9, 1.0)
    r = rng.uniform(0.2, 0.26) * size
    shape = str(rng.choice(_SHAPES))
    progress = _ease(rng, num_frames)
    if label < len(TEMPORAL_CLASSES):
        pair, backwards = divmod(label, 2)
        progress = progress[::-1] if backwards else progress  # the partner class is the same, reversed
    else:
        pair, backwards = -1, False
    margin = r + 2
    lo, hi = margin, size - margin
    # a random straight drift (the appearance classes move too, with no class information in it)
    drift = rng.normal(0, 0.06 * size, 2)
    base = rng.uniform(lo + 0.15 * size, hi - 0.15 * size, 2)
    frames = []
    for i, p in enumerate(progress):
        jitter = rng.normal(0, 0.3, 2)
        cy, cx = base + drift * (i / max(num_frames - 1, 1) - 0.5) + jitter
        angle, scale, arm = 0.0, 1.0, None
        if pair == 0:  # horizontal sweep
            cx = lo + (hi - lo) * (0.1 + 0.8 * p)
        elif pair == 1:  # vertical sweep: "up" moves towards the top
            cy = hi - (hi - lo) * (0.1 + 0.8 * p)
        elif pair == 2:
            scale = 0.45 + 0.9 * p
        elif pair == 3:
            arm = np.deg2rad(-65 + 130 * p)
        elif pair == 4:  # clockwise on screen (y points down)
            angle = np.deg2rad(150 * p)
        if name.startswith("person") or pair == 3:
            mask = _person_mask(yy, xx, cy, cx, 3.2 * r, np.deg2rad(-65) if arm is None else arm)
        elif pair == 4:
            mask = _shape_mask("hand", yy, xx, cy, cx, r, angle)
        else:
            this_shape = name.split()[0] if pair < 0 else shape
            mask = _shape_mask(this_shape, yy, xx, cy, cx, r * scale)
        frame = bg * (1 - mask[..., None]) + colour[None, None] * mask[..., None]
        frame += rng.normal(0, 0.02, frame.shape).astype(np.float32)
        frames.append(frame)
    clip = np.clip(np.stack(frames) * 255 + 0.5, 0, 255).astype(np.uint8)
    return clip


def generate_video_dataset(
    samples_per_class: int = 40,
    seed: int = 0,
    num_frames: int = 16,
    size: int = 64,
    val_fraction: float = 0.25,
) -> SyntheticVideos:
    """The embedded dataset in memory: ``splits["train"]`` and ``splits["val"]`` of (clip, label)."""
    if samples_per_class < 2:
        raise ValueError("samples_per_class must be at least 2 (one train and one val clip)")
    if size < 32 or num_frames < 2:
        raise ValueError(f"clips must be at least 32 px and 2 frames, got {size} px, {num_frames} frames")
    n_val = max(1, int(round(samples_per_class * val_fraction)))
    data = SyntheticVideos(classes=list(CLASSES), splits={"train": [], "val": []})
    for label in range(len(CLASSES)):
        for i in range(samples_per_class):
            rng = np.random.default_rng([seed, label, i])
            split = "val" if i < n_val else "train"
            data.splits[split].append((render_clip(label, rng, num_frames, size), label))
    return data


def _write_mp4(path: Path, clip: np.ndarray, fps: int = 12) -> None:
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = clip.shape[2], clip.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12", "preset": "veryfast", "g": "8"}  # key frame every 8: seekable
        for rgb in clip:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_video_dataset(
    out: str | Path,
    samples_per_class: int = 40,
    seed: int = 0,
    num_frames: int = 16,
    size: int = 64,
    val_fraction: float = 0.25,
) -> dict[str, Path]:
    """Write the dataset as MP4 files plus ``train.txt``/``val.txt`` video lists and ``classes.txt``.

    Returns the paths of the lists. The lists hold paths relative to ``out`` (set ``data.root``).
    """
    out = Path(out)
    data = generate_video_dataset(samples_per_class, seed, num_frames, size, val_fraction)
    written = {}
    for split, samples in data.splits.items():
        folder = out / "videos" / split
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        counters: dict[int, int] = {}
        for clip, label in samples:
            k = counters[label] = counters.get(label, -1) + 1
            name = f"c{label:02d}_{k:03d}.mp4"
            _write_mp4(folder / name, clip)
            lines.append(f"videos/{split}/{name} {label}")
        written[split] = out / f"{split}.txt"
        written[split].write_text("\n".join(lines) + "\n")
    (out / "classes.txt").write_text("\n".join(data.classes) + "\n")
    written["classes"] = out / "classes.txt"
    return written
