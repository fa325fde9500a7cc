"""Load on `lightact serve`: N concurrent clients on loopback for a bounded time.

Starts ``lightact serve WORK_DIR`` as a subprocess on a free loopback port, waits for ``/health``,
then runs ``--clients`` threads that each post the same small file to ``POST /predict`` as fast as
answers come back (a 429 is retried after 50 ms), for ``--warmup`` seconds not counted (caches
filling) and then ``--seconds`` measured. Reports answered requests per second, latency p50/p95 (of
the 200s, and of every answer), status counts (429, the intended "busy" answer, apart from
errors: anything else, or a failed connection), and the server process's resident memory sampled
every second (the mean of the first 10 s against the last 10 s: growth means something is kept
per request). The default file is one annotation of the embedded synthetic skeleton set as a
pickle (``--file`` takes any file, ``--video`` a video, e.g. from ../shared/data/videos).

There is no baseline to divide by: the figures are the server's own, with the machine's load
beside them (the clients share the machine with the server).

    python benchmarks/serve_load.py WORK_DIR [--clients 8] [--seconds 60] [--workers 2] [--queue 4]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pickle
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from lightact.bench.protocol import quantile


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def skeleton_file(folder: Path) -> Path:
    """One sample of the embedded synthetic skeleton set (NTU-25 layout), as an annotation pickle."""
    from lightact.data.synthetic.skeleton import generate_skeleton_dataset

    data = generate_skeleton_dataset(samples_per_class=1, seed=0, val_fraction=0.0)
    path = folder / "sample.pkl"
    path.write_bytes(pickle.dumps(data["annotations"][0], protocol=4))
    return path


def start_server(work_dir: Path, port: int, args: argparse.Namespace, log: Path) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "lightact.cli", "serve", str(work_dir), "--port", str(port),
        "--workers", str(args.workers), "--queue", str(args.queue), "--threads", "1",
        "--timeout", str(args.timeout),
    ]  # fmt: skip
    # The server's output goes to a file: a pipe nobody reads would block it once full.
    with open(log, "w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    end = time.monotonic() + 120
    while time.monotonic() < end:
        if server.poll() is not None:
            raise SystemExit(f"the server exited: {log.read_text().strip()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not answer /health within 120 s")


def run_clients(
    url: str, model: str, file: Path, clients: int, t0: float, seconds: float, form: dict
) -> list[tuple]:
    """Each client posts ``file`` until ``t0 + seconds``; returns (start offset, latency, status)."""
    data = file.read_bytes()
    records: list[tuple] = []
    lock = threading.Lock()
    deadline = t0 + seconds

    def client() -> None:
        with httpx.Client(timeout=300) as http:
            while time.monotonic() < deadline:
                start = time.monotonic()
                try:
                    response = http.post(
                        f"{url}/predict",
                        data={"model": model, **form},
                        files={"file": (file.name, data, "application/octet-stream")},
                    )
                    status: int | str = response.status_code
                    if status == 429:
                        time.sleep(0.05)  # what a polite client does with "busy"
                except httpx.HTTPError as err:
                    status = type(err).__name__
                with lock:
                    records.append((start - t0, time.monotonic() - start, status))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0, help="measured, after the warm-up")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds of load before measuring")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--queue", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--file", type=Path, help="the file every client posts (default: a skeleton pickle)")
    parser.add_argument("--video", type=Path, help="post this video instead (rendered: render=true)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        file = args.video or args.file or skeleton_file(Path(tmp))
        form = {"render": "true" if args.video else "false"}
        port = free_port()
        uptime_before = os.getloadavg()
        server = start_server(args.work_dir, port, args, Path(tmp) / "server.log")
        try:
            url = f"http://127.0.0.1:{port}"
            model = httpx.get(f"{url}/models").json()["models"][0]["name"]
            samples: list[tuple[float, float]] = []
            stop = threading.Event()
            idle = rss_mib(server.pid)
            t0 = time.monotonic()

            def sample_memory() -> None:
                while not stop.is_set():
                    value = rss_mib(server.pid)
                    if value is not None:
                        samples.append((time.monotonic() - t0, value))
                    stop.wait(1.0)

            sampler = threading.Thread(target=sample_memory)
            sampler.start()
            records = run_clients(url, model, file, args.clients, t0, args.warmup + args.seconds, form)
            stop.set()
            sampler.join()
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
        # The warm-up fills caches (fonts, allocator arenas, the first results); measured after it.
        records = [(t - args.warmup, *rest) for t, *rest in records if t >= args.warmup]
        samples = [(t - args.warmup, m) for t, m in samples if t >= args.warmup]
        report = summarise(records, samples, args, file, uptime_before, os.getloadavg())
        report["server_rss_mib"]["idle_before_load"] = round(idle, 1) if idle else None
        report["server_log_tail"] = (Path(tmp) / "server.log").read_text()[-2000:]
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def summarise(records, samples, args, file, load_before, load_after) -> dict:
    statuses = collections.Counter(str(r[2]) for r in records)
    ok = sorted(r[1] for r in records if r[2] == 200)
    every = sorted(r[1] for r in records)
    errors = sum(n for s, n in statuses.items() if s not in ("200", "429"))
    memory = [m for _, m in samples]
    first = [m for t, m in samples if t < 10]
    last = [m for t, m in samples if t > samples[-1][0] - 10] if samples else []
    first_mean = statistics.mean(first) if first else float("nan")
    last_mean = statistics.mean(last) if last else float("nan")
    return {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "file": file.name,
        "file_bytes": file.stat().st_size,
        "clients": args.clients,
        "seconds": args.seconds,
        "warmup_seconds": args.warmup,
        "workers": args.workers,
        "queue": args.queue,
        "requests": len(records),
        "answered_200_per_s": round(len(ok) / args.seconds, 2),
        "status_counts": dict(statuses),
        "busy_429": statuses.get("429", 0),
        "errors": errors,
        "latency_200_s": {"p50": _q(ok, 0.5), "p95": _q(ok, 0.95), "max": round(ok[-1], 3) if ok else None},
        "latency_all_s": {"p50": _q(every, 0.5), "p95": _q(every, 0.95)},
        "server_rss_mib": {
            "first_10s_mean": round(first_mean, 1),
            "last_10s_mean": round(last_mean, 1),
            "growth": round(last_mean - first_mean, 1),
            "trend_mib_per_min": _slope_per_minute(samples),
            "min": round(min(memory), 1) if memory else None,
            "max": round(max(memory), 1) if memory else None,
            "samples": len(memory),
            "every_5s": [round(m, 1) for t, m in samples[::5]],
        },
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "cores": os.cpu_count(),
    }


def _slope_per_minute(samples: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of resident memory over the measured time, MiB per minute."""
    if len(samples) < 2:
        return None
    times, values = zip(*samples, strict=True)
    return round(statistics.linear_regression(times, values).slope * 60, 2)


def _q(values: list[float], q: float) -> float | None:
    return round(quantile(values, q), 3) if values else None


if __name__ == "__main__":
    main()
