"""Input-pipeline throughput: decoded, augmented training clips per second in one worker process.

What one DataLoader worker does per item is timed in this process: open the video, sample frame
indices, decode only those frames (seeking, scaled in the decoder), random-resized-crop and flip
(``VideoClipDataset`` in training mode). Sampling: ``uniform`` (8 segments, SSv2 style) and ``dense``
(8 frames, interval 4, Kinetics style). Sources: the real videos in ``../shared/data/videos`` (one
H.264 MP4 from Kinetics at 340x256, an MPEG-4 AVI at 320x240, a 1080p H.264 AVI from NTU) and
synthetic H.264 MP4 files written by ``lightact data synth video`` (256 px, 64 frames). The naive
alternative, decoding every frame of the video and then picking the clip's frames, is timed
alongside (``full decode``) in interleaved rounds. Loader workers are independent processes, so
``W`` workers give about ``W`` times the per-worker figure when ``W`` cores are free.

    python benchmarks/video_loading.py --items 24 --out video_loading.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import format_table, machine_info

from lightact.data.synthetic.video import write_video_dataset
from lightact.data.video.clips import short_side_size
from lightact.data.video.datasets import VideoClipDataset, VideoRecord, read_video_list
from lightact.data.video.reader import iter_frames
from lightact.data.video.sampling import clip_indices
from lightact.data.video.transforms import random_resized_crop

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"
SAMPLING = {
    "uniform": {"sampling": "uniform", "frame_interval": 1},
    "dense": {"sampling": "dense", "frame_interval": 4},
}
CLIP_LEN, RESIZE, CROP = 8, 128, 112


def full_decode_item(record: VideoRecord, sampling: dict, rng: np.random.Generator) -> torch.Tensor:
    """The naive loader: decode every frame (scaled), then pick the clip's frames and crop."""
    frames = []
    for rgb in iter_frames(record.path):
        h, w = rgb.shape[:2]
        frames.append(torch.from_numpy(rgb).permute(2, 0, 1))
    idx = clip_indices(sampling["sampling"], len(frames), CLIP_LEN, True, rng, sampling["frame_interval"])
    clip = torch.stack([frames[i] for i in idx])
    w, h = short_side_size(w, h, RESIZE)
    from torchvision.transforms.v2 import functional as TF

    clip = TF.resize(clip, [h, w], antialias=True)
    return random_resized_crop(clip, CROP, rng)


def time_items(fn, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - start)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(1)
    sources: dict[str, list[VideoRecord]] = {}
    if REAL.is_dir():
        for path in sorted(REAL.iterdir()):
            sources[f"real {path.name}"] = [VideoRecord(path, 0)]
    tmp = tempfile.TemporaryDirectory()
    written = write_video_dataset(
        tmp.name, samples_per_class=2, seed=0, num_frames=64, size=256, val_fraction=0.5
    )
    sources["synthetic mp4 256px x 64 frames"] = read_video_list(written["train"])
    rows, results = [], []
    for name, records in sources.items():
        for mode, sampling in SAMPLING.items():
            dataset = VideoClipDataset(
                records, CLIP_LEN, train=True, resize=RESIZE, crop=CROP, flip=True, seed=0, **sampling
            )
            rng = np.random.default_rng(0)
            n = args.items if "1080" not in name and "ntu" not in name else max(4, args.items // 6)
            seek, full = [], []
            for _ in range(args.rounds):  # interleaved rounds: load hits both alike
                seek.append(time_items(lambda i, d=dataset: d[(0, i % len(d))], n))
                full.append(
                    time_items(
                        lambda i, r=records, s=sampling, g=rng: full_decode_item(r[i % len(r)], s, g), n
                    )
                )
            entry = {
                "source": name,
                "sampling": mode,
                "clips_per_s_seeking": float(np.median(seek)),
                "clips_per_s_full_decode": float(np.median(full)),
            }
            entry["speedup"] = entry["clips_per_s_seeking"] / entry["clips_per_s_full_decode"]
            results.append(entry)
            seeking, naive = entry["clips_per_s_seeking"], entry["clips_per_s_full_decode"]
            log(f"{name} {mode}: {seeking:.1f} clips/s (full decode {naive:.1f})")
            rows.append(
                [
                    name,
                    mode,
                    f"{entry['clips_per_s_seeking']:.1f}",
                    f"{entry['clips_per_s_full_decode']:.1f}",
                    f"{entry['speedup']:.1f}x",
                ]
            )
    tmp.cleanup()
    return {
        "machine": machine_info(torch.device("cpu")),
        "clip": [CLIP_LEN, RESIZE, CROP],
        "results": results,
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=24, help="clips per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = run(args)
    print(
        format_table(
            ["source", "sampling", "clips/s per worker (seeking)", "clips/s (full decode)", "speed-up"],
            result["rows"],
        )
    )
    m = result["machine"]
    print(f"\n{CLIP_LEN} frames, short side {RESIZE}, crop {CROP}; {m['cpu']}, {m['cores']} cores")
    print(f"load average {m['load_average_1_5_15']}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
