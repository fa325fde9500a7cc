"""The environment block every report carries, and the dense matmul calibration.

Numbers from different machines, thread counts or library versions are not comparable; the block
records what they depend on. The calibration times fp32 square matrix products at the benchmark's
thread count and keeps the best rate: an achievable dense peak for *this* machine, so that each
model's achieved FLOP/s can be shown as a fraction of what the hardware does on the friendliest
possible workload (a practical roofline, not the vendor's theoretical peak).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata

import torch

from lightact.utils import available_cores


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def device_sync(device: torch.device) -> Callable[[], None]:
    """A function that waits for the device's queued work (a no-op on CPU): what a timer calls
    before reading the clock."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _compiler() -> str | None:
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if not cxx:
        return None
    try:
        out = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=10).stdout
        return out.splitlines()[0].strip() if out else cxx
    except (OSError, subprocess.SubprocessError):
        return cxx


@dataclass(frozen=True)
class Calibration:
    """Best and median dense fp32 matmul rate, in FLOP/s (a multiply-add counted as 2)."""

    size: int
    peak_flops: float
    median_flops: float
    calls: int
    device: str
    threads: int

    def as_dict(self) -> dict:
        d = asdict(self)
        d["peak_gflops"] = self.peak_flops / 1e9
        return d


def calibrate_matmul(
    device: torch.device | str = "cpu", size: int | None = None, seconds: float = 2.0
) -> Calibration:
    """Time ``size x size`` fp32 matmuls for about ``seconds``; keep the fastest and the median."""
    device = torch.device(device)
    size = size or (4096 if device.type == "cuda" else 1024)
    g = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(size, size, generator=g).to(device)
    b = torch.randn(size, size, generator=g).to(device)
    out = torch.empty(size, size, device=device)
    sync = device_sync(device)
    flops = 2.0 * size**3
    previous_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # the models run in true fp32 too
    try:
        for _ in range(2):
            torch.mm(a, b, out=out)
        sync()
        rates: list[float] = []
        start = time.perf_counter()
        while len(rates) < 5 or (time.perf_counter() - start < seconds and len(rates) < 200):
            t0 = time.perf_counter()
            torch.mm(a, b, out=out)
            sync()
            rates.append(flops / (time.perf_counter() - t0))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous_tf32
    rates.sort()
    return Calibration(
        size=size,
        peak_flops=rates[-1],
        median_flops=rates[len(rates) // 2],
        calls=len(rates),
        device=str(device),
        threads=torch.get_num_threads(),
    )


def environment(device: torch.device | str = "cpu") -> dict:
    """CPU, cores, threads, library versions, device and load: what a measurement depends on."""
    device = torch.device(device)
    env: dict = {
        "cpu": cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_available": available_cores(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "device": str(device),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "timm": _version("timm"),
        "onnx": _version("onnx"),
        "onnxruntime": _version("onnxruntime") or _version("onnxruntime-gpu"),
        "numpy": _version("numpy"),
        "cxx_compiler": _compiler(),
        "mkldnn": torch.backends.mkldnn.is_available(),
    }
    try:
        env["load_average_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        env["load_average_1_5_15"] = None
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
    return env
