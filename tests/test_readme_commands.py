"""Every command in README.md, run verbatim in a fresh virtual environment, in an empty folder
outside the repository.

The environment, and what it proves:

* The package files (``pyproject.toml``, ``README.md``, ``LICENSE``, ``src/``) are copied to a
  temporary folder and built into a wheel there (``pip wheel --no-deps --no-build-isolation``):
  what a user installs, not the source tree. Configs that the wheel did not ship would make every
  command that names one fail.
* ``python -m venv --without-pip`` makes a new environment (no system site-packages) and that wheel
  is the only thing installed into it (``pip --python VENV install --no-deps --no-index``), so
  ``lightact`` and its ``lightact`` script come from the wheel alone.
* Its dependencies are the ones of the environment running this test (CI's ``.venv``), seen
  through one ``.pth`` file naming a folder of links to that environment's site-packages entries,
  lightact's own left out (its editable finder and dist-info), so the repository's source cannot
  leak in. Downloading torch and its CUDA wheels again (2.5 GB, minutes) would test PyPI and the
  network rather than lightact; instead ``pip check`` in the new environment checks that those
  dependencies satisfy the wheel's declared requirements, the floors included.
* Commands run with the new environment's ``bin`` first on PATH, without PYTHONPATH, in an empty
  temporary folder that is not below the repository.

What it does not prove: that pip resolves and downloads the dependencies from PyPI (README's
install section records a real install's size and time).

Which commands: every line of README's ``bash`` blocks (split at ``&&``; the setup steps, making
and activating the environment and ``pip install``, are what the fixture did; ``python -m pytest``
is this suite) and every inline ``lightact ...`` span without a placeholder (an upper-case word,
``...``, ``[`` or ``|`` marks a synopsis), in README order, each distinct command once; ``python``
blocks run as scripts. Slow commands get tiny settings appended (:data:`TINY`); the inputs that
stand for the user's files (``my_video.mp4``, the NTU raw files) are made first: a real clip from
``../shared/data`` (commands that need it are skipped, with the reason, when it is absent) and
synthetic NTU skeleton files. A README command this test does not know fails it, so a new command
in the README comes with its tiny settings here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SHARED_VIDEO = ROOT.parent / "shared" / "data" / "videos" / "ntu120_hugging.avi"

pytestmark = pytest.mark.slow

SETUP = ("python3 -m venv ", ". .venv/bin/activate", "pip install ")
NOT_RUN = {"python -m pytest -q": "the test suite itself: .ci/run runs it"}
_THREADS = ["trainer.num_threads=1", "trainer.progress_bar=false"]
_STAR = ["model.dim=16", "model.depth=1", "model.heads=2", "data.batch_size=8", "trainer.max_epochs=1"]
# Appended to commands that start with the key (the longest key that matches): the same work on
# tiny data, one epoch, one thread.
TINY: dict[str, list[str]] = {
    "lightact train": ["--set", *_STAR, "data.synth.samples_per_class=4", *_THREADS],
    "lightact train work_dirs/star_synth/config.yaml": ["--set", *_THREADS],
    "lightact train star_ntu60_xsub": ["--set", *_STAR, "data.num_workers=0", *_THREADS],
    "lightact train pst_xs_synth": [
        "--set", "data.synth.samples_per_class=2", "data.batch_size=16", "trainer.max_epochs=1",
        "trainer.check_val_every_n_epoch=1", *_THREADS,
    ],
    "lightact train convnext_atto_synthimage": [
        "--set", "data.synth.samples_per_class=3", "data.batch_size=16", "trainer.max_epochs=1", *_THREADS,
    ],
    "lightact train kd_vit_synthimage": [
        "--set", "data.synth.samples_per_class=3", "data.batch_size=16", "trainer.max_epochs=1",
        "distill.cache_views=1", *_THREADS,
    ],
    "lightact train stan_synthlong": [
        "--set", "data.synth.videos_per_class=2", "data.synth.duration_s=48", "data.batch_size=4",
        "trainer.max_epochs=1", *_THREADS,
    ],
    "lightact bench": [
        "--warmup", "1", "--warmup-time", "0", "--repeats", "2", "--min-repeats", "1", "--min-time", "0",
        "--max-repeats", "2", "--rounds", "1", "--busy-retries", "0", "--no-calibrate",
    ],
}  # fmt: skip
# Commands that read the stand-in for the user's video.
NEEDS_VIDEO = ("my_video.mp4", "my_videos/")


def _strip_comment(line: str) -> str:
    return re.split(r"\s#\s|\s#$", line, maxsplit=1)[0].strip()


def _is_synopsis(command: str) -> bool:
    return bool(re.search(r"\b[A-Z][A-Z_]{2,}\b|\.\.\.|\[|\|", command))


def readme_steps(text: str) -> list[tuple[str, str]]:
    """``(kind, text)`` in README order: ``("shell", command)``, ``("setup", command)``,
    ``("python", script)``; each distinct command once."""
    steps: list[tuple[str, str]] = []
    position = 0
    for fence in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M):
        for span in re.findall(r"`(lightact [^`]+)`", text[position : fence.start()].replace("\n", " ")):
            command = " ".join(span.split())
            if not _is_synopsis(command):
                steps.append(("shell", command))
        language, body = fence.group(1), fence.group(2)
        if language == "bash":
            for line in body.splitlines():
                for part in _strip_comment(line).split("&&"):
                    part = part.strip()
                    if part:
                        steps.append(("setup" if part.startswith(SETUP) else "shell", part))
        elif language == "python":
            steps.append(("python", body))
        position = fence.end()
    for span in re.findall(r"`(lightact [^`]+)`", text[position:].replace("\n", " ")):
        command = " ".join(span.split())
        if not _is_synopsis(command):
            steps.append(("shell", command))
    return list(dict.fromkeys(steps))


def tiny_arguments(command: str) -> list[str]:
    keys = [k for k in TINY if command == k or command.startswith(k + " ")]
    return TINY[max(keys, key=len)] if keys else []


def test_readme_steps_are_read_as_written():
    text = (
        "Run `lightact models` or `lightact train CONFIG`.\n```bash\npython3 -m venv .venv && "
        "lightact train   # quick\nlightact eval work_dirs/x --dump a.csv\n```\n```text\nlightact x\n```\n"
        "then `lightact\ntrain pst_xs_synth` and `lightact models` again.\n"
    )
    assert readme_steps(text) == [
        ("shell", "lightact models"),
        ("setup", "python3 -m venv .venv"),
        ("shell", "lightact train"),
        ("shell", "lightact eval work_dirs/x --dump a.csv"),
        ("shell", "lightact train pst_xs_synth"),
    ]
    assert tiny_arguments("lightact train pst_xs_synth")[-4:-2] == TINY["lightact train pst_xs_synth"][-4:-2]
    assert tiny_arguments("lightact train") == TINY["lightact train"]
    assert tiny_arguments("lightact configs") == []


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory) -> Path:
    """A new virtual environment holding lightact's wheel (see the module docstring)."""
    base = tmp_path_factory.mktemp("fresh_install")
    source = base / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(base / "wheel"), str(source)],
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = (base / "wheel").glob("lightact-*.whl")
    venv = base / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    site = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    )
    links = base / "dependencies"
    links.mkdir()
    ours = {Path(sysconfig.get_paths()[k]) for k in ("purelib", "platlib")}
    for directory in ours:
        for entry in directory.iterdir():
            if entry.name.startswith(("lightact", "__editable__")) or entry.suffix == ".pth":
                continue
            if entry.name != "__pycache__" and not (links / entry.name).exists():
                (links / entry.name).symlink_to(entry)
    (site / "ci_dependencies.pth").write_text(f"{links}\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    installed = _run([*pip, "install", "--no-deps", "--no-index", "-q", str(wheel)])
    assert installed.returncode == 0, installed.stderr
    checked = _run([*pip, "check"])
    assert checked.returncode == 0, checked.stdout + checked.stderr  # the floors hold
    return venv


def _environment(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    return env


def _make_user_files(folder: Path) -> None:
    """Stand-ins for the files the README says are the user's."""
    from test_ntu import frames_of, person, write_skeleton

    raw = folder / "nturgb+d_skeletons"
    raw.mkdir()
    # Two classes, X-Sub training performers (1, 2) and validation performers (3, 6).
    for i, name in enumerate(
        ["S001C001P001R001A001", "S001C001P002R001A002", "S001C002P003R001A001", "S001C002P006R002A002"]
    ):
        body = person(40, seed=i, motion=1.0 + i % 2)
        write_skeleton(raw / f"{name}.skeleton", frames_of(40, (1, body, range(40))))
    (folder / "NTU_RGBD_samples_with_missing_skeletons.txt").write_text("S001C001P001R002A001\n")
    # A skeleton clip as a user's .npy: [frames, joints, xyz] in NTU's 25-joint layout.
    np.save(folder / "my_clip.npy", person(48, seed=7, motion=1.0).astype(np.float32))
    if SHARED_VIDEO.is_file():
        _transcode(SHARED_VIDEO, folder / "my_video.mp4")
        (folder / "my_videos").mkdir()
        shutil.copy(folder / "my_video.mp4", folder / "my_videos" / "hugging.mp4")


def _transcode(source: Path, target: Path, width: int = 640) -> None:
    """The real clip as an H.264 MP4 at ``width`` pixels (the 1080p original only costs decode time)."""
    import av

    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        stream_in = inp.streams.video[0]
        height = round(stream_in.height * width / stream_in.width / 2) * 2
        stream = out.add_stream("libx264", rate=round(float(stream_in.average_rate)))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in inp.decode(stream_in):
            rgb = frame.to_ndarray(width=width, height=height, format="rgb24")
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_every_readme_command_runs_in_a_fresh_venv(fresh_venv, tmp_path_factory):
    folder = tmp_path_factory.mktemp("user")
    assert ROOT not in folder.resolve().parents
    _make_user_files(folder)
    env = _environment(fresh_venv)
    steps = readme_steps(README.read_text())
    assert ("shell", "lightact train") in steps and any(kind == "python" for kind, _ in steps)
    ran, skipped = [], []
    for number, (kind, text) in enumerate(steps):
        if kind == "setup":
            assert text.startswith(SETUP), text
            continue
        if kind == "shell" and text in NOT_RUN:
            skipped.append(f"{text}: {NOT_RUN[text]}")
            continue
        if not SHARED_VIDEO.is_file() and any(name in text for name in NEEDS_VIDEO):
            skipped.append(f"{text}: no real clip at {SHARED_VIDEO}")
            continue
        if kind == "python":
            script = folder / f"readme_snippet_{number}.py"
            script.write_text(text)
            args = [str(fresh_venv / "bin" / "python"), str(script)]
        else:
            assert text.startswith("lightact "), f"README command this test cannot run: {text}"
            args = shlex.split(text) + tiny_arguments(text)
        done = _run(args, cwd=folder, env=env, timeout=900)
        assert done.returncode == 0, f"{text}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr, f"{text}\n{done.stderr[-3000:]}"
        ran.append(text)
    # What the commands promise is there.
    for path in (
        "work_dirs/star_synth/model.safetensors",
        "test_predictions.csv",
        "star_64.onnx",
        "bench_skeleton/bench.md",
        "synth.pkl",
    ):
        assert (folder / path).exists(), path
    if SHARED_VIDEO.is_file():
        assert (folder / "predictions" / "my_video_timeline.png").is_file()
        assert (folder / "my_skeletons.pkl").is_file() and (folder / "timeline.png").is_file()
    print(f"{len(ran)} README steps ran; skipped: {skipped}")
