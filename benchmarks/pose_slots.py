"""Pose with the person slots in threads of their own, against the slots one after another.

MediaPipe's legacy Pose finds one person per image, so lightact runs one graph per person slot, each
on the frame with the people found before it painted over. The slots used to run one after another
on every frame; with ``overlap`` (the default for a video) each slot now runs in its own thread a
frame behind the slot before it, so a second core works on the second person while the first is
found in the next frame. Both variants here decode in a thread ahead of pose (what ``overlap`` did
before), at ``predict``'s defaults (10 poses per second, the second person searched every 5th posed
frame while none is tracked); rounds interleaved, medians. Each round's poses are compared: they
must be identical.

``--compare threads`` instead measures each slot's graph running its models on its share of the
cores (``PoseExtractor(inference_threads=graph_threads(max_persons))``, what a video's pose does
now) against one thread per graph (MediaPipe's own setting), both with the slots in threads; use it
with ``--max-persons 1`` (one slot: 2 threads on 2 cores) and 2 (the same 1 thread on 2 cores).

``--compare padding`` measures the bordered searches (a slot tracking nobody searches alternately in
the frame and in the frame inside a black border, ``PoseExtractor(search_padding=0.5)``, the
default) against plain searches only (``search_padding=0``), both as a video's pose runs now. Their
poses differ by design; the table gives the share of posed frames with somebody and with a second
person for each.

    python benchmarks/pose_slots.py [VIDEO ...] [--compare slots|threads|padding] [--max-persons 2]
        [--rounds 3] [--pose-fps 10] [--second-search-every 5]
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

from lightact.data.skeleton.pose.extractor import DEFAULT_SEARCH_PADDING, PoseExtractor, graph_threads
from lightact.data.video.reader import iter_timed_frames, prefetch, video_info

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


def variants(compare: str, max_persons: int) -> dict[str, tuple[int, bool, float]]:
    """Name -> (inference threads per graph, slots in threads, search padding), the baseline first."""
    border = DEFAULT_SEARCH_PADDING
    if compare == "slots":
        return {"slots one after another": (1, False, border), "slots in threads": (1, True, border)}
    threads = graph_threads(max_persons)
    if compare == "padding":
        return {"plain searches": (threads, True, 0.0), "bordered searches": (threads, True, border)}
    return {"1 thread per graph": (1, True, border), f"{threads} per graph": (threads, True, border)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pose-fps", type=float, default=10.0, help="0: every frame")
    parser.add_argument("--second-search-every", type=int, default=5)
    parser.add_argument("--compare", choices=("slots", "threads", "padding"), default="slots")
    parser.add_argument("--max-persons", type=int, default=2)
    args = parser.parse_args()
    compared = variants(args.compare, args.max_persons)
    videos = args.videos or sorted(SHARED_VIDEOS.glob("*.*"))
    if not videos:
        raise SystemExit(f"no videos given and none at {SHARED_VIDEOS}")
    print("machine:", machine_info(torch.device("cpu")))
    rows = []
    extractors = {
        name: PoseExtractor(
            args.max_persons,
            second_search_every=args.second_search_every,
            inference_threads=threads,
            search_padding=padding,
        )
        for name, (threads, _, padding) in compared.items()
    }
    try:
        for video in videos:
            info = video_info(video)
            load_before = os.getloadavg()[0]
            seconds: dict[str, list[float]] = {name: [] for name in compared}
            identical = True
            for round_ in range(args.rounds):  # interleaved, the starting variant alternating
                order = list(compared.items())[:: 1 if round_ % 2 == 0 else -1]
                poses = {}
                for name, (_, parallel, _) in order:
                    frames = prefetch(iter_timed_frames(video, max_side=640, fps=args.pose_fps or None))
                    start = time.perf_counter()
                    poses[name] = extractors[name].process_frames(
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
                f"{before / after:.2f}x", f"{first.person_share:.0%} / {second.person_share:.0%}",
                f"{first.second_person_share:.0%} / {second.second_person_share:.0%}",
                "yes" if identical else "no",
                f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}",
            ])  # fmt: skip
    finally:
        for extractor in extractors.values():
            extractor.close()
    print(
        f"\ndecoding + pose, max {args.max_persons} persons, seconds per second of video (median of "
        f"{args.rounds} interleaved rounds)"
    )
    print(format_table(
        ["video", "size", *compared, "faster", "somebody", "2nd person", "same poses", "load 1 min"],
        rows,
    ))  # fmt: skip


if __name__ == "__main__":
    main()
