"""The embedded long-video dataset: two-minute, low-resolution videos written as real files.

Every video is 64x64 pixels at 4 fps (480 frames for 120 s); 80 per class by default. Its class
depends on two things at once:

* **static appearance**: the scene's texture, fine vertical or fine horizontal stripes (1 pixel
  wide) over a random mean colour. One sharp frame shows it; a clip encoder that looks at
  downscaled frames (the default pair runs the clip encoder at 32x32) cannot, since 1-pixel stripes
  average to a flat colour at half resolution.
* **long-range order**: two *events* happen, at least 30 s apart: a bright square sweeping across
  the picture left-to-right twice (event "L", 8 s) or right-to-left twice ("R"). Every video has
  one of each; the class says which came first. A single frame cannot tell the two events apart
  (the square looks the same and visits the same places), so the direction needs motion, and the
  order needs relating two moments more than 30 s apart; averaging over time loses it.

Classes (4): ``stripes_v/L_first``, ``stripes_v/R_first``, ``stripes_h/L_first``,
``stripes_h/R_first``. Nuisances: a random mean colour and slow brightness drift, one or two
distractor events (a disc moving up or down, unrelated to the class) and a fixed blotchy texture. Everything
is deterministic in the seed: video ``i`` is rendered from ``numpy.random.default_rng([seed, i])``,
so a video does not depend on how many others are generated.

Files: ``OUT/videos/synthlong_00000.mp4`` (H.264), ``OUT/train.csv`` and ``OUT/val.csv`` in the LVU
style (``video_path,label``, paths relative to the CSV), ``OUT/classes.txt`` (one name a line).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["LONGVIDEO_CLASSES", "SynthLongVideoSpec", "generate_longvideo_dataset", "render_video"]

LONGVIDEO_CLASSES = ("stripes_v/L_first", "stripes_v/R_first", "stripes_h/L_first", "stripes_h/R_first")
MIN_GAP_S = 30.0  # at least this long between the end of the first label event and the second's start
SWEEPS_PER_EVENT = 2


@dataclass(frozen=True)
class SynthLongVideoSpec:
    videos_per_class: int = 80
    duration_s: float = 120.0
    fps: int = 4
    size: int = 64
    event_s: float = 4.0  # how long one sweep lasts
    val_fraction: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        if self.duration_s < 2 * SWEEPS_PER_EVENT * self.event_s + MIN_GAP_S + 2:
            raise ValueError(f"duration_s {self.duration_s} is too short for two events {MIN_GAP_S} s apart")
        if self.size < 16 or self.size % 2:
            raise ValueError(f"size must be even and at least 16, got {self.size}")
        if self.videos_per_class < 2:
            raise ValueError("videos_per_class must be at least 2 (one for training, one for validation)")


def _event_plan(rng: np.random.Generator, spec: SynthLongVideoSpec, l_first: bool) -> list[tuple]:
    """``(kind, start_s, parameter)`` of every sweep: the two label events ("L"/"R"), each a burst
    of ``SWEEPS_PER_EVENT`` sweeps in one direction, and 1-2 distractor discs ("U"/"D")."""
    burst = SWEEPS_PER_EVENT * spec.event_s
    latest = spec.duration_s - burst - 1.0
    first = rng.uniform(1.0, latest - MIN_GAP_S - burst)
    second = rng.uniform(first + burst + MIN_GAP_S, latest)
    kinds = ("L", "R") if l_first else ("R", "L")
    events = [
        (kind, start + k * spec.event_s, rng.uniform(0.1, 0.9))
        for kind, start in zip(kinds, (first, second), strict=True)
        for k in range(SWEEPS_PER_EVENT)
    ]
    for _ in range(int(rng.integers(1, 3))):
        latest_disc = spec.duration_s - spec.event_s - 1.0
        events.append((str(rng.choice(["U", "D"])), rng.uniform(0.0, latest_disc), rng.uniform(0.2, 0.8)))
    return events


def render_video(index: int, label: int, spec: SynthLongVideoSpec):
    """Yield the frames (uint8 ``[size, size, 3]``) of video ``index`` of class ``label``, one at a time."""
    rng = np.random.default_rng([spec.seed, index])
    size, fps = spec.size, spec.fps
    vertical = label < 2
    events = _event_plan(rng, spec, l_first=label % 2 == 0)
    base = rng.uniform(70, 170, size=3)
    contrast = rng.uniform(30, 45)
    drift_period = rng.uniform(20, 60)
    yy, xx = np.mgrid[0:size, 0:size]
    stripes = ((xx if vertical else yy) % 2) * 2.0 - 1.0  # +-1, one-pixel stripes
    # A fixed blotchy texture in 8x8-pixel blocks: every video's background looks a little different.
    blotches = np.repeat(np.repeat(rng.normal(0, 8, size=(size // 8 + 1, size // 8 + 1, 3)), 8, 0), 8, 1)
    background = base[None, None] + contrast * stripes[..., None] + blotches[:size, :size]
    square = max(4, size // 5)
    disc_r = max(3, size // 10)
    for f in range(int(round(spec.duration_s * fps))):
        t = f / fps
        frame = background * (1 + 0.08 * np.sin(2 * np.pi * t / drift_period))
        for kind, start, where in events:
            progress = (t - start) / spec.event_s
            if not 0.0 <= progress <= 1.0:
                continue
            travel = -square + progress * (size + square)  # enters and leaves the picture entirely
            if kind in ("L", "R"):
                x0 = travel if kind == "L" else size - square - travel
                y0 = where * (size - square)
                x_lo, x_hi = int(round(max(0, x0))), int(round(min(size, x0 + square)))
                y_lo = int(round(y0))
                if x_hi > x_lo:
                    frame[y_lo : y_lo + square, x_lo:x_hi] = (250, 250, 60)
            else:
                cy = size - travel if kind == "U" else travel
                cx = where * size
                inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= disc_r**2
                frame[inside] = (40, 220, 240)
        yield np.clip(frame, 0, 255).astype(np.uint8)


def _write_video(path: Path, frames, fps: int, size: int) -> None:
    import av

    from lightact.utils import atomic_write

    def write(tmp: str) -> None:
        with av.open(tmp, mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width = stream.height = size
            stream.pix_fmt = "yuv444p"  # no chroma subsampling: the 1-pixel texture must survive
            # Near-lossless and single-threaded: the file is the same bytes on every machine.
            stream.options = {"crf": "8", "preset": "veryfast", "threads": "1"}
            for rgb in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)

    atomic_write(path, write)


def generate_longvideo_dataset(
    out: str | Path, spec: SynthLongVideoSpec | None = None, progress: bool = False
) -> dict:
    """Write the dataset under ``out`` (videos, train/val CSVs, classes.txt); returns a summary.

    Videos already present are kept (the generator is deterministic, so they are the same), which
    makes an interrupted generation resumable.
    """
    spec = spec or SynthLongVideoSpec()
    out = Path(out)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[tuple[str, int]]] = {"train": [], "val": []}
    total = spec.videos_per_class * len(LONGVIDEO_CLASSES)
    num_val = max(1, int(round(spec.videos_per_class * spec.val_fraction)))
    written = 0
    iterator = range(total)
    if progress:
        from rich.progress import track

        iterator = track(iterator, description="rendering long videos", total=total)
    for index in iterator:
        label = index % len(LONGVIDEO_CLASSES)
        name = f"videos/synthlong_{index:05d}.mp4"
        path = out / name
        if not path.is_file():
            _write_video(path, render_video(index, label, spec), spec.fps, spec.size)
            written += 1
        split = "val" if index // len(LONGVIDEO_CLASSES) < num_val else "train"
        rows[split].append((name, label))
    for split, items in rows.items():
        with open(out / f"{split}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["video_path", "label"])
            writer.writerows(items)
    (out / "classes.txt").write_text("\n".join(LONGVIDEO_CLASSES) + "\n")
    return {
        "root": str(out),
        "videos": total,
        "written": written,
        "train": len(rows["train"]),
        "val": len(rows["val"]),
        "classes": list(LONGVIDEO_CLASSES),
        "duration_s": spec.duration_s,
        "fps": spec.fps,
        "size": spec.size,
    }
