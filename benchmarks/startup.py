"""Start-up time of the command line: `lightact --help` and `lightact train -h`, ours against the
code before the lazy imports of issue 17, in fresh processes.

The baseline is the package source of a git ref (default ``14480cd``, main before issue 17, when
``import lightact`` imported Lightning), unpacked into a temporary folder and run with the same
interpreter and the same installed dependencies; ``python -c "import lightning"`` and
``python -c "import typer, rich.console"`` are timed beside them as the old floor and the new one.
Every round runs each command once (interleaved, so load hits all alike); the medians and the
ratios baseline / ours are printed, with the machine's load before and after.

    python benchmarks/startup.py                  # 5 rounds, baseline 14480cd
    python benchmarks/startup.py --rounds 9 --baseline main
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import interleaved_timings, median

ROOT = Path(__file__).resolve().parents[1]
# Runs lightact's entry point as the console script does, with sys.argv[1:] as its arguments.
ENTRY = "import sys; sys.argv[0] = 'lightact'; from lightact.cli import main; main()"


def baseline_source(ref: str, into: Path) -> Path:
    """The ``src`` folder of ``ref``, unpacked under ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


def command(src: Path | None, argv: list[str]):
    """Runs ``lightact ARGV`` from ``src`` in a new process (``src`` None: ``python -c ARGV[0]``)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if src is not None:
        env["PYTHONPATH"] = str(src)
        args = [sys.executable, "-c", ENTRY, *argv]
    else:
        args = [sys.executable, "-c", argv[0]]

    def run() -> None:
        done = subprocess.run(args, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{args} failed: {done.stderr[-500:]}")

    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default 5); one more warms up")
    parser.add_argument("--baseline", default="14480cd", help="git ref of the code before (default 14480cd)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        old = baseline_source(args.baseline, Path(tmp))
        ours = ROOT / "src"
        fns = {
            "ours: lightact --help": command(ours, ["--help"]),
            f"{args.baseline}: lightact --help": command(old, ["--help"]),
            "ours: lightact train -h": command(ours, ["train", "-h"]),
            # -h did not exist before: the old code's train --help is the same work.
            f"{args.baseline}: lightact train --help": command(old, ["train", "--help"]),
            "import lightning": command(None, ["import lightning"]),
            "import typer, rich.console": command(None, ["import typer, rich.console"]),
        }
        load_before = os.getloadavg()
        times = interleaved_timings(fns, repeats=args.rounds, warmup=1)
        load_after = os.getloadavg()

    medians = {name: median(t) for name, t in times.items()}
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {args.rounds} rounds (+1 warm-up)")
    print(f"load average 1/5/15 min: before {load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f}, "
          f"after {load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f}")  # fmt: skip
    width = max(map(len, medians))
    for name, value in medians.items():
        spread = f"{min(times[name]):.2f}-{max(times[name]):.2f}"
        print(f"  {name:<{width}}  median {value:6.2f} s  (range {spread} s)")
    for ours_name, old_name in (
        ("ours: lightact --help", f"{args.baseline}: lightact --help"),
        ("ours: lightact train -h", f"{args.baseline}: lightact train --help"),
    ):
        ratio = medians[old_name] / medians[ours_name]
        before = medians[old_name]
        print(f"{ours_name[6:]}: {medians[ours_name]:.2f} s vs {before:.2f} s before: {ratio:.1f}x faster")


if __name__ == "__main__":
    main()
