"""Video in, action out: where the time goes, per second of input video, today's path against the new.

Two paths per clip, measured in interleaved rounds (A, B, A, B, ...), each from the file to the
windows' answers with the same skeleton model:

* ``full rate`` (today's settings): MediaPipe on every frame, the second person searched on every
  frame where a first was found, decoding and pose one after the other, every search on the frame as
  it is;
* ``full rate, bordered`` the same with the pose extractor's bordered searches (every other search
  sees the frame in a black border: ``search_padding``, the extractor's default now);
* ``new`` (lightact's defaults for a video): poses at ``--pose-fps`` (10), resampled to the model's
  rate, the second person searched every ``--second-search-every`` (5) posed frames while none is
  tracked, decoding in a thread ahead of pose.

Per clip and path: decoding alone (seconds per second of video), decoding + pose (wall), the model
(sliding windows), the total, the real-time multiple (video seconds per second of processing), the
process's CPU seconds per video second (both threads; what an idle machine's wall time would be at
best on one core), the speed-up over today's full rate, and how often the new path's windows agree
with each full-rate path's on the top-1 class (both on the model's frame grid; each full-rate window
against the new path's window starting nearest it).
The machine's load average is printed beside each clip: on a shared machine wall times are
pessimistic and the ratios measured in one run are what to compare.

    python benchmarks/end_to_end.py [VIDEO ...] [--checkpoint WORK_DIR] [--repeats 2] [--threads 1]

Without --checkpoint a randomly initialised STAR-64 is used (its cost does not depend on its
weights, but its answers are near-uniform, so the agreement figure needs a trained model).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _common import format_table, machine_info

from lightact.data.skeleton.layouts import NTU25
from lightact.data.skeleton.pose.extractor import DEFAULT_SEARCH_PADDING
from lightact.data.video import video_info
from lightact.data.video.reader import iter_timed_frames
from lightact.engine.checkpoint import save_weights
from lightact.inference import Recognizer
from lightact.inference.skeleton import DEFAULT_POSE_OPTIONS
from lightact.models import create_model

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
FULL_RATE = {"pose_fps": None, "second_search_every": 1, "overlap": False, "search_padding": 0.0}
FULL_RATE_BORDERED = {**FULL_RATE, "search_padding": DEFAULT_SEARCH_PADDING}


def random_checkpoint(folder: Path) -> Path:
    model = create_model("star_64", num_classes=60, layout=NTU25)
    meta = {
        "model": "star_64",
        "kwargs": {"num_classes": 60, "layout": NTU25.to_dict(), "in_channels": 9},
        "classes": [f"class_{i}" for i in range(60)],
        "input_format": "packed",
    }
    save_weights(model, folder / "model.safetensors", meta)
    return folder


def measure(video: Path, recognizer, options: dict, window: int, stride: int) -> dict:
    """One path on one clip: decode alone, decode + pose, model; and its windows' top-1."""
    start = time.perf_counter()
    for _ in iter_timed_frames(video, max_side=640, fps=options["pose_fps"]):
        pass
    decode = time.perf_counter() - start
    recognizer.pose_options = dict(options)
    cpu, start = time.process_time(), time.perf_counter()
    annotation = recognizer.video_annotation(video)
    pose = time.perf_counter() - start
    start = time.perf_counter()
    prediction = recognizer.predict({**annotation, "frame_dir": video.stem}, window=window, stride=stride)
    model = time.perf_counter() - start
    cpu = time.process_time() - cpu
    top1 = {w.start_frame: (w.topk[0].index if w.has_person else None) for w in prediction.windows}
    return {"decode": decode, "pose": pose, "model": model, "cpu": cpu, "top1": top1}


def agreement(
    reference: dict[int, int | None], other: dict[int, int | None], tolerance: int
) -> tuple[int, int]:
    """Windows of ``reference`` (the full-rate path) whose top-1 ``other`` shares, and windows compared.
    Each reference window is compared with ``other``'s window starting nearest it, within
    ``tolerance`` frames: the paths' pose tracks can end a few frames apart (at a low pose rate the
    last posed frame comes up to one pose interval before the end), which moves the window fitted to
    the end. No such window counts as disagreeing; windows nobody is seen in by either path are not
    compared."""
    same = compared = 0
    for start, top1 in reference.items():
        near = min(other, key=lambda s: abs(s - start), default=None)
        answer = other[near] if near is not None and abs(near - start) <= tolerance else None
        if top1 is None and answer is None:
            continue
        same += top1 == answer
        compared += 1
    return same, compared


def _share(same: int, compared: int) -> str:
    return f"{same}/{compared} ({same / max(compared, 1):.0%})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", type=Path)
    parser.add_argument("--checkpoint", type=Path, help="a trained work dir; default: random STAR-64")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--pose-fps", type=float, default=DEFAULT_POSE_OPTIONS["pose_fps"])
    parser.add_argument(
        "--second-search-every", type=int, default=DEFAULT_POSE_OPTIONS["second_search_every"]
    )
    parser.add_argument("--window", type=int, default=60, help="frames at the model's rate (default 60)")
    parser.add_argument("--stride", type=int, default=15)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    videos = args.videos or sorted(SHARED_VIDEOS.glob("*.*"))
    if not videos:
        raise SystemExit(f"no videos given and none at {SHARED_VIDEOS}")
    new = {
        "pose_fps": args.pose_fps or None,
        "second_search_every": args.second_search_every,
        "overlap": True,
    }
    paths = {"full rate": FULL_RATE, "full rate, bordered": FULL_RATE_BORDERED, "new": new}

    with tempfile.TemporaryDirectory() as tmp:
        recognizer = Recognizer.from_checkpoint(args.checkpoint or random_checkpoint(Path(tmp)))
        print("machine:", machine_info(torch.device("cpu")))
        print(f"new path: {new}; full rate: {FULL_RATE}; windows {args.window}/{args.stride} frames")
        print(f"full rate, bordered: {FULL_RATE_BORDERED}")
        rows, records = [], []
        for video in videos:
            info = video_info(video)
            load_before = os.getloadavg()
            runs: dict[str, list[dict]] = {name: [] for name in paths}
            for _ in range(args.repeats):  # interleaved, so load hits both paths alike
                for name, options in paths.items():
                    runs[name].append(measure(video, recognizer, options, args.window, args.stride))
            load_after = os.getloadavg()
            agreeing = {
                name: agreement(runs[name][0]["top1"], runs["new"][0]["top1"], args.stride // 2)
                for name in paths
                if name != "new"
            }
            per_second = {
                name: {
                    k: statistics.median(r[k] for r in rs) / info.duration
                    for k in ("decode", "pose", "model", "cpu")
                }
                for name, rs in runs.items()
            }
            totals = {name: ps["pose"] + ps["model"] for name, ps in per_second.items()}
            record = {
                "video": video.name,
                "size": f"{info.width}x{info.height}",
                "duration_s": info.duration,
                "load_1min_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
                "per_second_of_video": per_second,
                "total": totals,
                "x_real_time": {name: 1 / t for name, t in totals.items()},
                "speed_up": totals["full rate"] / totals["new"],
                "new_windows_agreeing_with": agreeing,
            }
            records.append(record)
            for name in paths:
                ps, first = per_second[name], name == "full rate"
                rows.append([
                    video.name if first else "", f"{info.width}x{info.height}" if first else "", name,
                    f"{ps['decode']:.3f}", f"{ps['pose']:.3f}", f"{ps['model']:.3f}",
                    f"{totals[name]:.3f}", f"{1 / totals[name]:.2f}x", f"{ps['cpu']:.3f}",
                    "" if first else f"{totals['full rate'] / totals[name]:.2f}x",
                    _share(*agreeing[name]) if name in agreeing else "",
                    f"{load_before[0]:.1f} -> {load_after[0]:.1f}" if first else "",
                ])  # fmt: skip
    print(f"\nseconds of processing per second of video (median of {args.repeats} interleaved rounds)")
    print(format_table(
        ["video", "size", "path", "decode", "decode+pose", "model", "total", "real time", "CPU s/s",
         "speed-up", "new agrees", "load 1 min"],
        rows,
    ))  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(records, indent=2))


if __name__ == "__main__":
    main()
