"""Procedural still-image actions: stick-figure people with props on cluttered backgrounds.

Each image is drawn from a pose (absolute angles of torso, upper arms, forearms, thighs and
shins) through a small 2D forward-kinematics model, so limbs stay rigid and the class is carried
by the *pose* and by a *prop held in the right place*, not by colour or position:

- person and prop colours are drawn from one palette (deep shades), backgrounds and clutter from
  the same palette (muted, light shades): random two-colour gradients with rectangles, blobs and
  thin limb-like lines;
- pairs of classes share a pose and differ by the prop (``waving`` / ``holding_umbrella``,
  ``phoning`` / ``drinking``, ``sitting`` / ``riding_bike``), or share the prop and differ by the
  pose (``pointing`` / ``shooting_arrow`` have the same outstretched arm);
- a fifth of the images carry a distractor prop of another class somewhere in the background, so
  "there is a ball in the picture" is not enough: the ball must be at a raised foot;
- figures are mirrored at random (left and right arms swap), so horizontal flipping is a valid
  augmentation.

Every image is seeded by ``(seed, class, index)``: a sample does not change when more samples are
asked for, and two calls with the same arguments give the same bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "IMAGE_CLASSES",
    "SynthImageSet",
    "generate_image_dataset",
    "render_action_image",
    "write_image_folder",
]

IMAGE_CLASSES: tuple[str, ...] = (
    "applauding",
    "waving",
    "cheering",
    "running",
    "sitting",
    "kicking_ball",
    "phoning",
    "drinking",
    "holding_umbrella",
    "reading",
    "riding_bike",
    "fishing",
    "pointing",
    "shooting_arrow",
)

# Segment lengths in units of the figure's height (head top to feet of a standing person).
_TORSO, _NECK, _HEAD_R = 0.32, 0.07, 0.075
_UPPER_ARM, _FOREARM, _THIGH, _SHIN = 0.16, 0.15, 0.23, 0.23
_SHOULDER_W, _HIP_W = 0.09, 0.05

# Angles in degrees, measured from "straight down" towards image-right: 0 = down, 90 = right,
# 180 = up, -90 = left. Keys: torso (hip -> neck), and per side ("r" = image right, "l" = image
# left) the upper arm, forearm, thigh and shin. Every image jitters each angle.
_STAND = {"torso": 180, "ua_r": 12, "fa_r": 8, "ua_l": -12, "fa_l": -8, "th_r": 6, "sh_r": 3, "th_l": -6,
          "sh_l": -3}  # fmt: skip
_POSES: dict[str, dict[str, float]] = {
    # Hands meet in front of the chest.
    "applauding": {**_STAND, "ua_r": 25, "fa_r": -140, "ua_l": -25, "fa_l": 140},
    # One forearm up beside the head: the same arm carries the umbrella.
    "waving": {**_STAND, "ua_r": 110, "fa_r": 170},
    "cheering": {**_STAND, "ua_r": 145, "fa_r": 160, "ua_l": -145, "fa_l": -160, "th_r": 18, "th_l": -18},
    # Side view, mid-stride, leaning forward.
    "running": {
        "torso": 160,
        "ua_r": -40,
        "fa_r": 40,
        "ua_l": 45,
        "fa_l": 120,
        "th_r": 45,
        "sh_r": -5,
        "th_l": -30,
        "sh_l": -85,
    },  # fmt: skip
    # Thighs level, shins down: the chair or the bike is what tells the two apart.
    "sitting": {
        "torso": 180,
        "ua_r": 20,
        "fa_r": 70,
        "ua_l": 10,
        "fa_l": 60,
        "th_r": 90,
        "sh_r": 5,
        "th_l": 80,
        "sh_l": 0,
    },  # fmt: skip
    "kicking_ball": {**_STAND, "ua_r": -30, "ua_l": -40, "fa_l": -60, "th_r": 75, "sh_r": 85},
    # A hand at the head: at the ear with a phone, at the mouth with a cup.
    "phoning": {**_STAND, "ua_r": 25, "fa_r": -165},
    "drinking": {**_STAND, "ua_r": 30, "fa_r": -150},
    "holding_umbrella": {**_STAND, "ua_r": 110, "fa_r": 170},
    # Forearms level in front of the body, hands close: an open book between them.
    "reading": {**_STAND, "ua_r": 15, "fa_r": -100, "ua_l": -15, "fa_l": 100},
    "riding_bike": {
        "torso": 165,
        "ua_r": 70,
        "fa_r": 80,
        "ua_l": 60,
        "fa_l": 75,
        "th_r": 80,
        "sh_r": -10,
        "th_l": 60,
        "sh_l": -30,
    },  # fmt: skip
    # Both hands forward holding a long rod up and away.
    "fishing": {**_STAND, "ua_r": 60, "fa_r": 95, "ua_l": 40, "fa_l": 85},
    # The same outstretched arm; the archer's other hand pulls back at the chest and holds a bow.
    "pointing": {**_STAND, "ua_r": 90, "fa_r": 90},
    "shooting_arrow": {**_STAND, "ua_r": 90, "fa_r": 90, "ua_l": 60, "fa_l": 100, "th_r": 20, "th_l": -20},
}

_PALETTE = np.array(
    [
        [230, 57, 70], [241, 250, 238], [168, 218, 220], [69, 123, 157], [29, 53, 87], [255, 183, 3],
        [251, 133, 0], [33, 158, 188], [2, 48, 71], [142, 202, 230], [96, 108, 56], [40, 54, 24],
        [221, 161, 94], [188, 108, 37], [254, 250, 224], [106, 76, 147], [25, 130, 196], [138, 201, 38],
        [255, 202, 58], [255, 89, 94], [20, 20, 20], [200, 200, 200], [120, 120, 120], [90, 60, 40],
    ],
    dtype=np.float32,
)  # fmt: skip


@dataclass
class SynthImageSet:
    """The embedded image dataset, in memory: ``images`` uint8 ``[N, H, W, 3]``, ``labels`` ``[N]``,
    ``splits`` ("train" or "test") and ``keys`` (a stable name per image)."""

    images: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    keys: list[str]
    classes: list[str]

    def select(self, split: str) -> np.ndarray:
        """Indices of the images in ``split``."""
        return np.flatnonzero(self.splits == split)


class _Canvas:
    """Float RGB canvas with anti-aliased primitives drawn from distance fields."""

    def __init__(self, size: int, background: np.ndarray) -> None:
        self.size = size
        self.pixels = background.astype(np.float32)
        centres = np.arange(size, dtype=np.float32) + 0.5
        self.yy, self.xx = np.meshgrid(centres, centres, indexing="ij")

    def _blend(self, alpha: np.ndarray, colour: np.ndarray) -> None:
        alpha = np.clip(alpha, 0.0, 1.0)[..., None]
        self.pixels = self.pixels * (1 - alpha) + colour * alpha

    def segment(self, p0, p1, width: float, colour: np.ndarray) -> None:
        (x0, y0), (x1, y1) = p0, p1
        dx, dy = x1 - x0, y1 - y0
        length2 = dx * dx + dy * dy
        t = np.clip(((self.xx - x0) * dx + (self.yy - y0) * dy) / max(length2, 1e-6), 0, 1)
        dist = np.hypot(self.xx - (x0 + t * dx), self.yy - (y0 + t * dy))
        self._blend(width / 2 + 0.5 - dist, colour)

    def disk(self, centre, radius: float, colour: np.ndarray) -> None:
        dist = np.hypot(self.xx - centre[0], self.yy - centre[1])
        self._blend(radius + 0.5 - dist, colour)

    def ring(
        self, centre, radius: float, width: float, colour: np.ndarray, half: float | None = None
    ) -> None:
        """A circle outline; ``half`` (degrees) keeps only the half facing that direction."""
        dist = np.abs(np.hypot(self.xx - centre[0], self.yy - centre[1]) - radius)
        alpha = width / 2 + 0.5 - dist
        if half is not None:
            alpha = np.minimum(alpha, self._side(centre, half))
        self._blend(alpha, colour)

    def half_disk(self, centre, radius: float, facing: float, colour: np.ndarray) -> None:
        dist = np.hypot(self.xx - centre[0], self.yy - centre[1])
        self._blend(np.minimum(radius + 0.5 - dist, self._side(centre, facing)), colour)

    def rect(self, x0: float, y0: float, x1: float, y1: float, colour: np.ndarray) -> None:
        inside = np.minimum(np.minimum(self.xx - x0, x1 - self.xx), np.minimum(self.yy - y0, y1 - self.yy))
        self._blend(inside + 0.5, colour)

    def _side(self, centre, facing: float) -> np.ndarray:
        a = math.radians(facing)
        return (self.xx - centre[0]) * math.sin(a) + (self.yy - centre[1]) * math.cos(a) + 0.5

    def to_uint8(self) -> np.ndarray:
        return np.clip(np.round(self.pixels), 0, 255).astype(np.uint8)


def _direction(angle: float) -> np.ndarray:
    a = math.radians(angle)
    return np.array([math.sin(a), math.cos(a)])


def _pick_colours(rng: np.random.Generator, count: int, scene: bool = True) -> np.ndarray:
    """Palette colours with a little noise: muted and light for the scene (background, clutter),
    deep for people and props, so a figure stands out whatever the two colour draws are."""
    base = _PALETTE[rng.choice(len(_PALETTE), size=count, replace=False)]
    base = 0.45 * base + 0.55 * 190.0 if scene else 0.65 * base
    return base + rng.normal(0, 10, (count, 3))


def _background(canvas_size: int, rng: np.random.Generator, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
    angle = rng.uniform(0, 2 * math.pi)
    coords = np.arange(canvas_size) / max(canvas_size - 1, 1)
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    t = np.clip(0.5 + (xx - 0.5) * math.cos(angle) + (yy - 0.5) * math.sin(angle), 0, 1)[..., None]
    return c0 * (1 - t) + c1 * t


def _clutter(canvas: _Canvas, rng: np.random.Generator) -> None:
    s = canvas.size
    for _ in range(rng.integers(0, 3)):
        x0, y0 = rng.uniform(-0.2, 0.9, 2) * s
        w, h = rng.uniform(0.1, 0.5, 2) * s
        canvas.rect(x0, y0, x0 + w, y0 + h, _pick_colours(rng, 1)[0])
    for _ in range(rng.integers(0, 2)):
        canvas.disk(rng.uniform(0, 1, 2) * s, rng.uniform(0.03, 0.12) * s, _pick_colours(rng, 1)[0])
    # Thin straight lines, sometimes as thick as a limb, so "a line" does not mean "a person".
    for _ in range(rng.integers(0, 3)):
        p0, p1 = rng.uniform(0, 1, (2, 2)) * s
        canvas.segment(p0, p1, rng.uniform(0.6, 1.6) * s / 64, _pick_colours(rng, 1)[0])


def _skeleton(pose: dict[str, float], rng: np.random.Generator, jitter: float) -> dict[str, np.ndarray]:
    """Joint positions (figure-height units, hip centre at the origin, y down)."""
    a = {k: v + rng.normal(0, jitter) for k, v in pose.items()}
    hip = np.zeros(2)
    neck = hip + _TORSO * _direction(a["torso"])
    across = np.array([math.cos(math.radians(a["torso"] - 180)), -math.sin(math.radians(a["torso"] - 180))])
    joints = {"hip": hip, "neck": neck, "head": neck + (_NECK + _HEAD_R) * _direction(a["torso"])}
    for side, sign in (("r", 1.0), ("l", -1.0)):
        shoulder = neck + sign * _SHOULDER_W * across
        elbow = shoulder + _UPPER_ARM * _direction(a[f"ua_{side}"])
        hip_side = hip + sign * _HIP_W * across
        knee = hip_side + _THIGH * _direction(a[f"th_{side}"])
        joints |= {
            f"shoulder_{side}": shoulder,
            f"elbow_{side}": elbow,
            f"hand_{side}": elbow + _FOREARM * _direction(a[f"fa_{side}"]),
            f"hip_{side}": hip_side,
            f"knee_{side}": knee,
            f"foot_{side}": knee + _SHIN * _direction(a[f"sh_{side}"]),
        }
    return joints


def _draw_prop(canvas: _Canvas, name: str, j: dict[str, np.ndarray], unit: float, colour, sx: float) -> None:
    """The prop of class ``name``, placed relative to joints ``j`` (already in pixels); ``sx`` is -1
    for a mirrored figure, so offsets towards the acting side follow the mirror."""
    hand_r, hand_l = j["hand_r"], j["hand_l"]
    unit_x = np.array([sx, 1.0]) * unit  # pixel offsets per figure-height unit, mirrored in x
    thin = max(0.8, unit * 0.025)
    if name == "kicking_ball":
        foot = j["foot_r"]
        canvas.disk(foot + np.array([0.06, 0.0]) * unit_x, unit * 0.065, colour)
    elif name == "phoning":
        head = j["head"]
        centre = hand_r + (head - hand_r) * 0.25
        canvas.segment(centre - [0, unit * 0.035], centre + [0, unit * 0.035], unit * 0.04, colour)
    elif name == "drinking":
        x0, x1 = sorted((hand_r[0], hand_r[0] - sx * unit * 0.05))
        canvas.rect(x0, hand_r[1] - unit * 0.06, x1, hand_r[1] + unit * 0.03, colour)
    elif name == "holding_umbrella":
        top = hand_r + np.array([0.0, -0.22]) * unit
        canvas.segment(hand_r + [0, unit * 0.04], top, thin * 1.3, colour)
        canvas.half_disk(top, unit * 0.2, 180, colour)
    elif name == "reading":
        centre = (hand_r + hand_l) / 2 + np.array([0.0, -0.03]) * unit
        w, h = 0.16 * unit, 0.11 * unit
        canvas.rect(centre[0] - w / 2, centre[1] - h / 2, centre[0] + w / 2, centre[1] + h / 2, colour)
        canvas.segment(centre - [0, h / 2], centre + [0, h / 2], thin, colour * 0.5)
    elif name in ("riding_bike", "sitting"):
        foot = (j["foot_r"] + j["foot_l"]) / 2
        if name == "riding_bike":
            radius = 0.14 * unit
            back = j["hip"] + np.array([-0.12, 0.2]) * unit_x
            front = back + np.array([0.42, 0.0]) * unit_x
            for wheel in (back, front):
                canvas.ring(wheel, radius, thin * 1.4, colour)
            canvas.segment(back, j["hip"] + [0, unit * 0.02], thin * 1.4, colour)
            canvas.segment(j["hip"] + [0, unit * 0.02], front, thin * 1.4, colour)
            canvas.segment(front, (hand_r + hand_l) / 2, thin * 1.4, colour)
        else:
            seat_y = j["hip"][1] + unit * 0.03
            x0 = j["hip"][0] - sx * unit * 0.12  # the chair back is behind the person
            x1 = x0 + sx * unit * 0.22
            canvas.segment([x0, seat_y], [x1, seat_y], thin * 2, colour)
            canvas.segment([x0, seat_y], [x0, seat_y - unit * 0.3], thin * 2, colour)
            for x in (x0, x1):
                canvas.segment([x, seat_y], [x, foot[1]], thin * 1.5, colour)
    elif name == "fishing":
        tip = hand_r + np.array([0.55, -0.45]) * unit_x
        canvas.segment(hand_l, tip, thin * 1.2, colour)
        canvas.segment(tip, tip + np.array([0.0, 0.55]) * unit, max(0.6, thin * 0.6), colour * 0.6)
    elif name == "shooting_arrow":
        canvas.ring(hand_r, 0.2 * unit, thin * 1.4, colour, half=90 * sx)
        canvas.segment(
            hand_r + [0, -0.2 * unit], hand_r + [0, 0.2 * unit], max(0.6, thin * 0.6), colour * 0.7
        )
        canvas.segment(hand_l, hand_r + [0.04 * unit * sx, 0], max(0.6, thin * 0.7), colour * 0.8)


_PROP_CLASSES = ("kicking_ball", "phoning", "drinking", "holding_umbrella", "reading", "riding_bike",
                 "fishing", "shooting_arrow", "sitting")  # fmt: skip


def render_action_image(label: int, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """One ``size x size`` RGB uint8 image of class ``IMAGE_CLASSES[label]``."""
    name = IMAGE_CLASSES[label]
    c0, c1 = _pick_colours(rng, 2)
    canvas = _Canvas(size, _background(size, rng, c0, c1))
    _clutter(canvas, rng)

    joints = _skeleton(_POSES[name], rng, jitter=5.0)
    mirror = rng.random() < 0.5
    height = rng.uniform(0.7, 0.95) * size
    points = np.stack(list(joints.values()))
    if mirror:
        points[:, 0] *= -1
    # Fit the figure (with room for props) inside the frame, at a random place.
    lo, hi = points.min(0), points.max(0)
    centre = (lo + hi) / 2
    span = (hi - lo) * height + 0.15 * height
    free = np.maximum(size - span, 0)
    offset = rng.uniform(0, 1, 2) * free + span / 2 - centre * height
    offset = np.where(free > 0, offset, size / 2 - centre * height)
    # "_r" stays the acting arm after mirroring; props follow it through ``sx``.
    pixels = dict(zip(joints, points * height + offset, strict=True))
    sx = -1.0 if mirror else 1.0

    if rng.random() < 0.2:  # a prop of another class, away from the person's hands
        other = rng.choice([c for c in _PROP_CLASSES if c != name])
        anchor = rng.uniform(0.1, 0.9, 2) * size
        fake = {k: anchor + (v - pixels["hip"]) * 0.5 for k, v in pixels.items()}
        _draw_prop(canvas, str(other), fake, height * 0.5, _pick_colours(rng, 1, scene=False)[0], sx)

    skin, shirt, trousers, prop = _pick_colours(rng, 4, scene=False)
    width = max(1.2, height * rng.uniform(0.06, 0.085))
    p = pixels
    if name in ("sitting", "riding_bike"):
        _draw_prop(canvas, name, p, height, prop, sx)  # behind the person
    for side in ("r", "l"):
        canvas.segment(p[f"hip_{side}"], p[f"knee_{side}"], width, trousers)
        canvas.segment(p[f"knee_{side}"], p[f"foot_{side}"], width * 0.9, trousers)
    canvas.segment(p["hip_r"], p["hip_l"], width, trousers)
    canvas.segment(p["hip"], p["neck"], width * 1.6, shirt)
    canvas.segment(p["shoulder_r"], p["shoulder_l"], width, shirt)
    for side in ("r", "l"):
        canvas.segment(p[f"shoulder_{side}"], p[f"elbow_{side}"], width * 0.9, shirt)
        canvas.segment(p[f"elbow_{side}"], p[f"hand_{side}"], width * 0.8, skin)
    canvas.disk(p["head"], _HEAD_R * height, skin)
    if name not in ("sitting", "riding_bike"):
        _draw_prop(canvas, name, p, height, prop, sx)

    pixels_out = canvas.pixels + rng.normal(0, rng.uniform(1, 5), canvas.pixels.shape)
    canvas.pixels = pixels_out
    return canvas.to_uint8()


def generate_image_dataset(
    samples_per_class: int = 150, seed: int = 0, size: int = 64, test_fraction: float = 0.3
) -> SynthImageSet:
    """The embedded still-image action dataset: ``len(IMAGE_CLASSES)`` classes, ``samples_per_class``
    images each, the first ``round(test_fraction * samples_per_class)`` of every class in "test"."""
    if samples_per_class < 2:
        raise ValueError("samples_per_class must be at least 2 (one train and one test image)")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if size < 16:
        raise ValueError(f"image size {size} is too small to draw a person (minimum 16)")
    num_test = min(samples_per_class - 1, max(1, round(test_fraction * samples_per_class)))
    images, labels, splits, keys = [], [], [], []
    for label, name in enumerate(IMAGE_CLASSES):
        for i in range(samples_per_class):
            rng = np.random.default_rng([seed, label, i])
            images.append(render_action_image(label, rng, size))
            labels.append(label)
            splits.append("test" if i < num_test else "train")
            keys.append(f"{name}_{i:04d}")
    return SynthImageSet(
        images=np.stack(images),
        labels=np.array(labels, dtype=np.int64),
        splits=np.array(splits),
        keys=keys,
        classes=list(IMAGE_CLASSES),
    )


def write_image_folder(data: SynthImageSet, out_dir: str | Path) -> dict[str, int]:
    """Write ``out_dir/<split>/<class>/<key>.png`` (the class-per-folder layout); returns counts."""
    from PIL import Image

    out_dir = Path(out_dir)
    counts: dict[str, int] = {}
    for image, label, split, key in zip(data.images, data.labels, data.splits, data.keys, strict=True):
        folder = out_dir / str(split) / data.classes[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{key}.png")
        counts[str(split)] = counts.get(str(split), 0) + 1
    return counts
