"""Long video, file to answer: peak memory (RSS) against video length.

Writes 25 fps test videos (320x240, H.264) of 1, 2, 4 and 8 minutes, then for each runs the whole
long-video path in a fresh process, ``lightact.inference.longvideo.LongVideoRecognizer``: streamed decoding,
frame features at 1 fps, clip features (8-frame clips at 8 fps, one every 2 s), STAN on the whole
video and on 30-s segments. The child reports its peak RSS (``getrusage``, which includes the Python
interpreter, torch and the encoders' weights) and its RSS right after start-up (imports and the
model), so the growth with length is visible apart from the fixed cost.

    python benchmarks/longvideo_memory.py [--minutes 1 2 4 8] [--preset standard|tiny] [--threads 1]

``standard``: timm/resnet18 on 224x224 frames and tv/r3d_18 on 112x112 clips (torchvision's R3D-18),
both with random weights (memory and time do not depend on the weights' values). ``tiny``: the
embedded pair (timm/resnet10t at 64, clip3d_tiny at 32). The STAN is untrained (random weights).
The bar: the 2-minute (3,000-frame) video within 4 GB, and linear growth.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import format_table, machine_info

PRESETS = {
    "standard": {
        "frame_encoder": "timm/resnet18",
        "frame_size": 224,
        "clip_encoder": "tv/r3d_18",
        "clip_size": 112,
    },
    "tiny": {
        "frame_encoder": "timm/resnet10t",
        "frame_size": 64,
        "clip_encoder": "clip3d_tiny",
        "clip_size": 32,
    },
}


def write_video(path: Path, seconds: float, fps: int = 25, width: int = 320, height: int = 240) -> None:
    """A moving gradient with a bouncing square: cheap to render, not trivially compressible."""
    import av

    yy, xx = np.mgrid[0:height, 0:width]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for i in range(int(seconds * fps)):
            t = i / fps
            frame = np.empty((height, width, 3), dtype=np.uint8)
            frame[..., 0] = (xx + 40 * t) % 256
            frame[..., 1] = (yy + 25 * t) % 256
            frame[..., 2] = 128
            x = int((np.sin(t) * 0.5 + 0.5) * (width - 40))
            frame[60:100, x : x + 40] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_checkpoint(folder: Path, preset: str) -> Path:
    """An untrained STAN with the checkpoint meta a trained one has (the extraction settings)."""
    from lightact.engine.checkpoint import save_weights
    from lightact.features.encoders import build_encoder
    from lightact.features.extract import ExtractionSettings
    from lightact.models import create_model

    settings = ExtractionSettings(fps=1.0, clip_len=8, clip_fps=8.0, clip_stride=2.0, **PRESETS[preset])
    frame_dim = build_encoder(settings.frame_encoder, "frame", settings.frame_size).feature_dim()
    clip_dim = build_encoder(settings.clip_encoder, "clip", settings.clip_size).feature_dim(settings.clip_len)
    kwargs = {"num_classes": 10, "frame_dim": frame_dim, "clip_dim": clip_dim, "task": "classification"}
    meta = {
        "model": "stan",
        "kwargs": kwargs,
        "classes": [f"class_{i}" for i in range(10)],
        "modality": "longvideo",
        "input_format": "features",
        "task": "classification",
        "data": {"extraction": settings.to_dict(), "task": "classification"},
    }
    path = folder / "model.safetensors"
    save_weights(create_model("stan", **kwargs), path, meta)
    return path


CHILD = """
import json, resource, sys, time, torch
torch.set_num_threads(int(sys.argv[3]))
from lightact.inference.longvideo import LongVideoRecognizer
recognizer = LongVideoRecognizer.from_checkpoint(sys.argv[1])
recognizer.encoders  # build the encoders before the start-up reading
def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024
startup = rss()
start = time.perf_counter()
features = recognizer.features(sys.argv[2])  # streamed decode + both encoders
prediction = recognizer.predict_features(features, sys.argv[2])  # STAN: whole video + 30-s segments
seconds = time.perf_counter() - start
feature_mb = sum(t.numel() * t.element_size() for t in (features.frame_features, features.frame_times,
                 features.clip_features, features.clip_times)) / 2**20
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"startup_mb": startup, "peak_mb": peak, "seconds": seconds, "feature_mb": feature_mb,
                  "frames": prediction.num_frames, "segments": len(prediction.windows)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="standard")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None, help="keep videos here (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here too")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        checkpoint = write_checkpoint(work, args.preset)
        rows, results = [], []
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        for minutes in args.minutes:
            video = work / f"video_{minutes:g}min.mp4"
            if not video.is_file():
                started = time.perf_counter()
                write_video(video, minutes * 60)
                print(f"wrote {video.name} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(checkpoint), str(video), str(args.threads)],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            if out.returncode != 0:
                raise SystemExit(f"child failed for {video}:\n{out.stderr[-3000:]}")
            result = {"minutes": minutes, **json.loads(out.stdout.strip().splitlines()[-1])}
            results.append(result)
            print(json.dumps(result), file=sys.stderr)
            rows.append(
                [
                    f"{minutes:g}",
                    str(result["frames"]),
                    f"{result['startup_mb']:.0f}",
                    f"{result['peak_mb']:.0f}",
                    f"{result['peak_mb'] - result['startup_mb']:.0f}",
                    f"{result['feature_mb']:.2f}",
                    f"{result['seconds']:.1f}",
                ]
            )
    minutes = np.array([r["minutes"] for r in results], dtype=float)
    peaks = np.array([r["peak_mb"] for r in results])
    info = machine_info(torch.device("cpu"))
    print(f"preset {args.preset}: {PRESETS[args.preset]}; threads {args.threads}; machine {info}")
    print(
        format_table(
            [
                "minutes",
                "frames (25 fps)",
                "RSS after start-up (MB)",
                "peak RSS (MB)",
                "peak - start-up (MB)",
                "features (MB)",
                "time (s)",
            ],
            rows,
        )
    )
    if len(results) >= 2:
        slope, intercept = np.polyfit(minutes, peaks, 1)
        worst = np.abs(peaks - (intercept + slope * minutes)).max()
        print(f"linear fit: peak = {intercept:.0f} MB + {slope:.1f} MB/min; largest deviation {worst:.1f} MB")
    two = [r for r in results if r["minutes"] == 2]
    if two:
        verdict = "PASS" if two[0]["peak_mb"] <= 4096 else "FAIL"
        print(f"2-minute 25 fps video (3,000 frames): peak {two[0]['peak_mb']:.0f} MB <= 4096 MB: {verdict}")
    if args.json:
        args.json.write_text(
            json.dumps({"preset": args.preset, "machine": info, "results": results}, indent=2)
        )


if __name__ == "__main__":
    main()
