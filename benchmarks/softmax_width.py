"""Why STAR's spatial attention pads small skeletons: torch's CPU softmax against the row width, and
the masked attention on small layouts with and without the padding, in the same run.

Three tables:

* softmax alone, forward and backward, nanoseconds per element for rows of 4-33 values (the same
  number of elements at every width): on a CPU whose vector register holds 16 floats (AVX-512) a
  row narrower than that takes a scalar path;
* :class:`~lightact.models.layers.SparseGraphAttention` (masked kernel, 64 channels, 8 heads, 3 hops;
  forward + backward) on each layout, built as shipped (``padded``: at least ``MIN_SCORE_WIDTH`` keys
  per score row) and with the padding turned off (``unpadded``: exactly the layout's joints, what it
  did before), in interleaved rounds that start with each in turn, the same weights and input, and
  the largest difference of their outputs;
* a whole STAR-64 training step (forward, cross-entropy, backward, AdamW) on a packed batch of that
  many frames (SBU's shape by default: 32 clips of 64 frames, two persons of 32), padded against
  unpadded, built from the same seed.

    python benchmarks/softmax_width.py [--rounds 12] [--frames 2048] [--clips 32] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
from _common import format_table, interleaved_timings, machine_info
from skeleton_efficiency import NUM_CLASSES, make_train_step, paired_ratios

from lightact.data.skeleton.batching import pack_clips
from lightact.data.skeleton.layouts import get_layout
from lightact.models import create_model
from lightact.models.layers import SparseGraphAttention, graph_attention, k_hop_neighbours

LAYOUTS = ("upper_body8", "datasets/sbu15.yaml", "datasets/kinect_v1_20_msr.yaml", "ntu25")
WIDTHS = (4, 8, 12, 15, 16, 17, 20, 25, 32, 33)


def softmax_ns_per_element(width: int, elements: int, rounds: int) -> tuple[float, float]:
    x = torch.randn(elements // width, width, requires_grad=True)
    y = x.softmax(-1)
    grad = torch.randn_like(y)
    forward, backward = [], []
    for _ in range(rounds + 1):
        start = time.perf_counter()
        x.detach().softmax(-1)
        forward.append(time.perf_counter() - start)
        start = time.perf_counter()
        torch.autograd.grad(y, x, grad, retain_graph=True)
        backward.append(time.perf_counter() - start)
    scale = 1e9 / x.numel()
    return statistics.median(forward[1:]) * scale, statistics.median(backward[1:]) * scale


def built_with_min_width(build: Callable[[], torch.nn.Module], min_width: int) -> torch.nn.Module:
    shipped = graph_attention.MIN_SCORE_WIDTH
    graph_attention.MIN_SCORE_WIDTH = min_width  # read once, when a module builds its bias
    try:
        torch.manual_seed(0)
        return build()
    finally:
        graph_attention.MIN_SCORE_WIDTH = shipped


def padded_against_unpadded(steps: dict[str, Callable[[], object]], rounds: int) -> tuple[float, float, str]:
    """``steps["padded"]`` and ``steps["unpadded"]`` timed in interleaved rounds that start with each in
    turn: their median seconds and the speed-up with its per-round range, as a table cell."""
    times = interleaved_timings(steps, rounds, rotate=True)
    padded, unpadded = (statistics.median(times[k]) for k in ("padded", "unpadded"))
    per_round = paired_ratios(times["unpadded"], times["padded"])
    return padded, unpadded, f"{unpadded / padded:.2f}x (rounds {min(per_round):.2f}-{max(per_round):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--frames", type=int, default=2048, help="frames per call (SBU: 32 clips x 64)")
    parser.add_argument("--clips", type=int, default=32, help="clips in the training step's batch")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("machine:", machine_info(torch.device("cpu")))
    print("cpu capability:", torch.backends.cpu.get_cpu_capability())

    rows = []
    for width in WIDTHS:
        fwd, bwd = softmax_ns_per_element(width, 4_000_000, args.rounds)
        rows.append([str(width), f"{fwd:.2f}", f"{bwd:.2f}"])
    print("\nsoftmax over the last dimension, 4 M elements, median ns per element")
    print(format_table(["row width", "forward", "backward"], rows))

    rows = []
    for name in LAYOUTS:
        layout = get_layout(name)
        joints = layout.num_joints
        neighbours, valid = k_hop_neighbours(layout.hop_distance(), 3)

        def build(neighbours=neighbours, valid=valid) -> SparseGraphAttention:
            return SparseGraphAttention(64, 8, neighbours, valid, kernel="masked")

        modules = {
            "padded": built_with_min_width(build, graph_attention.MIN_SCORE_WIDTH),
            "unpadded": built_with_min_width(build, 1),
        }
        generator = torch.Generator().manual_seed(1)
        x = torch.randn(args.frames, joints, 64, generator=generator, requires_grad=True)
        with torch.no_grad():
            difference = (modules["padded"](x) - modules["unpadded"](x)).abs().max().item()
        steps = {name: (lambda m=m, x=x: m(x).sum().backward()) for name, m in modules.items()}
        padded, unpadded, faster = padded_against_unpadded(steps, args.rounds)
        rows.append([
            layout.name, str(joints), str(modules["padded"].bias.shape[-1]), f"{unpadded * 1e3:.1f}",
            f"{padded * 1e3:.1f}", faster, f"{difference:.1e}",
        ])  # fmt: skip
    print(f"\nmasked spatial attention, forward + backward, {args.frames} frames, median of {args.rounds}")
    header = ["layout", "joints", "score row", "unpadded ms", "padded ms", "padded faster by", "max |diff|"]
    print(format_table(header, rows))

    rows = []
    per_clip = args.frames // args.clips
    for name in LAYOUTS:
        layout = get_layout(name)
        generator = torch.Generator().manual_seed(2)
        clips = [torch.randn(per_clip, layout.num_joints, 9, generator=generator) for _ in range(args.clips)]
        inputs = pack_clips(clips)
        steps = {}
        for variant, width in (("padded", graph_attention.MIN_SCORE_WIDTH), ("unpadded", 1)):
            model = built_with_min_width(
                lambda layout=layout: create_model("star_64", num_classes=NUM_CLASSES, layout=layout), width
            )
            steps[variant] = make_train_step(model, inputs, args.clips)
        padded, unpadded, faster = padded_against_unpadded(steps, args.rounds)
        joints = str(layout.num_joints)
        rows.append([layout.name, joints, f"{unpadded * 1e3:.0f}", f"{padded * 1e3:.0f}", faster])
    print(f"\nSTAR-64 training step, {args.clips} clips of {per_clip} frames, median of {args.rounds}")
    print(format_table(["layout", "joints", "unpadded ms", "padded ms", "padded faster by"], rows))
    print("load average after:", [round(v, 2) for v in os.getloadavg()])


if __name__ == "__main__":
    main()
