"""How fast does ``convert_ntu`` turn raw NTU ``.skeleton`` files into the annotation pickle?

Writes N synthetic files of realistic size and content (by default 2 bodies x ~100 frames, NTU-25
standing poses that drift and sway by random walks, all 12 joint fields in the Kinect's text style)
into a temporary folder, converts them with 1 worker and with every available core, and prints
files/s and the projected time for NTU-60's 56,880 samples.

    PYTHONPATH=src python benchmarks/ntu_convert.py --files 400
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from lightact.data.skeleton.layouts import NTU25
from lightact.data.skeleton.ntu import convert_ntu

NTU60_SAMPLES = 56_880

# Rough standing pose in metres, relative to the spine base (x to the performer's left as seen by the
# camera, y up).
_POSE = {
    "spine_base": (0.0, 0.0), "spine_mid": (0.0, 0.30), "neck": (0.0, 0.58), "head": (0.0, 0.72),
    "shoulder_left": (-0.18, 0.50), "elbow_left": (-0.24, 0.25), "wrist_left": (-0.26, 0.02),
    "hand_left": (-0.26, -0.05), "shoulder_right": (0.18, 0.50), "elbow_right": (0.24, 0.25),
    "wrist_right": (0.26, 0.02), "hand_right": (0.26, -0.05), "hip_left": (-0.08, -0.02),
    "knee_left": (-0.09, -0.42), "ankle_left": (-0.09, -0.80), "foot_left": (-0.09, -0.86),
    "hip_right": (0.08, -0.02), "knee_right": (0.09, -0.42), "ankle_right": (0.09, -0.80),
    "foot_right": (0.09, -0.86), "spine_shoulder": (0.0, 0.50), "hand_tip_left": (-0.26, -0.12),
    "thumb_left": (-0.23, -0.06), "hand_tip_right": (0.26, -0.12), "thumb_right": (0.23, -0.06),
}  # fmt: skip
_JOINT_FMT = "%.7g %.7g %.7g %.4f %.4f %.2f %.2f %.4f %.4f %.4f %.4f %d"


def _body_rows(rng: np.random.Generator, n_frames: int, x0: float) -> np.ndarray:
    """All 12 fields of one body over ``n_frames`` frames: ``[T, 25, 12]``."""
    rest = np.array([(*_POSE[name], 0.0) for name in NTU25.joints])
    rest[:, 2] = rng.normal(0, 0.03, 25)
    root = np.array([x0, 0.1, 3.2]) + np.cumsum(rng.normal(0, 0.01, (n_frames, 3)), axis=0)
    sway = np.cumsum(rng.normal(0, 0.008, (n_frames, 25, 3)), axis=0)  # limbs wander
    xyz = rest[None] + root[:, None] + sway
    depth = np.stack([256 + 365 * xyz[..., 0] / xyz[..., 2], 212 - 365 * xyz[..., 1] / xyz[..., 2]], -1)
    color = np.stack([960 + 1060 * xyz[..., 0] / xyz[..., 2], 540 - 1060 * xyz[..., 1] / xyz[..., 2]], -1)
    quat = rng.normal(size=(n_frames, 25, 4))
    quat /= np.linalg.norm(quat, axis=-1, keepdims=True)
    state = np.where(rng.random((n_frames, 25, 1)) < 0.95, 2, 1)
    return np.concatenate([xyz, depth, color, quat, state], axis=-1)


def write_synthetic_file(path: Path, rng: np.random.Generator, n_frames: int, n_bodies: int) -> None:
    """One ``.skeleton`` file in the release's layout (CRLF lines)."""
    bodies = []
    for b in range(n_bodies):
        rows = _body_rows(rng, n_frames, x0=-0.5 + b)
        text = [_JOINT_FMT % tuple(row) for row in rows.reshape(-1, 12).tolist()]
        info = f"{72057594037927936 + int(rng.integers(1, 10_000))} 0 1 1 1 1 0 %.7g %.7g 2"
        bodies.append((info, text))
    lines = [str(n_frames)]
    for t in range(n_frames):
        lines.append(str(n_bodies))
        for info, text in bodies:
            lines.append(info % tuple(rng.normal(0, 0.1, 2)))
            lines.append("25")
            lines += text[t * 25 : (t + 1) * 25]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())


def make_dataset(folder: Path, n_files: int, frames: int, bodies: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    names = [
        f"S{s:03d}C{c:03d}P{p:03d}R{r:03d}A{a:03d}"
        for s, c, p, r, a in itertools.product(range(1, 18), (1, 2, 3), (1, 3, 8), (1, 2), range(1, 61))
    ]
    for i in rng.choice(len(names), size=n_files, replace=False):
        n_frames = int(rng.integers(int(frames * 0.8), int(frames * 1.2) + 1))
        write_synthetic_file(folder / f"{names[i]}.skeleton", rng, n_frames, bodies)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished child processes."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--frames", type=int, default=100, help="mean frames per file (+-20%%)")
    parser.add_argument("--bodies", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ntu_bench_") as tmp:
        raw = Path(tmp) / "raw"
        raw.mkdir()
        start = time.perf_counter()
        make_dataset(raw, args.files, args.frames, args.bodies)
        size = sum(p.stat().st_size for p in raw.iterdir())
        print(
            f"wrote {args.files} files ({args.bodies} bodies x ~{args.frames} frames, "
            f"{size / args.files / 1e3:.0f} kB each) in {time.perf_counter() - start:.1f} s"
        )
        cores = _cores()
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        rows = []
        for workers in dict.fromkeys((1, cores)):
            cpu_before = _cpu_seconds()
            out = Path(tmp) / f"out{workers}.pkl"
            stats = convert_ntu(raw, "ntu60", out, workers=workers, progress=False)
            cpu = _cpu_seconds() - cpu_before
            assert stats["converted"] == args.files, stats["errors"]
            rate = stats["converted"] / stats["seconds"]
            rows.append((workers, stats["seconds"], rate, stats["converted"] / cpu, NTU60_SAMPLES / rate))

    # files/cpu-s divides by the CPU time used (this process and its workers): unlike the wall-clock
    # rate it does not drop when other jobs share the cores.
    print(f"\n{'workers':>7}  {'seconds':>7}  {'files/s':>7}  {'files/cpu-s':>11}  {'56,880 files':>12}")
    for workers, seconds, rate, per_cpu, projected in rows:
        print(f"{workers:>7}  {seconds:>7.2f}  {rate:>7.0f}  {per_cpu:>11.0f}  {projected / 60:>8.1f} min")
    print(f"(cores available: {cores}; load average before converting: {load})")


if __name__ == "__main__":
    main()
