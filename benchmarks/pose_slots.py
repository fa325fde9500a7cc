"""Pose with the person slots in threads of their own, against the slots one after another.

MediaPipe's legacy Pose finds one person per image, so lightact runs one graph per person slot, each
on the frame with the people found before it painted over. The slots used to run one after another
on every frame; with ``overlap`` (the default for a video) each slot now runs in its own thread a
frame behind the slot before it, so a second core works on the second person while the first is
found in the next frame. Both variants here decode in a thread ahead of pose (what ``overlap`` did
before), at ``predict``'s defaults (10 poses per second, the second person searched every 5th posed
frame while none is tracked); rounds interleaved, medians. Each round's poses are compared: they
must be identical.

    python benchmarks/pose_slots.py [VIDEO ...] [--rounds 3] [--pose-fps 10] [--second-search-every 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from _common import format_table, machine_info

from lightact.data.skeleton.pose.extractor import PoseExtractor
from lightact.data.video.reader import iter_timed_frames, prefetch, video_info

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
VARIANTS = {"slots one after another": False, "slots in threads": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pose-fps", type=float, default=10.0, help="0: every frame")
    parser.add_argument("--second-search-every", type=int, default=5)
    args = parser.parse_args()
    videos = args.videos or sorted(SHARED_VIDEOS.glob("*.*"))
    if not videos:
        raise SystemExit(f"no videos given and none at {SHARED_VIDEOS}")
    print("machine:", machine_info(torch.device("cpu")))
    rows = []
    with PoseExtractor(max_persons=2, second_search_every=args.second_search_every) as extractor:
        for video in videos:
            info = video_info(video)
            load_before = os.getloadavg()[0]
            seconds: dict[str, list[float]] = {name: [] for name in VARIANTS}
            identical = True
            for round_ in range(args.rounds):  # interleaved, the starting variant alternating
                order = list(VARIANTS.items())[:: 1 if round_ % 2 == 0 else -1]
                poses = {}
                for name, parallel in order:
                    frames = prefetch(iter_timed_frames(video, max_side=640, fps=args.pose_fps or None))
                    start = time.perf_counter()
                    poses[name] = extractor.process_frames(
                        frames, (info.height, info.width), parallel_slots=parallel
                    )
                    seconds[name].append(time.perf_counter() - start)
                first, second = poses.values()
                identical &= all(
                    np.array_equal(getattr(first, k), getattr(second, k))
                    for k in ("keypoint", "keypoint_score", "keypoint_3d")
                )
            per_second = {name: statistics.median(s) / info.duration for name, s in seconds.items()}
            before, after = per_second.values()
            rows.append([
                video.name, f"{info.width}x{info.height}", f"{before:.3f}", f"{after:.3f}",
                f"{before / after:.2f}x", f"{first.second_person_share:.0%}", "yes" if identical else "NO",
                f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}",
            ])  # fmt: skip
    print(f"\ndecoding + pose, seconds per second of video (median of {args.rounds} interleaved rounds)")
    print(format_table(
        ["video", "size", "one after another", "in threads", "faster", "2nd person", "same poses",
         "load 1 min"],
        rows,
    ))  # fmt: skip


if __name__ == "__main__":
    main()
