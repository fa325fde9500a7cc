"""The benchmark's counting, statistics and reports, and a smoke run of `lightact bench`."""

import csv
import json
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from lightact.bench.flops import count_flops, count_model_flops, count_parameters
from lightact.bench.memory import cpu_peak
from lightact.bench.models import (
    ATTENTION_ONLY,
    COMPOSITE,
    DEFAULT_MODELS,
    STANDALONE,
    BenchModel,
    parse_shape,
    resolve,
    timm_class,
)
from lightact.bench.protocol import BenchSpec, Stats, Timing, measure, quantile
from lightact.bench.report import markdown, pareto_front, read_accuracies, write_reports
from lightact.cli import app
from lightact.models.registry import model_entry


def test_linear_flops_are_exact():
    layer = nn.Linear(8, 4)
    count = count_model_flops(layer, (torch.randn(3, 8),))
    assert count.flops == 2 * 3 * 8 * 4  # torch: a multiply-add is two FLOPs; the bias is not counted
    assert count.macs == 3 * 8 * 4  # fvcore / papers convention


@pytest.mark.parametrize("stride", [1, 2])
def test_conv2d_flops_are_exact(stride):
    conv = nn.Conv2d(3, 5, kernel_size=3, stride=stride, padding=1)
    x = torch.randn(2, 3, 8, 8)
    out = conv(x)
    count = count_model_flops(conv, (x,))
    assert count.macs == out.numel() * 3 * 3 * 3  # every output element: C_in x k x k multiply-adds
    assert count.flops == 2 * count.macs


def test_conv3d_and_matmul_flops_add_up():
    conv = nn.Conv3d(2, 4, kernel_size=(3, 1, 1))
    x = torch.randn(1, 2, 5, 4, 4)
    a, b = torch.randn(6, 7), torch.randn(7, 3)
    count = count_flops(lambda: (conv(x), a @ b))
    assert count.macs == conv(x).numel() * 2 * 3 + 6 * 7 * 3
    assert set(count.by_operator) >= {"convolution", "mm"}


def test_multiply_adds_match_torchvisions_published_figure():
    # torchvision states r3d_18's cost as 40.697 G "ops" at 16 x 112 x 112: multiply-adds.
    from torchvision.models.video import R3D_18_Weights

    bench = resolve("tv/r3d_18")
    assert bench.sample_shape == (3, 16, 112, 112)
    count = count_model_flops(bench.module, bench.inputs(1))
    assert count.gmacs == pytest.approx(R3D_18_Weights.KINETICS400_V1.meta["_ops"], rel=0.005)
    assert count_parameters(bench.module) == R3D_18_Weights.KINETICS400_V1.meta["num_params"]


def test_tied_parameters_count_once():
    a = nn.Linear(4, 4)
    model = nn.Sequential(a, nn.ReLU(), a)
    assert count_parameters(model) == 20


def test_robust_statistics():
    stats = Stats.of([float(v) for v in [10, 1, 9, 2, 8, 3, 7, 4, 6, 5]])
    assert stats.median == 5.5
    assert stats.p90 == pytest.approx(9.1)
    assert (stats.q1, stats.q3) == (pytest.approx(3.25), pytest.approx(7.75))
    assert stats.spread == pytest.approx(4.5 / 5.5)
    assert quantile([2.0], 0.9) == 2.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_measure_respects_counts_and_budget():
    clock = FakeClock()

    def call():  # every call "takes" one second
        clock.now += 1.0

    generous = measure(call, BenchSpec(warmup=3, repeats=10, min_repeats=3, budget_s=1e6), clock=clock)
    assert generous.warmup_done == 3 and len(generous.samples) == 10
    assert generous.samples == [1.0] * 10 and generous.first_call_s == 1.0

    # Fast calls are timed for at least min_time_s, warm-up lasts at least warmup_s.
    slow = BenchSpec(warmup=3, repeats=10, budget_s=1e6, warmup_s=6.0, min_time_s=25.0, max_repeats=100)
    longer = measure(call, slow, clock=clock)
    assert longer.warmup_done == 7 and len(longer.samples) == 25

    tight = measure(call, BenchSpec(warmup=3, repeats=10, min_repeats=3, budget_s=3.0), clock=clock)
    assert 1 <= tight.warmup_done <= 3
    assert len(tight.samples) == 3  # the budget is spent: only the minimum number of timed calls


def test_collecting_garbage_is_not_timed(monkeypatch):
    clock = FakeClock()

    def slow_collect():  # a full collection with many models loaded takes a while
        clock.now += 1.0

    def call():
        clock.now += 1.0

    monkeypatch.setattr("lightact.bench.protocol.gc.collect", slow_collect)
    spec = BenchSpec(warmup=0, repeats=1, min_repeats=1, budget_s=1e6, min_time_s=3.0)
    assert len(measure(call, spec, clock=clock).samples) == 3


def test_bench_spec_rejects_nonsense():
    with pytest.raises(ValueError):
        BenchSpec(repeats=2, min_repeats=3)
    with pytest.raises(ValueError, match="rounds"):
        BenchSpec(rounds=0)


def test_rounds_share_the_counts_and_pool_the_samples():
    spec = BenchSpec(warmup=3, repeats=10, min_repeats=3, budget_s=9, warmup_s=0.5, min_time_s=3, rounds=3)
    one_round = BenchSpec(warmup=1, repeats=3, min_repeats=1, budget_s=1e6, warmup_s=0.0, min_time_s=0.0)
    first, later = spec.for_round(0), spec.for_round(2)
    assert (first.warmup, first.warmup_s, later.warmup, later.warmup_s) == (3, 0.5, 1, 0.0)
    for part in (first, later):
        assert (part.repeats, part.min_repeats, part.rounds, part.max_repeats) == (4, 1, 1, 34)
        assert part.budget_s == pytest.approx(3.0) and part.min_time_s == pytest.approx(1.0)
    assert BenchSpec(rounds=1).for_round(0) == BenchSpec(rounds=1)

    clock = FakeClock()
    pooled = Timing(warmup_done=0)
    for seconds in (1.0, 2.0, 1.0):  # the middle round ran while the machine was twice as slow

        def call(step=seconds):
            clock.now += step

        pooled.add_round(measure(call, one_round, clock=clock))
    assert pooled.samples == [1.0] * 3 + [2.0] * 3 + [1.0] * 3 and pooled.warmup_done == 3
    assert pooled.round_medians == [1.0, 2.0, 1.0]
    assert pooled.stats.median == 1.0  # the slow round does not move the pooled median
    assert pooled.drift == pytest.approx(1.0)  # but it is reported
    assert Timing(warmup_done=0, samples=[1.0]).drift is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_cpu_peak_memory_sees_a_transient_allocation():
    def allocate():
        x = torch.ones(16 * 2**20)  # 64 MiB, freed before the call returns
        return float(x[0])

    peak = cpu_peak(allocate)
    assert 60 <= peak.mib <= 80, peak


def test_pareto_front():
    points = [(10.0, 0.70), (5.0, 0.60), (20.0, 0.65), (30.0, 0.80), (5.0, 0.55)]
    assert pareto_front(points) == [1, 0, 3]


def test_model_names_resolve_with_canonical_inputs():
    star = resolve("star_64")
    x, clip_ids = star.inputs(3)
    assert x.shape == (600, 25, 9) and clip_ids.tolist() == [0] * 200 + [1] * 200 + [2] * 200
    ((padded, lengths),) = star.onnx_calls(star.inputs(3))  # one call: padded clips and their lengths
    assert padded.shape == (3, 200, 25, 9) and lengths.tolist() == [200, 200, 200]
    assert resolve("stgcn").inputs(1)[0].shape == (1, 3, 300, 25, 2)
    assert resolve("timm/test_vit").inputs(2)[0].shape == (2, 3, 160, 160)
    assert resolve("star_64", shape=(50, 25, 9)).inputs(2)[0].shape == (100, 25, 9)
    assert parse_shape("3x8x112x112") == (3, 8, 112, 112)
    with pytest.raises(ValueError):
        parse_shape("3xAx4")


def test_default_set_has_two_models_of_each_class():
    classes = {}
    for name in DEFAULT_MODELS:
        if name.startswith("timm/"):
            label = timm_class(name[5:])
        elif name.startswith("tv/"):
            from lightact.bench.models import TORCHVISION_VIDEO

            label = TORCHVISION_VIDEO[name[3:]][0]
        else:
            label = model_entry(name).spec.efficiency_class
        classes.setdefault(label, []).append(name)
    assert len(DEFAULT_MODELS) >= 10
    for label in (COMPOSITE, ATTENTION_ONLY, STANDALONE):
        assert len(classes.get(label, [])) >= 2, (label, classes)


def _fake_result():
    base = {"class": COMPOSITE, "input": "clip", "params_m": 1.0, "gflops": 2.0, "gmacs": 1.0, "status": "ok"}
    rows = []
    for model, ms in (("a", 10.0), ("b", 20.0)):
        for backend, k in (("eager", 1.0), ("onnxruntime", 0.8)):
            rows.append(
                {**base, "model": model, "backend": backend, "batch": 1, "latency_ms_median": ms * k,
                 "latency_ms_p90": ms * k * 1.1, "spread_pct": 3.0, "warmup_runs": 3, "timed_runs": 10,
                 "throughput_per_s": 1000 / (ms * k), "peak_mem_mib": 12.5, "other_load": 0.5}
            )  # fmt: skip
    rows.append({"model": "c", "backend": "compile", "batch": 1, "status": "failed", "error": "no compiler"})
    env = {"cpu": "Test CPU", "torch": torch.__version__, "cores_available": 2, "torch_threads": 2}
    cal = {"size": 64, "peak_flops": 1e10, "median_flops": 9e9, "calls": 5, "threads": 2, "peak_gflops": 10.0}
    return {"environment": env, "calibration": cal, "protocol": {"warmup": 3, "repeats": 10}, "rows": rows}


def test_reports_carry_environment_rows_and_failures(tmp_path):
    accuracy = tmp_path / "acc.csv"
    accuracy.write_text("model,accuracy\na,0.7\nb,0.8\n")
    written = write_reports(_fake_result(), tmp_path, accuracies=accuracy)
    assert {"json", "csv", "markdown", "latency_png", "pareto_png"} <= set(written)
    data = json.loads(written["json"].read_text())
    assert data["environment"]["cpu"] == "Test CPU" and len(data["rows"]) == 5
    with written["csv"].open() as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["env_cpu"] == "Test CPU" and rows[0]["latency_ms_median"] == "10.0"
    text = written["markdown"].read_text()
    assert "| a | composite | clip | eager | 1 |" in text
    assert "c / compile: no compiler" in text and "other processes used more than 0.25 cores" in text
    assert read_accuracies(accuracy) == {"a": 0.7, "b": 0.8}
    for png in ("latency_png", "pareto_png"):
        assert written[png].read_bytes()[:4] == b"\x89PNG"
    assert "GMACs" in markdown(_fake_result())


def _count_exports(monkeypatch) -> list[str]:
    """The file names :func:`export_onnx` writes from now on, in order."""
    import lightact.export.onnx as onnx_export

    written, export = [], onnx_export.export_onnx

    def counted(module, example, path, **kwargs):
        written.append(Path(path).name)
        return export(module, example, path, **kwargs)

    monkeypatch.setattr(onnx_export, "export_onnx", counted)
    return written


def test_cli_smoke_two_tiny_models_two_backends(tmp_path, monkeypatch):
    out = tmp_path / "bench"
    exported = _count_exports(monkeypatch)
    args = [
        "bench", "star_64", "timm/test_vit", "--shape", "star_64=24x25x9",
        "--backend", "eager", "onnxruntime", "onnxruntime-int8", "--batch", "1", "2",
        "--warmup", "1", "--repeats", "2", "--min-repeats", "1", "--budget", "0.5",
        "--warmup-time", "0", "--min-time", "0", "--rounds", "2",
        "--threads", "1", "--no-calibrate", "--out", str(out),
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    with (out / "bench.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12, rows
    assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows]
    assert {(r["model"], r["backend"]) for r in rows} == {
        (m, b) for m in ("star_64", "timm/test_vit") for b in ("eager", "onnxruntime", "onnxruntime-int8")
    }
    assert all("int8 dynamic quantization" in r["note"] for r in rows if r["backend"] == "onnxruntime-int8")
    assert all(float(r["latency_ms_median"]) > 0 and float(r["gflops"]) > 0 for r in rows)
    assert all(r["rounds"] == "2" and float(r["round_drift_pct"]) >= 0 for r in rows)
    assert [r["model"] for r in rows[:6]] == ["star_64"] * 6  # the order asked for, not the timing order
    assert (out / "bench.md").is_file() and (out / "latency_by_backend.png").is_file()
    assert (out / "onnx" / "star_64.onnx").is_file()
    # The int8 backend quantizes the file the float backend runs: one export per model.
    assert exported == ["star_64.onnx", "timm__test_vit.onnx"]


def test_a_model_without_a_dynamic_batch_is_exported_once_per_batch_size_for_both_backends(
    tmp_path, monkeypatch
):
    import lightact.export.onnx as onnx_export
    from lightact.bench.runner import _prepare_model
    from lightact.models.spec import NotExportable

    exported = _count_exports(monkeypatch)
    count_and_export = onnx_export.export_onnx

    def no_dynamic_batch(module, example, path, **kwargs):
        if kwargs.get("input_axes"):
            raise NotExportable("a reshape fixes the batch size")
        return count_and_export(module, example, path, **kwargs)

    monkeypatch.setattr(onnx_export, "export_onnx", no_dynamic_batch)
    torch.manual_seed(0)
    linear = nn.Linear(4, 3)
    bench = BenchModel(
        "linear", linear, "lightact", "Linear", "skeleton", (4,), "x", lambda b: (torch.randn(b, 4),), linear
    )
    rows, jobs = _prepare_model(
        bench, ["onnxruntime", "onnxruntime-int8"], [1, 3], torch.device("cpu"), 1, tmp_path, print
    )
    assert [r.get("status") for r in rows] == [None] * 4, rows
    assert exported == ["linear_b1.onnx", "linear_b3.onnx"]  # twice, not four times
    for job in jobs:
        assert "static-shape export per batch size" in job.runner.note
        (logits,) = job.fn()[0]
        assert logits.shape == (job.batch, 3)
    assert "int8 dynamic quantization" in jobs[-1].runner.note
    assert all(r["setup_s"] > 0 for r in rows)
