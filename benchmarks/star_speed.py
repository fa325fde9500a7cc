"""STAR-64 at the speed of its FLOPs (issue 15): the packed model before and after, its compiled and
exported forms, and lightact's ST-GCN, in one run.

The input is the issue's: a batch of 16 NTU-shaped clips (``skeleton_efficiency.py``'s ``ntu60``
scenario, seed 0: frames per person median 84, 3 of 16 clips with two persons, 1592 packed
frames), 25 joints, NTU-60 heads, ``--threads`` intra-op threads (default 1).

Every variant lives in its own worker process (the code before is the ``src`` of a git ref,
``--baseline``, unpacked into a temporary folder, as ``startup.py`` does), builds the same model
(seed 0) and inputs, and times itself when the parent asks; the parent asks each worker in turn,
round after round (the order rotated every round), so load from other processes hits all alike.
Figures are medians; ratios are of medians from this run. Variants:

* ``before``: STAR-64 packed, eager, the baseline ref's code;
* ``ours``: STAR-64 packed, eager, this tree;
* ``compiled``: ``torch.compile(ours, dynamic=True)``; before timing it also runs on two batches of
  16 clips of other lengths, one of 13 clips and the 16 single clips of the latency task, and
  reports how many graphs inductor had compiled (a counting backend) after each, and the graph
  breaks (inference, and training with ``--compile-train``); ``stgcn_compiled``: lightact's
  ST-GCN the same way (its input has one shape per batch size), so that compiled is compared with
  compiled;
* ``padded``: the export form (``PaddedSTAR``: clips zero-padded to the batch's longest, with their
  lengths), eager; ``onnx``: the same graph exported to ONNX, run by ONNX Runtime (``--threads``
  intra-op threads), several clips per call;
* ``stgcn``: lightact's ST-GCN on its usual input (every clip padded to 300 frames x 2 persons).

Tasks: inference at batch 16 (eval, ``no_grad``), batch-1 latency (clip r mod 16 in round r),
training (forward, cross-entropy, backward, AdamW; train mode). ``--profile`` prints
``torch.profiler`` tables (top operators by self CPU time, with call counts) of one forward and one
forward + backward of ``before`` and ``ours`` instead; ``--kernels`` times the sparse spatial
attention's two kernels (gathered neighbours, masked dense product) on the issue's tokens.

    python benchmarks/star_speed.py                         # about 10 min on a busy 2-core CPU
    python benchmarks/star_speed.py --profile               # per-operator tables, before and after
    python benchmarks/star_speed.py --kernels               # gather vs masked spatial attention
    python benchmarks/star_speed.py --compile --skip before padded onnx stgcn
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
VARIANTS = ("before", "ours", "compiled", "padded", "onnx", "stgcn", "stgcn_compiled")
COMPILED = ("compiled", "stgcn_compiled")  # minutes of compilation on a small CPU: only with --compile
TASKS = ("infer", "latency", "train")
INFERENCE_ONLY = ("padded", "onnx")  # exported forms do not train
DEFAULT_BASELINE = "d06f3cf"  # main before issue 15
BATCH, SEED = 16, 0


# ------------------------------------------------------------------------------------------ worker


class Worker:
    """One variant: its model, inputs and timed tasks, in this process."""

    def __init__(self, variant: str, threads: int, compile_train: bool) -> None:
        import torch

        torch.set_num_threads(threads)
        sys.path.insert(0, str(BENCH))
        import skeleton_efficiency as se

        from lightact.data.skeleton.batching import pack_clips, pad_clips

        self.variant, self.torch = variant, torch
        scenario = se.build_scenarios(BATCH, SEED)["ntu60"]
        torch.manual_seed(0)
        self.stgcn = variant.startswith("stgcn")
        self.model = se.build_model("stgcn" if self.stgcn else "star_64", torch.device("cpu"))
        self.info: dict[str, object] = {}
        if self.stgcn:
            batch = pad_clips(scenario.stgcn_clips, se.MAX_FRAMES)
            self.inputs = (batch,)
            self.singles = [(batch[i : i + 1],) for i in range(len(batch))]
        else:
            self.inputs = pack_clips(scenario.star_clips)
            self.singles = [(c, torch.zeros(len(c), dtype=torch.long)) for c in scenario.star_clips]
        self.clips = len(scenario.star_clips)
        self.flops = None
        if variant in ("before", "ours") or self.stgcn:
            from lightact.bench.flops import count_model_flops

            self.model.eval()
            self.flops = count_model_flops(self.model, self.inputs).flops
        self.infer_model = self.model
        if variant in COMPILED:
            self._compile(se, pack_clips, compile_train)
        elif variant in INFERENCE_ONLY:
            self._padded(variant, threads)
        self.train_step = None
        if variant not in INFERENCE_ONLY and (variant not in COMPILED or compile_train):
            import copy

            model = copy.deepcopy(self.model) if variant not in COMPILED else self.train_model
            self.train_step = se.make_train_step(model, self.inputs, self.clips)
        self.next_single = 0

    def _compile(self, se, pack_clips, compile_train: bool) -> None:
        import copy

        from torch._dynamo.utils import counters
        from torch._inductor.compile_fx import compile_fx

        torch, graphs = self.torch, []

        def counting(gm, example_inputs):
            graphs.append(len(gm.graph.nodes))
            return compile_fx(gm, example_inputs)

        self.graphs, self.counters = graphs, counters
        self.model.eval()
        self.infer_model = torch.compile(self.model, backend=counting, dynamic=True)
        started = time.perf_counter()
        # Two batches of the same clip count with other lengths, then one of another count, then
        # the single clips (ST-GCN: its one batch, then the single clips, all of one shape).
        shapes = () if self.stgcn else ((BATCH, SEED + 1), (BATCH, SEED + 2), (BATCH - 3, SEED + 3))
        batches = [pack_clips(se.build_scenarios(n, seed)["ntu60"].star_clips) for n, seed in shapes]
        with torch.no_grad():
            reference = self.model(*self.inputs)
            worst = (self.infer_model(*self.inputs) - reference).abs().max().item()
            after_each = [len(graphs)]
            for batch in batches:
                worst = max(worst, (self.infer_model(*batch) - self.model(*batch)).abs().max().item())
                after_each.append(len(graphs))
            for single in self.singles:
                worst = max(worst, (self.infer_model(*single) - self.model(*single)).abs().max().item())
            after_each.append(len(graphs))
        self.info["compile"] = {
            "setup_seconds": time.perf_counter() - started,
            "batches_seen (clips, frames)": [(self.clips, len(self.inputs[0]))]
            + [(n, len(batch[0])) for (n, _), batch in zip(shapes, batches, strict=True)]
            + [f"{len(self.singles)} single clips"],
            "graphs_compiled_after_each_batch": after_each,
            "graph_breaks": sum(counters["graph_break"].values()),
            "max_abs_diff_vs_eager": worst,
        }
        if compile_train:
            self.train_model = torch.compile(copy.deepcopy(self.model), backend=counting, dynamic=True)

    def _padded(self, variant: str, threads: int) -> None:
        from lightact.models.star import PaddedSTAR, pad_packed

        self.model.eval()
        padded = PaddedSTAR(self.model).eval()
        self.inputs = pad_packed(*self.inputs)
        self.singles = [pad_packed(*s) for s in self.singles]
        if variant == "padded":
            self.infer_model = padded
            return
        from lightact.export.onnx import export_target_onnx
        from lightact.export.session import ort_session
        from lightact.models.registry import model_entry

        target = model_entry("star_64").export_target(self.model)
        path = Path(tempfile.mkdtemp()) / "star_64.onnx"
        with contextlib.redirect_stdout(sys.stderr):
            export_target_onnx(target, path, target.axis_names)
        session = ort_session(path, threads=threads)
        names = [i.name for i in session.get_inputs()]

        def run(*inputs):
            return session.run(None, dict(zip(names, (t.numpy() for t in inputs), strict=True)))[0]

        with self.torch.no_grad():
            expected = padded(*self.inputs).numpy()
        self.info["onnx_max_abs_diff_vs_eager_b16"] = float(abs(run(*self.inputs) - expected).max())
        self.infer_model = run

    def run(self, task: str) -> float:
        torch = self.torch
        if task == "train":
            start = time.perf_counter()
            self.train_step()
            return time.perf_counter() - start
        if task == "infer":
            inputs = self.inputs
        else:
            inputs = self.singles[self.next_single % len(self.singles)]
            self.next_single += 1
        if hasattr(self.model, "eval"):
            self.model.eval()
        start = time.perf_counter()
        with torch.no_grad():
            self.infer_model(*inputs)
        return time.perf_counter() - start

    def logits(self) -> list:
        """The b16 logits in eval mode (what every STAR variant must agree on)."""
        if hasattr(self.model, "eval"):
            self.model.eval()
        with self.torch.no_grad():
            out = self.infer_model(*self.inputs)
        return out.tolist() if hasattr(out, "tolist") else list(out)

    def profile(self, rows: int) -> dict[str, str]:
        import torch.nn.functional as F
        from torch.profiler import ProfilerActivity, profile

        torch, out = self.torch, {}
        labels = torch.arange(self.clips) % 60

        def forward():
            self.model.eval()
            with torch.no_grad():
                self.model(*self.inputs)

        def forward_backward():
            self.model.train()
            F.cross_entropy(self.model(*self.inputs), labels).backward()

        for name, fn in (
            ("forward (eval, no_grad)", forward),
            ("forward + backward (train)", forward_backward),
        ):
            fn()  # warm-up
            start = time.perf_counter()
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                fn()
            wall = time.perf_counter() - start
            table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)
            out[name] = f"wall {wall * 1000:.0f} ms (profiled)\n{table}"
        return out

    def serve(self) -> None:
        """Answers one JSON line per command line on stdin until stdin closes (the parent died)."""
        print(
            json.dumps({"ready": True, "flops": self.flops, "clips": self.clips, "info": self.info}),
            flush=True,
        )
        for line in sys.stdin:
            command = line.split()
            if command[0] == "profile":
                print(json.dumps(self.profile(int(command[1]))), flush=True)
            elif command[0] == "logits":
                print(json.dumps(self.logits()), flush=True)
            elif command[0] == "info":
                if self.variant in COMPILED:
                    self.info["compile"]["graphs_compiled_at_end"] = len(self.graphs)
                    self.info["compile"]["graph_breaks_at_end"] = sum(self.counters["graph_break"].values())
                print(json.dumps(self.info), flush=True)
            else:
                print(json.dumps({"seconds": self.run(command[0])}), flush=True)


# ------------------------------------------------------------------------------------------ parent


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def baseline_source(ref: str, into: Path) -> Path:
    """The ``src`` folder of ``ref``, unpacked under ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


class Remote:
    """A worker process; dies with its parent (its stdin closes)."""

    def __init__(self, variant: str, src: Path, args: argparse.Namespace) -> None:
        env = {**os.environ, "PYTHONPATH": str(src)}
        command = [sys.executable, __file__, "--worker", variant, "--threads", str(args.threads)]
        if args.compile_train:
            command.append("--compile-train")
        self.variant = variant
        self.process = subprocess.Popen(
            command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.hello: dict | None = None

    def read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.variant} died (exit {self.process.wait()})")
        return json.loads(line)

    def ask(self, command: str) -> dict:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.read()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        self.process.wait(timeout=60)


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def median(values: list[float]) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def measure(remotes: dict[str, Remote], args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    times: dict[str, dict[str, list[float]]] = {v: {t: [] for t in TASKS} for v in remotes}
    for task in TASKS:
        runners = [v for v in remotes if task != "train" or v not in INFERENCE_ONLY]
        runners = [v for v in runners if task != "train" or v not in COMPILED or args.compile_train]
        repeats = args.latency_repeats if task == "latency" else args.rounds
        log(f"{task}: {args.warmup} warm-up + {repeats} rounds over {', '.join(runners)} (load {load()})")
        for r in range(args.warmup + repeats):
            order = runners[r % len(runners) :] + runners[: r % len(runners)]
            for variant in order:
                seconds = remotes[variant].ask(task)["seconds"]
                if r >= args.warmup:
                    times[variant][task].append(seconds)
    return times


def report(remotes: dict[str, Remote], times: dict, args: argparse.Namespace, load_before: str) -> str:
    # One count for every STAR variant: the code before's (the same function; the new layers count
    # a few more MACs for the normaliser column they carry through the linear attention's matmuls).
    star_flops = next((remotes[v].hello["flops"] for v in ("before", "ours") if v in remotes), None)
    lines = [
        f"STAR-64 speed, batch {BATCH} (ntu60 scenario, seed {SEED}), {args.threads} thread(s), "
        f"{args.rounds} rounds ({args.latency_repeats} for latency) after {args.warmup} warm-up, "
        "interleaved; "
        f"load 1/5/15 before {load_before}, after {load()}; baseline {args.baseline}",
        "",
        "| variant | GMACs/clip | infer clips/s (b16) | GFLOP/s achieved | b1 latency median (ms) | "
        "train clips/s (b16) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    medians: dict[str, dict[str, float]] = {}
    for variant, remote in remotes.items():
        m = {t: median(s) for t, s in times[variant].items() if s}
        medians[variant] = m
        clips = remote.hello["clips"]
        own = remote.hello["flops"] if variant.startswith("stgcn") else star_flops
        cells = [
            variant,
            f"{own / 2e9 / clips:.3f}" if own else "—",
            f"{clips / m['infer']:.2f}" if "infer" in m else "—",
            f"{own / m['infer'] / 1e9:.1f}" if own and "infer" in m else "—",
            f"{1000 * m['latency']:.1f}" if "latency" in m else "—",
            f"{clips / m['train']:.2f}" if "train" in m else "—",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "ratios (of medians; throughput: higher is better; latency: lower is better):"]
    pairs = [("ours", "before"), ("compiled", "ours"), ("onnx", "padded"), ("onnx", "ours"),
             ("ours", "stgcn"), ("before", "stgcn"), ("compiled", "stgcn"), ("onnx", "stgcn"),
             ("stgcn_compiled", "stgcn"), ("compiled", "stgcn_compiled")]  # fmt: skip
    for fast, slow in pairs:
        if fast not in medians or slow not in medians:
            continue
        parts = []
        for task, label in (("infer", "inference"), ("latency", "b1 latency"), ("train", "training")):
            if task in medians[fast] and task in medians[slow]:
                parts.append(f"{label} {medians[slow][task] / medians[fast][task]:.2f}x")
        lines.append(f"  {fast} vs {slow}: " + ", ".join(parts))
    if "before" in remotes:
        reference = remotes["before"].ask("logits")
        for variant in [v for v in remotes if v != "before" and not v.startswith("stgcn")]:
            logits = remotes[variant].ask("logits")
            worst = max(
                abs(a - b)
                for row, ref in zip(logits, reference, strict=True)
                for a, b in zip(row, ref, strict=True)
            )
            lines.append(f"  {variant}: largest |logit - before's logit| on the b16 batch {worst:.2e}")
    for variant, remote in remotes.items():
        info = remote.ask("info")
        if info:
            lines.append(f"  {variant}: {json.dumps(info)}")
    return "\n".join(lines)


def kernels(args: argparse.Namespace) -> None:
    """The sparse spatial attention's two kernels on the issue's tokens (1592 frames x 25 joints x 64):
    gathered neighbours ``[F, V, K, H, d]`` against the dense product masked to the graph."""
    import torch

    from lightact.data.skeleton.layouts import get_layout
    from lightact.models.layers import SparseGraphAttention, k_hop_neighbours

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    neighbours, valid = k_hop_neighbours(get_layout("ntu25").hop_distance(), 3)
    modules = {
        kernel: SparseGraphAttention(64, 8, neighbours, valid, kernel=kernel)
        for kernel in ("gather", "masked")
    }
    modules["gather"].load_state_dict(modules["masked"].state_dict())
    x = torch.randn(1592, 25, 64)
    weights = torch.randn(1592, 25, 64)

    def forward(module):
        with torch.no_grad():
            return module(x)

    def forward_backward(module):
        module.zero_grad(set_to_none=True)
        (module(x) * weights).sum().backward()

    worst = (forward(modules["gather"]) - forward(modules["masked"])).abs().max().item()
    times = {(k, task): [] for k in modules for task in ("forward", "forward+backward")}
    for r in range(args.warmup + args.rounds):
        for (kernel, task), seconds in times.items():
            start = time.perf_counter()
            (forward if task == "forward" else forward_backward)(modules[kernel])
            if r >= args.warmup:
                seconds.append(time.perf_counter() - start)
    print(
        f"sparse spatial attention, [1592, 25, 64], 8 heads, 3 hops (K = {neighbours.shape[1]} of 25), "
        f"{args.threads} thread(s), {args.rounds} rounds, load {load()}; gather vs masked {worst:.1e}"
    )
    for (kernel, task), seconds in times.items():
        print(f"  {kernel:6s} {task:16s} median {1000 * median(seconds):7.1f} ms")
    for task in ("forward", "forward+backward"):
        ratio = median(times[("gather", task)]) / median(times[("masked", task)])
        print(f"  {task}: masked {ratio:.1f}x faster than gather")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--baseline", default=DEFAULT_BASELINE, help=f"git ref of the code before ({DEFAULT_BASELINE})"
    )
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (torch and ONNX Runtime)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds of b16 inference and training")
    parser.add_argument("--latency-repeats", type=int, default=16, help="timed batch-1 rounds")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--skip", nargs="*", default=[], choices=VARIANTS, help="variants to leave out")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to build)")
    parser.add_argument("--compile-train", action="store_true", help="with --compile: also compile training")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler tables instead")
    parser.add_argument("--kernels", action="store_true", help="time the spatial attention kernels instead")
    parser.add_argument("--rows", type=int, default=20, help="operators per profile table")
    parser.add_argument("--json", type=Path, default=None, help="also write the timings here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        Worker(args.worker, args.threads, args.compile_train).serve()
        return
    if args.kernels:
        kernels(args)
        return

    chosen = [v for v in VARIANTS if v not in args.skip and (v not in COMPILED or args.compile)]
    variants = ("before", "ours") if args.profile else chosen
    with tempfile.TemporaryDirectory() as tmp:
        old = baseline_source(args.baseline, Path(tmp))
        remotes = {v: Remote(v, old if v == "before" else ROOT / "src", args) for v in variants}
        try:
            for variant, remote in remotes.items():
                log(f"waiting for {variant} to set up (load {load()})")
                remote.hello = remote.read()
            load_before = load()
            if args.profile:
                for variant, remote in remotes.items():
                    for name, table in remote.ask(f"profile {args.rows}").items():
                        print(f"\n### {variant}: {name}, load {load()}\n\n{table}")
                return
            times = measure(remotes, args)
            print(report(remotes, times, args, load_before))
            if args.json is not None:
                args.json.write_text(
                    json.dumps({"args": vars(args) | {"json": str(args.json)}, "times": times}, indent=2)
                )
        finally:
            for remote in remotes.values():
                remote.close()


if __name__ == "__main__":
    main()
