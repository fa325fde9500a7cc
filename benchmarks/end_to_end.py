"""Video in, action out: where the time goes, per second of input video.

For each clip: decoding (PyAV, streamed, downscaled), pose (MediaPipe, up to 2 people), the skeleton
model (sliding windows), and the end-to-end real-time factor (processing seconds per second of video;
below 1 is faster than real time). The baseline, measured in the same run, is the same path without
the downscale: MediaPipe on full-resolution frames.

    python benchmarks/end_to_end.py [VIDEO ...] [--checkpoint WORK_DIR] [--repeats 2]

Without --checkpoint a randomly initialised STAR-64 is used: the model's cost does not depend on its
weights.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _common import format_table, machine_info

from lightact.data.skeleton.layouts import NTU25
from lightact.data.skeleton.pose import PoseExtractor
from lightact.data.video import iter_frames, video_info
from lightact.engine.checkpoint import save_weights
from lightact.inference import Recognizer
from lightact.models import create_model

SHARED_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


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


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def measure(video: Path, recognizer: Recognizer, max_side: int | None) -> dict[str, float]:
    info = video_info(video)
    frames, decode_s = timed(lambda: list(iter_frames(video, max_side=max_side)))
    with PoseExtractor(max_persons=2, max_side=max_side) as extractor:
        result, pose_s = timed(lambda: extractor.process_frames(frames, (info.height, info.width)))
    annotation = {
        "frame_dir": video.stem,
        "total_frames": result.total_frames,
        "label": -1,
        "keypoint": result.keypoint,
        "keypoint_score": result.keypoint_score,
        "keypoint_3d": result.keypoint_3d,
        "fps": info.fps,
        "layout": "mediapipe33",
    }
    _, model_s = timed(lambda: recognizer.predict(annotation))
    return {"decode": decode_s, "pose": pose_s, "model": model_s, "duration": info.duration}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", type=Path)
    parser.add_argument("--checkpoint", type=Path, help="a trained work dir; default: random STAR-64")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-side", type=int, default=640)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    videos = args.videos or sorted(SHARED_VIDEOS.glob("*.*"))
    if not videos:
        raise SystemExit(f"no videos given and none at {SHARED_VIDEOS}")

    with tempfile.TemporaryDirectory() as tmp:
        recognizer = Recognizer.from_checkpoint(args.checkpoint or random_checkpoint(Path(tmp)))
        print("machine:", machine_info(torch.device("cpu")))
        rows = []
        for video in videos:
            info = video_info(video)
            runs: dict[str, list[dict[str, float]]] = {"ours": [], "full-res": []}
            for _ in range(args.repeats):  # interleaved, so load hits both paths alike
                runs["ours"].append(measure(video, recognizer, args.max_side))
                runs["full-res"].append(measure(video, recognizer, None))
            per_second = {
                name: {
                    k: statistics.median(r[k] for r in rs) / info.duration
                    for k in ("decode", "pose", "model")
                }
                for name, rs in runs.items()
            }
            ours, base = per_second["ours"], per_second["full-res"]
            rtf, base_rtf = sum(ours.values()), sum(base.values())
            rows.append([
                video.name, f"{info.width}x{info.height}", f"{info.duration:.1f}",
                f"{ours['decode']:.3f}", f"{ours['pose']:.3f}", f"{ours['model']:.3f}", f"{rtf:.2f}",
                f"{base_rtf:.2f}", f"{base_rtf / rtf:.2f}x",
            ])  # fmt: skip
    print(
        f"\nseconds of processing per second of video (median of {args.repeats}); "
        "RTF < 1 is faster than real time"
    )
    print(format_table(
        ["video", "size", "length s", "decode", "pose", "model", "RTF", "full-res RTF", "speed-up"], rows
    ))  # fmt: skip


if __name__ == "__main__":
    main()
