"""Is STAR smaller and faster than ST-GCN on NTU-shaped input? (issue 2)

Measures STAR-64, STAR-128 and ST-GCN with NTU-60 heads (60 classes, 25 joints) on synthetic clips whose
lengths and person counts are drawn like NTU's, in two scenarios:

* ``ntu60``: persons per clip as in NTU-60 (11 of its 60 classes, about 18 %, are 2-person interactions);
* ``2person``: the same clips, every one with 2 persons (the issue's "2 persons" input).

Each model gets the input it is normally run on. ST-GCN: every clip padded to 300 frames x 2 persons,
``[N, 3, 300, 25, 2]``. STAR: packed, each clip's persons concatenated along time with 9 features per
joint (joint, bone, motion), all clips concatenated, ``[sum F_i, 25, 9]`` plus clip ids. To isolate what
packing buys, STAR-64 also runs on *padded* batches of the same clips: every clip zero-padded to the
batch's longest clip, and to 600 frames (300 frames x 2 persons, ST-GCN's budget), with clip ids of the
padded length.

With ``--authors-stgcn DIR`` (a checkout of github.com/yysijie/st-gcn, the paper's baseline code; not
shipped with lightact) the authors' own ST-GCN runs beside lightact's on the same padded batch.

Reported per model: parameters; FLOPs per clip (``FlopCounterMode``: 2 FLOPs per multiply-add, shown as
GFLOPs and as GMACs = FLOPs / 2, the convention of fvcore and most papers); inference throughput at
``--batch`` (eval, no_grad) and batch-1 latency; training throughput (forward, backward, AdamW step, train
mode); peak memory of one training step, measured in a fresh subprocess per model (CPU: peak RSS minus the
RSS before the model was built; CUDA: ``max_memory_allocated`` minus what the inputs held); the FLOP/s
each achieves (training counted as 3x the forward's FLOPs, the usual forward + backward estimate) and
that as a fraction of the machine's matmul peak (a 2048 x 2048 float32 product, measured at the same
thread count just before). ``--threads 1 2`` runs the whole protocol at each thread count, one table
set each with the load beside it. Models are
timed in interleaved rounds (A, B, C, A, B, C, ...) so machine load affects all alike; figures are medians
and the ratios are measured in the same run.

    python benchmarks/skeleton_efficiency.py                    # default: 7-11 min on a busy 2-core CPU
    python benchmarks/skeleton_efficiency.py --threads 1        # steadier where other processes share the CPU
    python benchmarks/skeleton_efficiency.py --threads 1 2 --authors-stgcn ~/src/st-gcn
    python benchmarks/skeleton_efficiency.py --quick            # smoke test, about a minute
    python benchmarks/skeleton_efficiency.py --device cuda --json skeleton.json
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _common import (
    count_flops,
    current_rss_bytes,
    format_table,
    interleaved_timings,
    machine_info,
    matmul_peak_flops,
    median,
    parallel_region_cost,
    peak_rss_bytes,
    percentile,
    reset_peak_rss,
    synchronizer,
)
from torch import Tensor, nn

from lightact.data.skeleton.batching import pack_clips, pad_clips
from lightact.data.skeleton.features import joint_bone_motion, person_frames
from lightact.data.skeleton.layouts import get_layout
from lightact.models.registry import create_model

NUM_CLASSES = 60  # NTU-60 head
LAYOUT = "ntu25"
MAX_FRAMES = 300  # ST-GCN's fixed clip length
MAX_PERSONS = 2
NTU60_TWO_PERSON_FRACTION = 11 / 60  # classes A50-A60 are mutual actions
# Frames per person: lognormal with median 90 (90 % of clips within ~50-160), clipped to 30-300.
FRAMES_MEDIAN, FRAMES_SIGMA, FRAMES_MIN, FRAMES_MAX = 90, 0.35, 30, 300

BARS = {"params": 7.0, "inference": 4.0, "training": 4.0, "packing": 1.5}
# Issue 15's bars (idle machine, against an ST-GCN at least as fast as the authors' code).
FLOPS_BARS = {"infer": 20.0, "latency": 10.0, "train": 25.0}
MODEL_NAMES = {
    "stgcn": "ST-GCN",
    "stgcn_authors": "ST-GCN (authors' code)",
    "star_64": "STAR-64",
    "star_128": "STAR-128",
}
TRAIN_FLOPS_PER_FORWARD = 3  # forward + backward, the usual estimate (backward ~ 2x forward)


# ----------------------------------------------------------------------------------------------- data


@dataclass
class Scenario:
    """One batch of clips: persons and frames per person of each clip, and the models' inputs."""

    key: str
    title: str
    persons: list[int]
    frames: list[int]
    star_clips: list[Tensor] = field(default_factory=list)  # [F_i, V, 9], persons concatenated
    stgcn_clips: list[Tensor] = field(default_factory=list)  # [3, T_i, V, 2]


def sample_clip_shapes(batch: int, seed: int) -> tuple[list[int], list[int]]:
    """Frames per person of each clip, and NTU-60's persons per clip (exactly round(18 %) of the batch)."""
    rng = np.random.default_rng(seed)
    frames = rng.lognormal(np.log(FRAMES_MEDIAN), FRAMES_SIGMA, batch).round().astype(int)
    frames = np.clip(frames, FRAMES_MIN, FRAMES_MAX)
    persons = np.ones(batch, dtype=int)
    persons[rng.choice(batch, round(batch * NTU60_TWO_PERSON_FRACTION), replace=False)] = 2
    return frames.tolist(), persons.tolist()


def synthetic_keypoints(rng: np.random.Generator, persons: int, frames: int, joints: int) -> np.ndarray:
    """``[M, T, V, 3]`` plausible-looking coordinates: a random pose per person drifting by a random walk.
    The values do not change the cost; they only need no all-zero ("unseen") frames."""
    pose = rng.normal(0.0, 0.3, (persons, 1, joints, 3)) + np.array([0.0, 0.0, 3.0])
    walk = np.cumsum(rng.normal(0.0, 0.01, (persons, frames, joints, 3)), axis=1)
    return (pose + walk).astype(np.float32)


def build_scenario(key: str, title: str, frames: list[int], persons: list[int], seed: int) -> Scenario:
    rng = np.random.default_rng(seed)
    parents = get_layout(LAYOUT).parents
    joints = len(parents)
    scenario = Scenario(key, title, persons, frames)
    for m, t in zip(persons, frames, strict=True):
        keypoints = synthetic_keypoints(rng, m, t, joints)
        # STAR: the persons' frame runs concatenated along time, joint/bone/motion features.
        runs = [joint_bone_motion(run, parents) for run in person_frames(keypoints)]
        scenario.star_clips.append(torch.from_numpy(np.concatenate(runs, axis=0)))
        # ST-GCN: [C, T, V, M] with the second person slot zero for 1-person clips.
        padded_persons = np.zeros((MAX_PERSONS, t, joints, 3), dtype=np.float32)
        padded_persons[:m] = keypoints
        scenario.stgcn_clips.append(torch.from_numpy(padded_persons).permute(3, 1, 2, 0).contiguous())
    return scenario


def build_scenarios(batch: int, seed: int) -> dict[str, Scenario]:
    frames, persons = sample_clip_shapes(batch, seed)
    ntu = build_scenario("ntu60", "NTU-60 persons mix (~18 % 2-person)", frames, persons, seed + 1)
    both = build_scenario("2person", "every clip 2 persons", frames, [MAX_PERSONS] * batch, seed + 1)
    return {s.key: s for s in (ntu, both)}


def pad_packed(clips: list[Tensor], length: int) -> tuple[Tensor, Tensor]:
    """STAR input with every clip zero-padded to ``length`` frames: ``[N * length, V, C]`` and clip ids."""
    x = clips[0].new_zeros((len(clips) * length, *clips[0].shape[1:]))
    for i, clip in enumerate(clips):
        n = min(len(clip), length)
        x[i * length : i * length + n] = clip[:n]
    return x, torch.arange(len(clips)).repeat_interleave(length)


# ------------------------------------------------------------------------------------------ workloads


@dataclass
class Workload:
    """One model on one batch, fed the way named by ``input_format``."""

    key: str
    model: str  # registry name
    scenario: str  # scenario key, or "any" where the cost does not depend on it
    input_format: str
    inputs: tuple[Tensor, ...]
    frames_fed: int  # rows of person-frames the model processes for the whole batch
    single_clips: list[tuple[Tensor, ...]]  # batch-1 inputs, one per clip (for latency)
    train: bool = True  # also measure batch-1 latency, training throughput and memory

    @property
    def clips(self) -> int:
        return len(self.single_clips)


def make_workloads(scenarios: dict[str, Scenario], authors: bool = False) -> list[Workload]:
    """ST-GCN once (its padded input costs the same in both scenarios; the authors' code on the same
    batch when ``authors``), STAR packed per scenario and width, STAR-64 padded to the batch's longest
    clip per scenario, and STAR-64 padded to 600 frames."""
    both = scenarios["2person"]
    stgcn_batch = pad_clips(both.stgcn_clips, MAX_FRAMES)
    workloads = [
        Workload(
            name,
            name,
            "any",
            f"padded {MAX_FRAMES} frames x {MAX_PERSONS} persons",
            (stgcn_batch,),
            len(stgcn_batch) * MAX_FRAMES * MAX_PERSONS,
            [(stgcn_batch[i : i + 1],) for i in range(len(stgcn_batch))],
        )
        for name in ("stgcn", "stgcn_authors")[: 2 if authors else 1]
    ]
    for scenario in scenarios.values():
        singles = [(clip, torch.zeros(len(clip), dtype=torch.long)) for clip in scenario.star_clips]
        packed = pack_clips(scenario.star_clips)
        for model in ("star_64", "star_128"):
            workloads.append(
                Workload(
                    f"{model}/{scenario.key}/packed",
                    model,
                    scenario.key,
                    "packed",
                    packed,
                    len(packed[0]),
                    singles,
                )
            )
        longest = max(len(clip) for clip in scenario.star_clips)
        workloads.append(
            Workload(
                f"star_64/{scenario.key}/padded-longest",
                "star_64",
                scenario.key,
                f"padded to batch's longest ({longest})",
                pad_packed(scenario.star_clips, longest),
                len(scenario.star_clips) * longest,
                singles,
                train=False,
            )
        )
    length = MAX_FRAMES * MAX_PERSONS
    workloads.append(
        Workload(
            "star_64/any/padded-600",
            "star_64",
            "any",
            f"padded to {length} ({MAX_FRAMES} x {MAX_PERSONS})",
            pad_packed(both.star_clips, length),
            len(both.star_clips) * length,
            [(clip, torch.zeros(len(clip), dtype=torch.long)) for clip in both.star_clips],
            train=False,
        )
    )
    return workloads


def to_device(tensors: tuple[Tensor, ...], device: torch.device) -> tuple[Tensor, ...]:
    return tuple(t.to(device) for t in tensors)


def build_model(name: str, device: torch.device, authors_stgcn: Path | None = None) -> nn.Module:
    torch.manual_seed(0)
    if name == "stgcn_authors":
        return authors_stgcn_model(authors_stgcn).to(device)
    return create_model(name, num_classes=NUM_CLASSES).to(device)


def authors_stgcn_model(checkout: Path | None) -> nn.Module:
    """The authors' ST-GCN (``net/st_gcn.py`` of a yysijie/st-gcn checkout) as their NTU configs build
    it: 3 channels, 60 classes, the ``ntu-rgb+d`` graph with the spatial partition, edge importance,
    dropout 0.5."""
    if checkout is None or not (Path(checkout) / "net" / "st_gcn.py").is_file():
        raise SystemExit(f"--authors-stgcn: {checkout} is not a yysijie/st-gcn checkout (no net/st_gcn.py)")
    sys.path.insert(0, str(Path(checkout).resolve()))
    from net.st_gcn import Model

    graph = {"layout": "ntu-rgb+d", "strategy": "spatial"}
    return Model(3, NUM_CLASSES, graph, edge_importance_weighting=True, dropout=0.5)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def make_train_step(model: nn.Module, inputs: tuple[Tensor, ...], clips: int) -> Callable[[], None]:
    """One optimisation step (forward, cross-entropy, backward, AdamW) on ``inputs``, train mode."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=4e-5)
    labels = torch.arange(clips, device=inputs[0].device) % NUM_CLASSES

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(*inputs), labels).backward()
        optimizer.step()

    return step


def make_inference(model: nn.Module, inputs: tuple[Tensor, ...]) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad():
            model(*inputs)

    return run


def make_cycling_inference(model: nn.Module, singles: list[tuple[Tensor, ...]]) -> Callable[[], None]:
    """Batch-1 inference on the next clip of the batch at every call (round r sees clip r mod N)."""
    state = {"next": 0}

    def run() -> None:
        inputs = singles[state["next"] % len(singles)]
        state["next"] += 1
        with torch.no_grad():
            model(*inputs)

    return run


# ------------------------------------------------------------------------------------------- memory


def memory_probe(args: argparse.Namespace) -> None:
    """Child process: one training step of one workload; prints the peak memory it took as JSON."""
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    workloads = make_workloads(build_scenarios(args.batch, args.seed), args.authors_stgcn is not None)
    workload = next(w for w in workloads if w.key == args.probe)
    inputs = to_device(workload.inputs, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)
    else:
        reset_peak_rss()
        baseline = current_rss_bytes()
    model = build_model(workload.model, device, args.authors_stgcn)
    make_train_step(model, inputs, workload.clips)()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = peak_rss_bytes()
    print(json.dumps({"key": workload.key, "baseline_bytes": baseline, "peak_delta_bytes": peak - baseline}))


def measure_memory(workloads: list[Workload], args: argparse.Namespace) -> dict[str, int]:
    """Peak memory of one training step of each workload, each in a fresh Python process."""
    out = {}
    for workload in workloads:
        command = [sys.executable, __file__, "--probe", workload.key, "--batch", str(args.batch)]
        command += ["--seed", str(args.seed), "--threads", str(args.threads), "--device", args.device]
        if args.authors_stgcn is not None:
            command += ["--authors-stgcn", str(args.authors_stgcn)]
        start = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"memory probe for {workload.key} failed:\n{result.stderr}")
        out[workload.key] = json.loads(result.stdout.strip().splitlines()[-1])["peak_delta_bytes"]
        log(f"  {workload.key}: {out[workload.key] / 2**20:.0f} MiB ({time.perf_counter() - start:.1f} s)")
    return out


# ------------------------------------------------------------------------------------------ running


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_benchmark(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    sync = synchronizer(device)
    scenarios = build_scenarios(args.batch, args.seed)
    workloads = make_workloads(scenarios, args.authors_stgcn is not None)
    models = {w.model: build_model(w.model, device, args.authors_stgcn).eval() for w in workloads}
    inputs = {w.key: to_device(w.inputs, device) for w in workloads}
    singles = {w.key: [to_device(s, device) for s in w.single_clips] for w in workloads}
    started = time.perf_counter()
    load_before = machine_info(device)["load_average_1_5_15"]
    peak_flops = matmul_peak_flops(device)

    contention: list[dict] = []

    def phase(message: str) -> None:
        one, many = parallel_region_cost(args.threads)
        contention.append(
            {"phase": message, "region_us_1_thread": one * 1e6, "region_us_threads": many * 1e6}
        )
        gauge = f"parallel region {one * 1e6:.0f} us at 1 thread, {many * 1e6:.0f} us at {args.threads}"
        log(f"[{time.perf_counter() - started:5.0f} s] {message} ({gauge})")

    phase("FLOPs per clip (forward, eval)")
    flops = {}
    for w in workloads:
        model = models[w.model]
        if w.model.startswith("stgcn"):  # every clip has the same padded shape: count one
            flops[w.key] = count_flops(make_inference(model, singles[w.key][0]))
        else:
            flops[w.key] = count_flops(make_inference(model, inputs[w.key])) / w.clips

    phase(f"inference, batch {args.batch}: {args.warmup} warm-up + {args.repeats} timed rounds")
    infer_fns = {w.key: make_inference(models[w.model], inputs[w.key]) for w in workloads}
    infer = interleaved_timings(infer_fns, args.repeats, args.warmup, sync, log)

    latency_workloads = [w for w in workloads if w.train]  # ST-GCN and the packed STARs
    phase(f"latency, batch 1: 1 warm-up + {args.latency_repeats} timed rounds, clip r mod N in round r")
    latency_fns = {w.key: make_cycling_inference(models[w.model], singles[w.key]) for w in latency_workloads}
    latency = interleaved_timings(latency_fns, args.latency_repeats, 1, sync, log)

    # STAR-128 on the 2-person batch is the costliest training run and has no bar: only with --full.
    train_workloads = [w for w in workloads if w.train and (args.full or w.key != "star_128/2person/packed")]
    phase(f"training, batch {args.batch}: {args.warmup} warm-up + {args.repeats} timed rounds")
    train_fns = {
        w.key: make_train_step(copy.deepcopy(models[w.model]), inputs[w.key], w.clips)
        for w in train_workloads
    }
    train = interleaved_timings(train_fns, args.repeats, args.warmup, sync, log)
    del train_fns

    memory: dict[str, int] = {}
    if not args.no_memory:
        phase("peak memory of one training step, fresh process per model")
        probes = [w for w in train_workloads if not args.quick or w.key == "star_64/ntu60/packed"]
        memory = measure_memory(probes, args)
    phase("done")

    results = {}
    for w in workloads:
        entry = {
            "model": w.model,
            "scenario": w.scenario,
            "input_format": w.input_format,
            "clips": w.clips,
            "frames_fed": w.frames_fed,
            "params": parameter_count(models[w.model]),
            "flops_per_clip": flops[w.key],
            "infer_seconds": infer[w.key],
            "infer_clips_per_s": w.clips / median(infer[w.key]),
        }
        if w.key in latency:
            entry["latency_seconds"] = latency[w.key]
            entry["latency_median_ms"] = 1000 * median(latency[w.key])
            entry["latency_p90_ms"] = 1000 * percentile(latency[w.key], 90)
        entry["infer_flops_per_s"] = flops[w.key] * entry["infer_clips_per_s"]
        if w.key in train:
            entry["train_seconds"] = train[w.key]
            entry["train_clips_per_s"] = w.clips / median(train[w.key])
            entry["train_flops_per_s"] = TRAIN_FLOPS_PER_FORWARD * flops[w.key] * entry["train_clips_per_s"]
        if w.key in memory:
            entry["peak_memory_bytes"] = memory[w.key]
        results[w.key] = entry
    info = machine_info(device)
    info["load_average_before"] = load_before
    return {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "probe"},
        "machine": info,
        "wall_seconds": time.perf_counter() - started,
        "contention": contention,
        "flop_convention": "FlopCounterMode: 2 FLOPs per multiply-add; GMACs = GFLOPs / 2",
        "matmul_peak_flops": peak_flops,
        "scenarios": {
            s.key: {"title": s.title, "persons": s.persons, "frames_per_person": s.frames}
            for s in scenarios.values()
        },
        "workloads": results,
        "ratios": compute_ratios(results, list(scenarios)),
    }


# ------------------------------------------------------------------------------------------ ratios


def paired_ratios(slow: list[float], fast: list[float]) -> list[float]:
    """Per-round speed-ups ``slow / fast`` (the rounds were interleaved, so each pair saw the same load)."""
    return [s / f for s, f in zip(slow, fast, strict=True)]


def ratio_entry(name: str, value: float, bar: float | None, rounds: list[float] | None = None) -> dict:
    entry: dict[str, object] = {"name": name, "value": value, "bar": bar}
    if bar is not None:
        entry["pass"] = value >= bar
    if rounds:
        entry["per_round_min"], entry["per_round_max"] = min(rounds), max(rounds)
    return entry


def speedup(results: dict, slow: str, fast: str, kind: str) -> tuple[float, list[float]] | None:
    """Throughput ratio fast / slow (clips per second) from the medians, and the per-round ratios;
    None where either was not measured."""
    key = f"{kind}_clips_per_s"
    if key not in results[fast] or key not in results[slow]:
        return None
    value = results[fast][key] / results[slow][key]
    # Per round: seconds per clip of slow over seconds per clip of fast.
    slow_per_clip = [t / results[slow]["clips"] for t in results[slow][f"{kind}_seconds"]]
    fast_per_clip = [t / results[fast]["clips"] for t in results[fast][f"{kind}_seconds"]]
    return value, paired_ratios(slow_per_clip, fast_per_clip)


def compute_ratios(results: dict, scenario_keys: list[str]) -> list[dict]:
    stgcn, star = results["stgcn"], results["star_64/ntu60/packed"]
    ratios = [ratio_entry("params ST-GCN / STAR-64", stgcn["params"] / star["params"], BARS["params"])]

    def add_speedup(name: str, slow: str, fast: str, kind: str, bar: float | None) -> None:
        found = speedup(results, slow, fast, kind)
        if found is not None:
            ratios.append(ratio_entry(name, found[0], bar, found[1]))

    for s in scenario_keys:
        packed = f"star_64/{s}/packed"
        for kind, label, bar in (
            ("infer", "inference", BARS["inference"]),
            ("train", "training", BARS["training"]),
        ):
            add_speedup(f"[{s}] {label} throughput STAR-64 / ST-GCN", "stgcn", packed, kind, bar)
            add_speedup(
                f"[{s}] {label} throughput STAR-128 / ST-GCN", "stgcn", f"star_128/{s}/packed", kind, None
            )
        for padded, label in (
            (f"star_64/{s}/padded-longest", "longest clip"),
            ("star_64/any/padded-600", "600"),
        ):
            name = f"[{s}] inference throughput STAR-64 packed / padded to {label}"
            add_speedup(name, padded, packed, "infer", BARS["packing"])
        star = results[packed]
        macs = stgcn["flops_per_clip"] / star["flops_per_clip"]
        ratios.append(ratio_entry(f"[{s}] GMACs per clip ST-GCN / STAR-64", macs, None))
        rounds = paired_ratios(stgcn["latency_seconds"], star["latency_seconds"])
        latency = stgcn["latency_median_ms"] / star["latency_median_ms"]
        ratios.append(ratio_entry(f"[{s}] batch-1 median latency ST-GCN / STAR-64", latency, None, rounds))
        if "peak_memory_bytes" in star and "peak_memory_bytes" in stgcn:
            memory = stgcn["peak_memory_bytes"] / star["peak_memory_bytes"]
            ratios.append(ratio_entry(f"[{s}] training peak memory ST-GCN / STAR-64", memory, None))
    # Issue 15: STAR-64 on the NTU mix against each ST-GCN, and lightact's ST-GCN against the authors'.
    baselines = [b for b in ("stgcn", "stgcn_authors") if b in results]
    for baseline in baselines:
        name = MODEL_NAMES[baseline]
        for kind, label in (("infer", "inference"), ("train", "training")):
            add_speedup(
                f"[issue 15] {label} throughput STAR-64 / {name}", baseline, "star_64/ntu60/packed",
                kind, FLOPS_BARS[kind],
            )  # fmt: skip
        star = results["star_64/ntu60/packed"]
        rounds = paired_ratios(results[baseline]["latency_seconds"], star["latency_seconds"])
        latency = results[baseline]["latency_median_ms"] / star["latency_median_ms"]
        name = f"[issue 15] batch-1 latency {name} / STAR-64"
        ratios.append(ratio_entry(name, latency, FLOPS_BARS["latency"], rounds))
    if len(baselines) == 2:
        ours, authors = results["stgcn"], results["stgcn_authors"]
        for kind, label in (("infer", "inference"), ("train", "training")):
            name = f"{label} throughput lightact ST-GCN / authors' ST-GCN"
            add_speedup(name, "stgcn_authors", "stgcn", kind, 1.0)
        rounds = paired_ratios(authors["latency_seconds"], ours["latency_seconds"])
        latency = authors["latency_median_ms"] / ours["latency_median_ms"]
        ratios.append(ratio_entry("batch-1 latency authors' ST-GCN / lightact ST-GCN", latency, 1.0, rounds))
    return ratios


# ------------------------------------------------------------------------------------------ report


def _fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def scenario_table(report: dict, scenario: str) -> str:
    peak = report["matmul_peak_flops"]

    def achieved(flops: float | None) -> list[str]:
        return ["—", "—"] if flops is None else [_fmt(flops / 1e9), f"{100 * flops / peak:.0f} %"]

    rows = []
    for entry in report["workloads"].values():
        if entry["scenario"] not in (scenario, "any"):
            continue
        memory = entry.get("peak_memory_bytes")
        rows.append(
            [
                MODEL_NAMES[entry["model"]],
                entry["input_format"],
                entry["frames_fed"],
                _fmt(entry["params"] / 1e6, 2),
                _fmt(entry["flops_per_clip"] / 1e9, 2),
                _fmt(entry["flops_per_clip"] / 2e9, 2),
                _fmt(entry["infer_clips_per_s"]),
                _fmt(entry.get("latency_median_ms")),
                _fmt(entry.get("latency_p90_ms")),
                _fmt(entry.get("train_clips_per_s"), 2),
                _fmt(None if memory is None else memory / 2**20, 0),
                *achieved(entry["infer_flops_per_s"]),
                *achieved(entry.get("train_flops_per_s")),
            ]
        )
    batch = report["args"]["batch"]
    headers = [
        "model",
        "input",
        "frames fed",
        "params (M)",
        "GFLOPs/clip",
        "GMACs/clip",
        f"infer clips/s (b{batch})",
        "b1 latency median (ms)",
        "b1 p90 (ms)",
        f"train clips/s (b{batch})",
        "train peak mem (MiB)",
        "infer GFLOP/s",
        "of peak",
        "train GFLOP/s",
        "of peak",
    ]
    return format_table(headers, rows)


def ratios_table(report: dict) -> str:
    rows = []
    for r in report["ratios"]:
        spread = f"{r['per_round_min']:.2f}–{r['per_round_max']:.2f}" if "per_round_min" in r else ""
        bar = f"≥ {r['bar']:g}" if r["bar"] is not None else "(info)"
        verdict = ("PASS" if r["pass"] else "FAIL") if "pass" in r else ""
        rows.append([r["name"], f"{r['value']:.2f}x", spread, bar, verdict])
    return format_table(["ratio", "value", "per-round range", "bar", "verdict"], rows)


def contention_note(contention: list[dict], threads: int) -> str:
    """One line on how contended the CPU was, from the parallel-region gauge taken at every phase."""
    costs = ", ".join(f"{c['region_us_threads']:.0f}" for c in contention)
    worst = max(contention, key=lambda c: c["region_us_threads"] / c["region_us_1_thread"])
    line = f"contention gauge: one parallel region at {threads} threads took {costs} us at the phase starts"
    if worst["region_us_threads"] > 10 * worst["region_us_1_thread"] and worst["region_us_threads"] > 100:
        line += (
            f" vs {worst['region_us_1_thread']:.0f} us at 1 thread. WARNING: other processes held the cores, "
            "so every multi-threaded op waited for a descheduled thread; small-op models (STAR, batch 1) "
            "suffer most. Rerun on a quiet machine or with --threads 1"
        )
    return line


def render(report: dict) -> str:
    m, a = report["machine"], report["args"]
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, {m['threads']} threads, "
        f"device {m['device']}{' (' + m['gpu'] + ')' if 'gpu' in m else ''}; "
        f"load average before {m['load_average_before']}, after {m['load_average_1_5_15']}",
        f"batch {a['batch']}, {a['repeats']} timed rounds after {a['warmup']} warm-up (latency: "
        f"{a['latency_repeats']}), interleaved; medians; run took {report['wall_seconds']:.0f} s",
        f"FLOPs: {report['flop_convention']} (matmuls, convolutions and attention only); "
        f"training {TRAIN_FLOPS_PER_FORWARD}x the forward's; matmul peak at {a['threads']} thread(s) "
        f"{report['matmul_peak_flops'] / 1e9:.1f} GFLOP/s (2048 x 2048 float32)",
        "'—': not measured (padded STAR: inference only; STAR-128 on the 2-person batch trains with --full)",
    ]
    if m["device"] == "cpu" and a["threads"] > 1:
        lines.append(contention_note(report["contention"], a["threads"]))
    for key, s in report["scenarios"].items():
        frames = s["frames_per_person"]
        pairs = sum(p == 2 for p in s["persons"])
        lines += [
            "",
            f"## scenario {key}: {s['title']}; {pairs}/{len(frames)} clips with 2 persons; "
            f"frames per person median {median(frames):.0f}, range {min(frames)}–{max(frames)}",
            "",
            scenario_table(report, key),
        ]
    lines += ["", "## ratios (throughput ratios are of medians; per-round range shows the noise)", ""]
    lines.append(ratios_table(report))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--batch", type=int, default=None, help="clips per batch (default 16; 2 with --quick)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 3; 1 with --quick)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed rounds first (default 1; 0 quick)")
    parser.add_argument(
        "--latency-repeats", type=int, default=None, help="timed batch-1 rounds (default 10; 1 with --quick)"
    )
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[2], help="torch intra-op threads; several: one run each"
    )
    parser.add_argument(
        "--authors-stgcn", type=Path, default=None, metavar="DIR",
        help="a checkout of yysijie/st-gcn: also time the authors' ST-GCN",
    )  # fmt: skip
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: batch 2, single rounds, 1 memory probe"
    )
    parser.add_argument(
        "--full", action="store_true", help="also train STAR-128 on the 2-person batch (slow, no bar)"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the per-model memory subprocesses")
    parser.add_argument("--json", type=Path, default=None, help="also write the full results here")
    parser.add_argument("--probe", default=None, help=argparse.SUPPRESS)  # internal: memory child process
    args = parser.parse_args(argv)
    if args.probe is not None:
        args.threads = args.threads[0]
    defaults = {"batch": (16, 2), "repeats": (3, 1), "warmup": (1, 0), "latency_repeats": (10, 1)}
    for name, (normal, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else normal)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.probe is not None:
        memory_probe(args)
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    reports = []
    for threads in args.threads:
        run_args = argparse.Namespace(**{**vars(args), "threads": threads})
        torch.set_num_threads(threads)
        reports.append(run_benchmark(run_args))
        print(f"# {threads} thread(s)\n\n{render(reports[-1])}\n", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(reports if len(reports) > 1 else reports[0], indent=2))
        log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
