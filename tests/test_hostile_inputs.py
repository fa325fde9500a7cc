"""The hostile-input catalogue (issue 16): what a careless user, a malicious file or a failing
machine does to ``lightact``, each case run as the command a user types.

Every case asserts the exit status (2 for usage and configuration, 1 for data), that the error is
one line naming the problem and the file (and the sample or key), that no traceback is printed,
and that files which existed before are unchanged. Malicious files carry a sentinel: unpickling
them, or loading the file they point at, would create a marker file; the marker must not appear.

Commands run through tests/cli_server.py, a warm interpreter that forks one process per command
and calls the entry point ``lightact.cli.main()`` in it (a fresh interpreter costs 5-10 s of
imports per command); ``LIGHTACT_TEST_FRESH=1`` runs each in a fresh ``python -m lightact.cli``
instead. The kill -9 cases always start a fresh process tree. Read-only folders and a full disk
are mounts in a user namespace of the command's own (``unshare``); where the machine allows
neither that nor (as a non-root user) chmod, those cases skip with the reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file
from test_pose import write_video

from lightact.data.skeleton.layouts import NTU25
from lightact.data.skeleton.pickle_io import safe_load_pickle, save_pickle
from lightact.data.skeleton.pose import mediapipe_available
from lightact.data.synthetic.skeleton import generate_skeleton_dataset
from lightact.engine.checkpoint import save_weights
from lightact.models.registry import create_model, model_entry

ROOT = Path(__file__).resolve().parents[1]
SHARED_VIDEOS = ROOT.parent / "shared" / "data" / "videos"
HUG = SHARED_VIDEOS / "ntu120_hugging.avi"
FRESH = os.environ.get("LIGHTACT_TEST_FRESH") == "1"
needs_mediapipe = pytest.mark.skipif(not mediapipe_available(), reason="MediaPipe is not installed")
needs_hug = pytest.mark.skipif(not HUG.is_file(), reason=f"the real test video {HUG} is not there")

# Small and quick: tiny models, one thread, no progress bars.
TINY_STAR = {"num_classes": 3, "dim": 16, "depth": 1, "heads": 2, "in_channels": 9}
RUN = ["data.batch_size=8", "trainer.max_epochs=1", "trainer.progress_bar=false", "trainer.num_threads=1"]
TRAIN = [*RUN, "model.dim=16", "model.depth=1", "model.heads=2"]


# --------------------------------------------------------------------------------------------------
# Running commands


@dataclass
class Ran:
    rc: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    @property
    def line(self) -> str:
        """The last line of stderr: where an error ends."""
        lines = [line for line in self.err.splitlines() if line.strip()]
        return lines[-1] if lines else ""


def _mounts_possible() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True, timeout=30
    )
    return probe.returncode == 0


class Commands:
    """``run(*args, ...)``: one ``lightact`` command, as a process of its own."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.count = 0
        self.mounts = _mounts_possible()
        self.server = None
        self.env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
        if not FRESH:
            prefix = ["unshare", "--user", "--map-root-user", "--mount"] if self.mounts else []
            self.server = subprocess.Popen(
                [*prefix, sys.executable, str(Path(__file__).with_name("cli_server.py"))],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env={**self.env, "LIGHTACT_TEST_MOUNTS": "1" if self.mounts else "0"},
            )
            hello = json.loads(self.server.stdout.readline())
            assert hello["ready"]

    def can_make_read_only(self) -> bool:
        return self.mounts or os.geteuid() != 0

    def run(
        self,
        *args: str,
        cwd: Path | None = None,
        env: dict[str, str | None] | None = None,
        readonly: tuple[Path, ...] = (),
        tmpfs: tuple[Path, str] | None = None,
        timeout: float = 300,
        umask: int = 0o022,
    ) -> Ran:
        self.count += 1
        out, err = self.scratch / f"{self.count}.out", self.scratch / f"{self.count}.err"
        cwd = cwd or self.scratch
        args = [str(a) for a in args]
        if not self.mounts:
            for folder in readonly:  # a non-root user cannot write there either
                folder.chmod(0o555)
        try:
            if self.server is None:
                old = os.umask(umask)
                try:
                    rc = self._fresh(args, cwd, env or {}, out, err, readonly, tmpfs, timeout)
                finally:
                    os.umask(old)
            else:
                request = {
                    "args": args,
                    "cwd": str(cwd),
                    "env": env or {},
                    "stdout": str(out),
                    "stderr": str(err),
                    "timeout": timeout,
                    "umask": umask,
                    "readonly": [str(f) for f in readonly] if self.mounts else [],
                    "tmpfs": [str(tmpfs[0]), tmpfs[1]] if tmpfs else None,
                }
                self.server.stdin.write(json.dumps(request) + "\n")
                self.server.stdin.flush()
                rc = json.loads(self.server.stdout.readline())["rc"]
        finally:
            for folder in readonly:
                folder.chmod(0o755)
        return Ran(rc, out.read_text(errors="replace"), err.read_text(errors="replace"))

    def _fresh(self, args, cwd, env, out, err, readonly, tmpfs, timeout) -> int:
        env = {**self.env, **{k: v for k, v in env.items() if v is not None}}
        for key in (k for k, v in (env or {}).items() if v is None):
            env.pop(key, None)
        command = [sys.executable, "-m", "lightact.cli", *args]
        if (readonly or tmpfs) and self.mounts:
            mounts = [f'mount --bind "{f}" "{f}" && mount -o remount,bind,ro "{f}"' for f in readonly]
            if tmpfs:
                mounts.append(f'mount -t tmpfs -o size={tmpfs[1]} none "{tmpfs[0]}"')
            script = " && ".join(mounts) + ' && exec "$@"'
            command = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh", *command]
        with open(out, "w") as o, open(err, "w") as e:
            try:
                return subprocess.run(
                    command, cwd=cwd, env=env, stdout=o, stderr=e, timeout=timeout
                ).returncode
            except subprocess.TimeoutExpired:
                return -9

    def close(self) -> None:
        if self.server is not None:
            self.server.stdin.close()
            self.server.wait(timeout=30)


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    commands = Commands(tmp_path_factory.mktemp("commands"))
    yield commands
    commands.close()


def user_error(ran: Ran, rc: int, *names: str) -> None:
    """The command failed the way a user's mistake should: status ``rc``, no traceback, and its
    last line names every one of ``names`` (the file, the sample, the key)."""
    assert "Traceback" not in ran.text, ran.text[-3000:]
    assert ran.rc == rc, f"exit {ran.rc}, expected {rc}:\n{ran.text[-3000:]}"
    for name in names:
        assert str(name) in ran.line, f"{name!r} not in the last line {ran.line!r}\n{ran.text[-2000:]}"
    assert "internal error" not in ran.line, ran.line


def digest(*paths: Path) -> dict[str, str]:
    """Content hashes of every file under ``paths`` (what "unchanged" is checked against)."""
    out = {}
    for path in paths:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            out[str(file)] = hashlib.sha256(file.read_bytes()).hexdigest()
    return out


# --------------------------------------------------------------------------------------------------
# Inputs


class Touch:
    """Unpickling this creates ``marker``: a stand-in for code a malicious file would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def sentinel_pickle(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps({"annotations": [Touch(marker)]}))
    return path


def sentinel_torch(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": Touch(marker)}, path)
    return path


def noise(n: int, seed: int = 0, size: tuple[int, int] = (48, 64)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(n)]


def vfr_avi(path: Path) -> tuple[Path, list[int]]:
    """A variable-frame-rate AVI: 68 decoded frames spread over 444 frame slots of 1/15 s
    (29.6 s), as FFmpeg writes a variable-rate source into AVI (the skipped slots are dropped
    frames, shown as the previous one); frame ``s`` is grey level ``s % 251``. Returns the file and
    the slots that hold a frame."""
    from fractions import Fraction

    rng = np.random.default_rng(1)
    slots = sorted({0, 443, *rng.choice(np.arange(1, 443), 66, replace=False).tolist()})
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=15)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 15)
        for slot in slots:
            grey = np.full((48, 64, 3), slot % 251, np.uint8)
            frame = av.VideoFrame.from_ndarray(grey, format="rgb24")
            frame.pts, frame.time_base = slot, Fraction(1, 15)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path, slots


def skeleton_data(samples_per_class: int = 2) -> dict:
    return generate_skeleton_dataset(
        samples_per_class=samples_per_class, seed=0, min_frames=20, max_frames=40
    )


def skeleton_meta(**changes) -> dict:
    meta = {
        "model": "star_64",
        "kwargs": {**TINY_STAR, "layout": NTU25.to_dict()},
        "classes": ["a", "b", "c"],
        "modality": "skeleton",
        "input_format": "packed",
        "task": "classification",
        "data": {"test_transforms": [], "clip_len": None, "max_frames": 300},
    }
    meta.update(changes)
    return meta


def checkpoint(folder: Path, meta: dict, tensors: dict | None = None, raw_meta: str | None = None) -> Path:
    """A work directory whose model.safetensors holds ``tensors`` (default: a tiny STAR's) and the
    description ``meta`` (or the text ``raw_meta``)."""
    folder.mkdir(parents=True, exist_ok=True)
    if tensors is None:
        torch.manual_seed(0)
        model = create_model("star_64", **{**TINY_STAR, "layout": NTU25})
        tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, folder / "model.safetensors", metadata={"lightact": raw_meta or json.dumps(meta)})
    return folder


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Inputs shared by the cases (created once; each case that could write near them checks that
    they are unchanged)."""
    root = tmp_path_factory.mktemp("inputs")
    ns = SimpleNamespace(root=root)
    ns.skel_ckpt = checkpoint(root / "skel_run", skeleton_meta())
    torch.manual_seed(0)
    video_model = create_model("clip3d_tiny", num_classes=3)
    ns.video_ckpt = root / "video_run"
    ns.video_ckpt.mkdir()
    save_weights(
        video_model,
        ns.video_ckpt / "model.safetensors",
        {
            "model": "clip3d_tiny",
            "kwargs": {"num_classes": 3},
            "classes": ["a", "b", "c"],
            "modality": "video",
            "input_format": "clip",
            "task": "classification",
            "data": {
                "num_frames": 4,
                "sampling": "uniform",
                "frame_interval": 1,
                "resize": 32,
                "crop": 32,
                "mean": [0.5] * 3,
                "std": [0.25] * 3,
            },
        },
    )
    ns.data = skeleton_data()
    ns.pickle = root / "good.pkl"
    save_pickle(ns.data, ns.pickle)
    ns.npy = root / "clip.npy"
    np.save(ns.npy, ns.data["annotations"][0]["keypoint"][0])
    ns.video = write_video(root / "noise.mp4", noise(12))
    ns.layout_yaml = root / "bad_layout.yaml"
    ns.layout_yaml.write_text("name: x\njoints: [a, b]\nbones: [[a, c]]\ncenter: a\n")
    return ns


def variant(tmp_path: Path, data: dict, change) -> Path:
    """A copy of the skeleton dataset with ``change(copy)`` applied, as a pickle."""
    import copy

    data = copy.deepcopy(data)
    change(data)
    path = tmp_path / "data.pkl"
    save_pickle(data, path)
    return path


# --------------------------------------------------------------------------------------------------
# 1. A checkpoint's description is data: it cannot load, download or allocate what it likes


@pytest.mark.parametrize(
    ("case", "model", "kwargs", "names"),
    [
        (
            "checkpoint_path",
            "timm/resnet10t",
            {"num_classes": 3, "checkpoint_path": "{sentinel}"},
            ["checkpoint_path"],
        ),
        ("pretrained", "timm/resnet10t", {"num_classes": 3, "pretrained": True}, ["pretrained"]),
        (
            "pretrained_cfg_overlay",
            "timm/resnet10t",
            {"num_classes": 3, "pretrained_cfg_overlay": {"file": "{sentinel}"}},
            ["pretrained_cfg_overlay"],
        ),
        ("cache_dir", "timm/resnet10t", {"num_classes": 3, "cache_dir": "/tmp/hub"}, ["cache_dir"]),
        (
            "pretrained_backbone",
            "composite_mnv3s",
            {"num_classes": 3, "pretrained_backbone": True},
            ["pretrained_backbone"],
        ),
        (
            "hub_backbone",
            "composite_mnv3s",
            {"num_classes": 3, "backbone": "hf-hub:timm/mobilenetv3_small_100"},
            ["backbone", "hf-hub"],
        ),
        ("tv_weights", "tv/r3d_18", {"num_classes": 3, "weights": "KINETICS400_V1"}, ["weights"]),
        ("path_value", "timm/resnet10t", {"num_classes": 3, "act_layer": "../../evil"}, ["act_layer"]),
    ],
)
def test_metadata_cannot_load_or_download(cli, files, tmp_path, case, model, kwargs, names):
    marker = tmp_path / "ran.txt"
    sentinel = sentinel_torch(tmp_path / "payload.pth", marker)
    kwargs = json.loads(json.dumps(kwargs).replace("{sentinel}", str(sentinel)))
    run = checkpoint(
        tmp_path / "run",
        skeleton_meta(model=model, kwargs=kwargs, modality=model_entry(model).modality),
        {"x": torch.zeros(1)},
    )
    before = digest(run, sentinel)
    for command in (
        ["predict", run, files.npy, "--out", tmp_path / "pred"],
        ["export", run, "--out", tmp_path / "m.onnx"],
    ):
        ran = cli.run(*command)
        user_error(ran, 1, run / "model.safetensors", *names)
    assert not marker.exists() and not (tmp_path / "pred").exists() and not (tmp_path / "m.onnx").exists()
    assert digest(run, sentinel) == before


def test_metadata_is_checked_before_anything_is_read_or_built(files, tmp_path, monkeypatch):
    """In process: a refused description reaches no loader and no constructor at all."""
    import timm.models._helpers

    from lightact.engine import checkpoint as ckpt
    from lightact.inference import Recognizer

    calls = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(("torch.load", a)))
    monkeypatch.setattr(timm.models._helpers, "load_checkpoint", lambda *a, **k: calls.append(("timm", a)))
    monkeypatch.setattr(ckpt, "load_file", lambda *a, **k: calls.append(("load_file", a)))
    monkeypatch.setattr(ckpt, "_rebuild", lambda *a, **k: calls.append(("build", a)))
    sentinel = sentinel_torch(tmp_path / "payload.pth", tmp_path / "ran.txt")
    meta = skeleton_meta(model="timm/resnet10t", kwargs={"num_classes": 3, "checkpoint_path": str(sentinel)})
    run = checkpoint(tmp_path / "run", {**meta, "modality": "image"}, {"x": torch.zeros(1)})
    for load in (ckpt.load_model, Recognizer.from_checkpoint):
        with pytest.raises(ValueError, match="checkpoint_path"):
            load(run)
    assert calls == [] and not (tmp_path / "ran.txt").exists()


@pytest.mark.parametrize(
    ("case", "change", "rc", "names"),
    [
        (
            "huge_dim",
            {"kwargs": {**TINY_STAR, "dim": 32768, "layout": NTU25.to_dict()}},
            1,
            ["does not fit", "32768"],
        ),
        (
            "deep",
            {"kwargs": {**TINY_STAR, "depth": 10**6, "layout": NTU25.to_dict()}},
            1,
            ["depth", "out of range"],
        ),
        ("heads_text", {"kwargs": {**TINY_STAR, "heads": "two", "layout": NTU25.to_dict()}}, 1, ["heads"]),
        ("unknown_model", {"model": "os.system"}, 1, ["unknown model 'os.system'"]),
        ("hub_model", {"model": "timm/hf-hub:evil/model"}, 1, ["timm has no model"]),
        ("kwargs_list", {"kwargs": [1, 2]}, 1, ["'kwargs'"]),
        ("classes_short", {"classes": ["a", "b"]}, 1, ["3 outputs", "2 classes"]),
        (
            "layout_bones",
            {"kwargs": {**TINY_STAR, "layout": {**NTU25.to_dict(), "bones": [[0, 99]]}}},
            1,
            ["kwargs.layout"],
        ),
        ("layout_type", {"kwargs": {**TINY_STAR, "layout": "ntu25"}}, 1, ["layout"]),
        ("max_frames", {"data": {"test_transforms": [], "max_frames": 10**9}}, 1, ["data.max_frames"]),
        (
            "transform",
            {"data": {"test_transforms": ["explode"], "max_frames": 300}},
            1,
            ["test pipeline", "explode"],
        ),
        ("modality", {"modality": "video"}, 1, ["modality"]),
        ("no_model", {"model": None}, 1, ["'model'"]),
    ],
)
def test_bad_metadata_is_one_line_naming_the_file_and_key(cli, files, tmp_path, case, change, rc, names):
    meta = skeleton_meta(**change)
    if meta["model"] is None:
        del meta["model"]
    run = checkpoint(tmp_path / "run", meta)
    ran = cli.run("predict", run, files.npy, "--out", tmp_path / "pred")
    user_error(ran, rc, run, *names)
    assert not (tmp_path / "pred").exists()


def test_a_huge_model_is_refused_before_memory_is_taken(cli, files, tmp_path):
    """dim 32768 in the description of a small file: refused from the file's header, quickly."""
    meta = skeleton_meta(kwargs={**TINY_STAR, "dim": 32768, "layout": NTU25.to_dict()})
    run = checkpoint(tmp_path / "run", meta)
    start = time.perf_counter()
    ran = cli.run("export", run, "--out", tmp_path / "m.onnx")
    user_error(ran, 1, "model.safetensors", "does not fit", "32768")
    assert time.perf_counter() - start < 60


@pytest.mark.parametrize(
    ("case", "raw", "names"),
    [
        ("not_json", "{model: star_64", ["not valid JSON"]),
        ("nested", "[" * 100000 + "]" * 100000, ["not valid JSON"]),
        ("a_list", "[1, 2, 3]", ["not a mapping"]),
    ],
)
def test_unreadable_metadata_names_the_file(cli, files, tmp_path, case, raw, names):
    run = checkpoint(tmp_path / "run", {}, raw_meta=raw)
    user_error(cli.run("predict", run, files.npy, "--out", tmp_path / "p"), 1, "model.safetensors", *names)


def test_broken_weight_files_name_the_file(cli, files, tmp_path):
    good = (files.skel_ckpt / "model.safetensors").read_bytes()
    cases = {
        "truncated": good[: len(good) // 2],
        "huge_header": (2**62).to_bytes(8, "little") + b"{}",
        "empty": b"",
        "text": b"this is not a model\n",
    }
    for name, content in cases.items():
        run = tmp_path / name
        run.mkdir()
        (run / "model.safetensors").write_bytes(content)
        user_error(cli.run("predict", run, files.npy, "--out", tmp_path / "p"), 1, run / "model.safetensors")
    plain = tmp_path / "plain"
    plain.mkdir()
    save_file({"w": torch.zeros(2)}, plain / "model.safetensors")
    user_error(cli.run("predict", plain, files.npy), 1, "model.safetensors", "not written by lightact")


def test_weights_that_do_not_fit_their_description_name_the_tensor(cli, files, tmp_path):
    model = create_model("star_64", **{**TINY_STAR, "layout": NTU25})
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    key = next(k for k, v in tensors.items() if v.ndim == 2)
    tensors[key] = torch.zeros(tensors[key].shape[0] + 1, tensors[key].shape[1])
    run = checkpoint(tmp_path / "run", skeleton_meta(), tensors)
    user_error(cli.run("predict", run, files.npy), 1, "model.safetensors", key)
    del tensors[key]
    run = checkpoint(tmp_path / "run2", skeleton_meta(), tensors)
    user_error(cli.run("predict", run, files.npy), 1, "model.safetensors", "missing", key)


def test_long_video_metadata_cannot_name_a_pickle_to_load(cli, files, tmp_path):
    marker = tmp_path / "ran.txt"
    sentinel = sentinel_torch(tmp_path / "frame.pth", marker)
    extraction = {
        "frame_encoder": "timm/resnet10t",
        "frame_weights": str(sentinel),
        "clip_encoder": "clip3d_tiny",
    }
    meta = {
        "model": "stan",
        "kwargs": {},
        "classes": ["a"],
        "modality": "longvideo",
        "input_format": "features",
        "data": {"extraction": extraction},
    }
    run = checkpoint(tmp_path / "run", meta, {"x": torch.zeros(1)})
    user_error(cli.run("predict", run, files.video), 1, "frame_weights", "safetensors")
    assert not marker.exists()


def test_eval_and_a_teacher_refuse_malicious_checkpoints(cli, files, tmp_path):
    marker = tmp_path / "ran.txt"
    sentinel = sentinel_torch(tmp_path / "payload.pth", marker)
    meta = skeleton_meta(kwargs={**TINY_STAR, "layout": NTU25.to_dict(), "checkpoint_path": str(sentinel)})
    run = checkpoint(tmp_path / "run", meta)
    config = tmp_path / "eval.yaml"
    config.write_text(yaml.safe_dump({"model": {"name": "star_64"}, "data": {"path": str(files.pickle)}}))
    user_error(cli.run("eval", config, "--checkpoint", run), 1, "model.safetensors", "checkpoint_path")
    teacher = checkpoint(
        tmp_path / "teacher",
        {
            "model": "timm/resnet10t",
            "kwargs": {"num_classes": 4, "pretrained": True},
            "classes": list("abcd"),
            "modality": "image",
        },
        {"x": torch.zeros(1)},
    )
    work = tmp_path / "student"
    ran = cli.run(
        "train",
        "--set",
        "data.kind=image",
        "data.synth.samples_per_class=2",
        "data.img_size=32",
        "model.name=timm/resnet10t",
        "distill.teacher=timm/resnet10t",
        f"distill.teacher_weights={teacher}",
        f"work_dir={work}",
        "trainer.progress_bar=false",
    )
    user_error(ran, 1, "teacher/model.safetensors", "pretrained")
    assert not work.exists() and not marker.exists()


def test_malicious_weights_and_resume_checkpoints_run_nothing(cli, files, tmp_path):
    marker = tmp_path / "ran.txt"
    weights = sentinel_torch(tmp_path / "init.pth", marker)
    work = tmp_path / "run"
    ran = cli.run(
        "train", "--set", *TRAIN, f"data.path={files.pickle}", f"model.weights={weights}", f"work_dir={work}"
    )
    user_error(ran, 1, "init.pth")
    assert not marker.exists()
    (work / "checkpoints").mkdir(parents=True)
    sentinel_torch(work / "checkpoints" / "last.ckpt", marker)
    ran = cli.run("train", "--resume", "--set", *TRAIN, f"data.path={files.pickle}", f"work_dir={work}")
    user_error(ran, 1, "last.ckpt")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("case", "overrides", "names"),
    [
        (
            "timm_checkpoint_path",
            ["model.name=timm/resnet10t", "data.kind=image", "model.checkpoint_path=/x.pth"],
            ["model", "checkpoint_path"],
        ),
        (
            "teacher_pretrained",
            ["data.kind=image", "distill.teacher_kwargs={pretrained: true}"],
            ["teacher_kwargs", "pretrained"],
        ),
        (
            "composite_download",
            ["model.name=composite_mnv3s", "data.kind=image", "model.pretrained_backbone=true"],
            ["pretrained_backbone"],
        ),
    ],
)
def test_configs_cannot_make_models_load_either(cli, tmp_path, case, overrides, names):
    ran = cli.run("train", "--set", *overrides, f"work_dir={tmp_path / 'w'}")
    user_error(ran, 2, *names)
    assert not (tmp_path / "w").exists()


def test_yaml_cannot_run_code_or_explode(cli, tmp_path):
    marker = tmp_path / "ran.txt"
    code = tmp_path / "code.yaml"
    code.write_text(f"name: !!python/object/apply:builtins.open ['{marker}', 'w']\n")
    user_error(cli.run("train", code), 2, code)
    bomb = tmp_path / "bomb.yaml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    bomb.write_text("model:\n  name: timm/resnet10t\n  extra: *a8\n" + "\n".join(lines) + "\n")
    start = time.perf_counter()
    user_error(cli.run("train", bomb, timeout=120), 2, bomb)
    assert time.perf_counter() - start < 60 and not marker.exists()


# --------------------------------------------------------------------------------------------------
# 2-3. Skeleton data and config mistakes: one line, the right reason, no work directory made


def _nan(d):
    d["annotations"][1]["keypoint"][0, 3, 4, 1] = np.nan


def _inf(d):
    d["annotations"][2]["keypoint"][0, 0, 0, 0] = np.inf


def _joints17(d):
    for a in d["annotations"]:
        a["keypoint"] = a["keypoint"][:, :, :17]


def _one_sample_17(d):
    d["annotations"][3]["keypoint"] = d["annotations"][3]["keypoint"][:, :, :17]


def _rank3(d):
    d["annotations"][0]["keypoint"] = d["annotations"][0]["keypoint"][0]


def _label_beyond(d):
    d["annotations"][4]["label"] = len(d["classes"]) + 3


def _label_negative(d):
    d["annotations"][4]["label"] = -5


def _unlabelled(d):
    d["annotations"][4]["label"] = -1


def _no_keypoint(d):
    del d["annotations"][5]["keypoint"]


def _object_keypoint(d):
    d["annotations"][5]["keypoint"] = np.array([["a"]], dtype=object)


def _no_frames(d):
    d["annotations"][6]["keypoint"] = d["annotations"][6]["keypoint"][:, :0]
    d["annotations"][6]["total_frames"] = 0


def _empty(d):
    d["annotations"] = []


def _empty_split(d):
    d["split"]["train"] = []


@pytest.mark.parametrize(
    ("case", "change", "sample", "names"),
    [
        ("nan", _nan, 1, ["NaN"]),
        ("inf", _inf, 2, ["NaN/inf"]),
        ("joints_vs_layout", _joints17, 0, ["17 joints", "ntu25"]),
        ("joints_differ", _one_sample_17, 3, ["V = 17"]),
        ("rank", _rank3, 0, ["[M, T, V, C]"]),
        ("label_beyond_classes", _label_beyond, 4, ["label"]),
        ("label_negative", _label_negative, 4, ["label -5"]),
        ("unlabelled", _unlabelled, 4, ["label -1"]),
        ("no_keypoint", _no_keypoint, 5, ["'keypoint'"]),
        ("object_keypoint", _object_keypoint, 5, ["keypoint"]),
        ("no_frames", _no_frames, 6, ["empty"]),
        ("no_annotations", _empty, None, ["empty"]),
        ("empty_split", _empty_split, None, ["train split", "empty"]),
    ],
)
def test_bad_skeleton_data_stops_train_before_the_work_dir(cli, files, tmp_path, case, change, sample, names):
    data = variant(tmp_path, files.data, change)
    if sample is not None:
        names = [*names, files.data["annotations"][sample]["frame_dir"]]
    work = tmp_path / "work"
    ran = cli.run("train", "--set", *TRAIN, f"data.path={data}", f"work_dir={work}")
    user_error(ran, 1, data, *names)
    assert not work.exists()


@pytest.mark.parametrize(
    ("case", "content", "names"),
    [
        ("truncated", "truncate", ["not a readable pickle"]),
        ("random_bytes", random.Random(0).randbytes(64), ["not a readable pickle"]),  # the same every run
        ("npy", "npy", ["NumPy array"]),
        ("top_level_list", pickle.dumps([1, 2, 3]), ["top level is a list"]),
        ("zero_bytes", b"", ["empty"]),
    ],
)
def test_unreadable_skeleton_files_name_the_file(cli, files, tmp_path, case, content, names):
    path = tmp_path / "data.pkl"
    if content == "truncate":
        content = files.pickle.read_bytes()[:1000]
    elif content == "npy":
        path = tmp_path / "data.npy"
        np.save(path, np.zeros((2, 3)))
        content = path.read_bytes()
    path.write_bytes(content)
    ran = cli.run("train", "--set", *TRAIN, f"data.path={path}", f"work_dir={tmp_path / 'w'}")
    user_error(ran, 1, path, *names)
    assert not (tmp_path / "w").exists()


def test_code_in_a_data_pickle_never_runs(cli, files, tmp_path):
    marker = tmp_path / "ran.txt"
    evil = sentinel_pickle(tmp_path / "evil.pkl", marker)
    user_error(
        cli.run("train", "--set", *TRAIN, f"data.path={evil}", f"work_dir={tmp_path / 'w'}"),
        1,
        evil,
        "refusing",
    )
    user_error(cli.run("data", "validate", evil), 1, evil, "refusing")
    user_error(cli.run("predict", files.skel_ckpt, evil, "--out", tmp_path / "p"), 1, evil, "refusing")
    assert not marker.exists()
    pickle.loads(evil.read_bytes())  # the payload is real: plain pickle runs it
    assert marker.exists()


@pytest.mark.parametrize(
    ("case", "overrides", "names"),
    [
        ("unknown_key", ["trainer.max_epoch=1"], ["trainer.max_epoch", "unknown key"]),
        ("wrong_type", ["data.batch_size=many"], ["data.batch_size"]),
        ("unknown_model", ["model.name=resnet"], ["unknown model 'resnet'"]),
        ("unknown_argument", ["model.width=3"], ["width"]),
        ("bad_override_value", ["model.dim=[1,"], ["model.dim=[1,"]),
        ("not_an_override", ["trainer"], ["trainer"]),
        ("kind_vs_model", ["model.name=clip3d_tiny"], ["clip3d_tiny", "skeleton"]),
        ("unknown_transform", ["data.train_transforms=[explode]"], ["data.train_transforms", "explode"]),
        (
            "transform_argument",
            ["data.train_transforms=[{name: temporal_resample, length: -4}]"],
            ["data.train_transforms"],
        ),
        (
            "transform_unknown_argument",
            ["data.train_transforms=[{name: temporal_resample, size: 4}]"],
            ["data.train_transforms", "size"],
        ),
        ("unknown_layout", ["data.layout=ntu99"], ["data.layout", "ntu99"]),
        ("split_name", ["data.train_split=bogus"], ["bogus", "train_split"]),
        ("video_format", ["data.kind=video", "data.format=avi"], ["data.format"]),
        (
            "set_then_path",
            ["data.batch_size=4", "data.path=/no/such/data.pkl"],
            ["/no/such/data.pkl", "does not exist"],
        ),
        ("folder_as_data", ["data.path={tmp}"], ["is a folder"]),
        ("resume_nothing", ["--resume"], ["--resume", "no checkpoint"]),
    ],
)
def test_config_mistakes_exit_2_naming_the_key(cli, files, tmp_path, case, overrides, names):
    work = tmp_path / "work"
    overrides = [o.replace("{tmp}", str(tmp_path)) for o in overrides]
    flags = ["--resume"] if "--resume" in overrides else []
    overrides = [o for o in overrides if o != "--resume"]
    needs_file = not any(o.startswith(("data.path", "data.kind")) for o in overrides)
    data = [f"data.path={files.pickle}"] if needs_file else []
    settings = RUN if case == "kind_vs_model" else TRAIN
    ran = cli.run("train", *flags, "--set", *settings, *data, *overrides, f"work_dir={work}")
    user_error(ran, 2, *names)
    assert not work.exists() or case == "resume_nothing" and not any(work.iterdir())


def test_config_files_that_are_wrong(cli, files, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("model:\n  name: star_64\n   dim: 3\n")
    user_error(cli.run("train", broken), 2, broken, "not valid YAML")
    listing = tmp_path / "list.yaml"
    listing.write_text("- 1\n- 2\n")
    user_error(cli.run("train", listing), 2, listing, "mapping")
    user_error(cli.run("train", tmp_path / "missing.yaml"), 2, "missing.yaml", "does not exist")
    user_error(
        cli.run(
            "train",
            "--set",
            *TRAIN,
            f"data.path={files.pickle}",
            f"data.layout={files.layout_yaml}",
            f"work_dir={tmp_path / 'w'}",
        ),
        2,
        files.layout_yaml,
    )
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    user_error(
        cli.run("train", "--set", *TRAIN, f"data.path={files.pickle}", f"work_dir={a_file}"), 2, a_file
    )


def test_other_data_kinds_check_their_files_first(cli, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("a.mp4 0\nb.mp4 1\n")
    classes = tmp_path / "classes.txt"
    classes.write_text("x\ny\n")
    work = tmp_path / "work"
    video = ["model.name=clip3d_tiny", "data.kind=video", "data.format=list", f"data.root={tmp_path}"]
    files = [f"data.train_file={listing}", f"data.val_file={listing}", f"data.labels_file={classes}"]
    user_error(cli.run("train", "--set", *RUN, *video, *files, f"work_dir={work}"), 1, listing, "a.mp4")
    write_video(tmp_path / "a.mp4", noise(4))
    listing.write_text("a.mp4 0\nb.mp4 7\n")
    user_error(cli.run("train", "--set", *RUN, *video, *files, f"work_dir={work}"), 1, listing, "0..7")
    image = ["model.name=timm/resnet10t", "data.kind=image"]
    user_error(
        cli.run("train", "--set", *RUN, *image, f"data.path={tmp_path / 'no'}", f"work_dir={work}"), 2, "no"
    )
    (tmp_path / "empty").mkdir()
    empty = tmp_path / "empty"
    user_error(cli.run("train", "--set", *RUN, *image, f"data.path={empty}", f"work_dir={work}"), 1, empty)
    assert not work.exists()


def test_split_ids_without_annotations_warn_and_train(cli, files, tmp_path):
    data = variant(tmp_path, files.data, lambda d: d["split"]["train"].extend(["ghost_1", "ghost_2"]))
    work = tmp_path / "work"
    ran = cli.run("train", "--set", *TRAIN, f"data.path={data}", f"work_dir={work}")
    assert ran.rc == 0, ran.text[-3000:]
    assert "2 id(s) without an annotation" in ran.text and "ghost_1" in ran.text
    assert (work / "model.safetensors").is_file()


# --------------------------------------------------------------------------------------------------
# data validate, data synth, NTU conversion


def test_validate_catches_what_training_would_trip_on(cli, files, tmp_path):
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    user_error(cli.run("data", "validate", empty), 1, empty, "empty")
    user_error(cli.run("data", "validate", tmp_path / "none.pkl"), 2, "none.pkl", "does not exist")
    for name, change, expected in [
        ("no_annotations", _empty, "'annotations' is empty"),
        ("joints", _one_sample_17, "V = 17"),
        ("beyond_classes", _label_beyond, f"not in [0, {len(files.data['classes'])})"),
        ("inf", _inf, "NaN/inf"),
    ]:
        path = variant(tmp_path, files.data, change).rename(tmp_path / f"{name}.pkl")
        ran = cli.run("data", "validate", path)
        assert ran.rc == 1 and "Traceback" not in ran.text and expected in ran.out, ran.text
        assert ran.out.splitlines()[0].startswith(f"{path}: ")


def test_dataset_pickles_get_the_permissions_of_any_new_file(cli, tmp_path):
    for umask, mode in ((0o022, 0o644), (0o002, 0o664), (0o077, 0o600)):
        out = tmp_path / f"synth_{umask:o}.pkl"
        ran = cli.run("data", "synth", "skeleton", "--out", out, "--samples-per-class", "1", umask=umask)
        assert ran.rc == 0, ran.text
        assert out.stat().st_mode & 0o777 == mode, (oct(umask), oct(out.stat().st_mode))


def _skeleton_file(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _good_ntu(path: Path, frames: int = 3, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    lines = [str(frames)]
    for _ in range(frames):
        lines += ["1", "72057594037931101 0 1 1 1 1 0 0.1 -0.2 2", "25"]
        lines += [
            " ".join(f"{v:.4f}" for v in rng.normal(size=3)) + " 1 2 3 4 0.5 0 0 0 2" for _ in range(25)
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def bad_ntu_folder(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    _good_ntu(raw / "S001C001P001R001A001.skeleton")
    good = _good_ntu(tmp_path / "template.skeleton").read_text().splitlines()
    bad = {
        "S001C001P001R001A002": "",
        "S001C001P001R001A003": "three\n",
        "S001C001P001R001A004": "\n".join(good[:10]),
        "S001C001P001R001A005": "\n".join(good[:4] + ["1 2 3"] + good[5:]),
        "S001C001P001R001A006": "\n".join(good[:4] + ["1 2 x 4 5 6 7 8 9 10 11 12"] + good[5:]),
        "S001C001P001R001A007": "\n".join(good[:3] + ["24"] + good[4:]),
        "S001C001P001R001A008": "\n".join(good[:2] + ["id 0 1 1 1 1 0 0.1 -0.2 2"] + good[3:]),
        "S001C001P001R001A009": "\n".join(good + ["extra"]),
        "S001C001P001R001A010": "0\n",
        "not_an_ntu_name": "\n".join(good),
    }
    for name, text in bad.items():
        _skeleton_file(raw / f"{name}.skeleton", text)
    return raw, sorted(bad)


def test_ntu_conversion_names_every_bad_file(cli, bad_ntu_folder, tmp_path):
    raw, bad = bad_ntu_folder
    out = tmp_path / "ntu.pkl"
    ran = cli.run("data", "convert", "ntu", raw, "--dataset", "ntu120", "--out", out, "--workers", "1")
    assert ran.rc == 1 and "Traceback" not in ran.text, ran.text
    for name in bad:
        assert f"{name}.skeleton" in ran.out, (name, ran.out)
    assert len(safe_load_pickle(out)["annotations"]) == 1


def test_ntu_conversion_keeps_good_output_and_checks_it_first(cli, bad_ntu_folder, tmp_path):
    raw, _ = bad_ntu_folder
    (raw / "S001C001P001R001A001.skeleton").unlink()  # now every file is bad
    out = tmp_path / "ntu.pkl"
    save_pickle({"annotations": ["the good earlier result"]}, out)
    before = digest(out)
    user_error(
        cli.run("data", "convert", "ntu", raw, "--dataset", "ntu120", "--out", out), 1, out, "not written"
    )
    assert digest(out) == before
    user_error(cli.run("data", "convert", "ntu", raw, "--dataset", "ntu90", "--out", out), 2, "ntu90")
    user_error(
        cli.run("data", "convert", "ntu", tmp_path / "nope", "--dataset", "ntu60", "--out", out), 2, "nope"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    user_error(cli.run("data", "convert", "ntu", empty, "--dataset", "ntu60", "--out", out), 2, empty)
    user_error(
        cli.run(
            "data", "convert", "ntu", raw, "--dataset", "ntu60", "--out", out, "--missing", tmp_path / "m.txt"
        ),
        2,
        "m.txt",
    )
    assert digest(out) == before


def test_read_only_outputs_are_refused_before_the_work(cli, files, bad_ntu_folder, tmp_path):
    if not cli.can_make_read_only():
        pytest.skip("running as root without user namespaces: no folder is read-only to this process")
    locked = tmp_path / "locked"
    locked.mkdir()
    raw, _ = bad_ntu_folder
    cases = [
        (["data", "convert", "ntu", raw, "--dataset", "ntu120", "--out", locked / "ntu.pkl"], 2),
        (["data", "synth", "skeleton", "--out", locked / "s.pkl", "--samples-per-class", "1"], 1),
        (["predict", files.skel_ckpt, files.npy, "--out", locked / "pred"], 2),
        (["train", "--set", *TRAIN, f"data.path={files.pickle}", f"work_dir={locked / 'run'}"], 2),
        (["export", files.skel_ckpt, "--out", locked / "m.onnx"], 2),
        (["extract-features", files.video, "--out", locked / "store"], 2),
    ]
    if mediapipe_available():
        cases.append((["pose", files.video, "--out", locked / "p.pkl"], 2))
    for args, rc in cases:
        ran = cli.run(*args, readonly=(locked,))
        user_error(ran, rc, locked)
        assert not any(locked.iterdir()), args
    config = tmp_path / "eval.yaml"
    config.write_text(yaml.safe_dump({"model": {"name": "star_64"}, "data": {"path": str(files.pickle)}}))
    ran = cli.run("eval", config, "--checkpoint", files.skel_ckpt, "--out", locked, readonly=(locked,))
    user_error(ran, 2, locked)


def test_a_full_disk_names_the_path_and_keeps_the_last_checkpoint(cli, files, tmp_path):
    if not cli.mounts:
        pytest.skip("no user namespaces here: cannot mount a small filesystem")
    disk = tmp_path / "disk"
    disk.mkdir()
    work = disk / "run"
    ran = cli.run(
        "train",
        "--set",
        *TRAIN,
        "trainer.max_epochs=3",
        f"data.path={files.pickle}",
        f"work_dir={work}",
        tmpfs=(disk, "160k"),
    )
    user_error(ran, 1, "no space left on device", str(disk))


# --------------------------------------------------------------------------------------------------
# Videos: broken files, cut files, variable frame rates, nobody in the picture


def test_broken_videos_are_one_line_naming_the_file(cli, files, tmp_path):
    cases = {"random.mp4": os.urandom(4096), "empty.mp4": b"", "text.avi": b"hello\n" * 20}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    audio = tmp_path / "audio.mp4"
    with av.open(str(audio), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    for name in [*cases, "audio.mp4"]:
        ran = cli.run("predict", files.video_ckpt, tmp_path / name, "--out", tmp_path / "pred")
        user_error(ran, 1, tmp_path / name)
    user_error(cli.run("predict", files.video_ckpt, tmp_path / "missing.mp4"), 2, "missing.mp4")
    user_error(cli.run("predict", tmp_path, files.video), 2, "model.safetensors")
    user_error(cli.run("predict", files.video_ckpt, files.video, "--window", "0"), 2, "window")
    user_error(cli.run("predict", files.skel_ckpt, tmp_path / "random.mp4"), 1, "random.mp4")


def test_a_cut_video_warns_with_decoded_and_expected_frames(cli, files, tmp_path):
    whole = write_video(tmp_path / "whole.mp4", noise(60, seed=2), movflags="faststart")
    cut = tmp_path / "cut.mp4"
    data = whole.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    ran = cli.run("predict", files.video_ckpt, cut, "--out", tmp_path / "pred")
    assert ran.rc == 0, ran.text[-2000:]
    assert "cut.mp4: decoded" in ran.text and "of the 60 frames" in ran.text, ran.text[-2000:]
    ran = cli.run("predict", files.video_ckpt, whole, "--out", tmp_path / "pred2")
    assert ran.rc == 0 and "decoded" not in ran.text


@needs_mediapipe
def test_variable_frame_rate_avi_pose_and_clips_agree(cli, tmp_path):
    from lightact.data.video.clips import read_clip
    from lightact.data.video.reader import video_info

    video, slots = vfr_avi(tmp_path / "vfr.avi")
    out = tmp_path / "vfr.pkl"
    ran = cli.run("pose", video, "--out", out, "--workers", "1")
    assert ran.rc == 0, ran.text[-2000:]
    ann = safe_load_pickle(out)["annotations"][0]
    info = video_info(video)
    assert ann["total_frames"] == info.num_frames == 444
    assert ann["total_frames"] / ann["fps"] == pytest.approx(29.6)
    # The clip path numbers frames the same way: a slot the stream skips shows the frame before it.
    skipped = next(s for s in range(200, 443) if s not in slots)
    shown = max(s for s in slots if s < skipped)
    wanted = [0, skipped, 443]
    clip, _ = read_clip(video, wanted)
    grey = [int(clip[i].float().mean()) for i in range(len(wanted))]
    assert np.allclose(grey, [0, shown % 251, 443 % 251], atol=8), (grey, shown)


def test_a_variable_frame_rate_avi_is_not_taken_for_a_cut_file(tmp_path):
    """Its header counts frame slots (444), the decoder returns only the 68 held frames: the timed
    reader (pose, live, render) must judge a cut by the last frame's position, as the clip reader
    does, not by how many frames decoded; a file really cut short still warns."""
    import warnings

    from lightact.data.video.reader import iter_timed_frames

    video, slots = vfr_avi(tmp_path / "vfr.avi")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        times = [frame.time for frame in iter_timed_frames(video)]
    assert [round(t * 15) for t in times] == slots
    assert not [w for w in caught if "cut short" in str(w.message)], [str(w.message) for w in caught]
    whole = write_video(tmp_path / "whole.mp4", noise(60, seed=2), movflags="faststart")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.warns(UserWarning, match="cut.mp4: decoded .* of the 60 frames"):
        list(iter_timed_frames(cut))


@needs_mediapipe
def test_nobody_in_the_video_writes_the_empty_result(cli, files, tmp_path):
    pred = tmp_path / "pred"
    ran = cli.run("predict", files.skel_ckpt, files.video, "--out", pred)
    user_error(ran, 1, "no person", files.video, "noise.json")
    empty = json.loads((pred / "noise.json").read_text())
    assert empty["person"] is False and empty["windows"] == [] and empty["label"] is None


@needs_mediapipe
@needs_hug
def test_a_one_frame_video_of_a_person_is_classified(cli, files, tmp_path):
    with av.open(str(HUG)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    one = write_video(tmp_path / "one.mp4", [frame[::2, ::2].copy()])
    ran = cli.run("predict", files.skel_ckpt, one, "--out", tmp_path / "pred")
    assert ran.rc == 0, ran.text[-2000:]
    assert json.loads((tmp_path / "pred" / "one.json").read_text())["windows"]


# --------------------------------------------------------------------------------------------------
# 4. pose never loses good output


@needs_mediapipe
def test_pose_keeps_good_output_and_writes_nothing_on_usage_errors(cli, files, tmp_path):
    out = tmp_path / "poses.pkl"
    save_pickle({"annotations": ["earlier, good"]}, out)
    before = digest(out)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(os.urandom(2000))
    listing = tmp_path / "list.txt"
    listing.write_text(f"{broken} 0\n{tmp_path / 'gone.mp4'} 1\n")
    user_error(cli.run("pose", broken, listing, "--out", out, "--workers", "1"), 1, out, "not written")
    assert digest(out) == before
    fresh = tmp_path / "fresh.pkl"
    user_error(cli.run("pose", tmp_path / "missing.mp4", "--out", fresh), 2, "missing.mp4")
    user_error(cli.run("pose", files.video, "--out", fresh, "--labels", tmp_path / "no.txt"), 2, "no.txt")
    user_error(cli.run("pose", files.video, "--out", tmp_path), 2, tmp_path)
    assert not fresh.exists() and not Path(f"{fresh}.parts").exists()


@needs_mediapipe
def test_two_pose_runs_on_one_output_do_not_mix(cli, files, tmp_path):
    from lightact.utils import exclusive_lock

    out = tmp_path / "poses.pkl"
    with exclusive_lock(Path(f"{out}.lock"), "test"):
        user_error(cli.run("pose", files.video, "--out", out), 2, "in use", "poses.pkl.lock")
    assert not out.exists()


# --------------------------------------------------------------------------------------------------
# Concurrent training, export, bench, extract-features, --debug


def test_a_second_train_on_a_work_dir_in_use_is_refused(cli, files, tmp_path):
    work = tmp_path / "work"
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lightact.cli",
            "train",
            "--set",
            *TRAIN,
            "trainer.max_epochs=500",
            f"data.path={files.pickle}",
            f"work_dir={work}",
        ],
        env=cli.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while not (work / "config.yaml").is_file() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert first.poll() is None, "the first run ended early"
        ran = cli.run("train", "--set", *TRAIN, f"data.path={files.pickle}", f"work_dir={work}")
        user_error(ran, 2, work, "in use", str(first.pid))
    finally:
        first.kill()
        first.wait()


def test_export_bench_and_extract_features_mistakes(cli, files, tmp_path):
    user_error(cli.run("export", "nosuchmodel"), 2, "nosuchmodel")
    user_error(cli.run("export", "star_64", "--format", "tflite"), 2, "tflite")
    user_error(
        cli.run("export", "star_64", "--opset", "3", "--out", tmp_path / "m.onnx"), 1, "star_64", "opset"
    )
    user_error(cli.run("export", files.skel_ckpt, "--dynamic", "colour"), 1, "colour")
    ran = cli.run("bench", "nosuchmodel", "--out", tmp_path / "bench")
    assert ran.rc == 2 and "unknown model 'nosuchmodel'" in ran.text and not (tmp_path / "bench").exists()
    user_error(cli.run("extract-features", files.video, "--out", tmp_path / "s", "--fps", "0"), 2, "fps")
    user_error(
        cli.run("extract-features", files.video, "--out", tmp_path / "s", "--frame-encoder", "timm/nope"),
        2,
        "nope",
    )
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(os.urandom(3000))
    ran = cli.run(
        "extract-features", broken, "--out", tmp_path / "s2", "--frame-size", "32", "--clip-size", "32"
    )
    assert ran.rc == 1 and "broken.mp4" in ran.text and "Traceback" not in ran.text, ran.text[-2000:]


def test_debug_shows_the_traceback(cli, tmp_path):
    ran = cli.run("--debug", "train", "--set", "trainer.max_epoch=1")
    assert ran.rc == 1 and "Traceback" in ran.err and "ConfigError" in ran.err
    ran = cli.run("train", "--set", "trainer.max_epoch=1", env={"LIGHTACT_DEBUG": "1"})
    assert "Traceback" in ran.err
    user_error(cli.run("train", "--set", "trainer.max_epoch=1"), 2, "trainer.max_epoch")
    assert 'lightact = "lightact.cli:main"' in (ROOT / "pyproject.toml").read_text()


# --------------------------------------------------------------------------------------------------
# 5. kill -9: no worker outlives its parent


def _children() -> dict[int, int]:
    """pid -> parent pid of every process on the machine."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                out[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    return out


def _descendants(pid: int) -> set[int]:
    parents = _children()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def _command_line(pid: int) -> str:
    with contextlib.suppress(OSError):
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
    return "?"


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kill_and_check_orphans(cli, args: list, workers: int, tmp_path: Path) -> None:
    """Start ``lightact args``, wait until it has ``workers`` child processes (or has ended), kill it
    with SIGKILL, and check that none of its descendants outlives it by more than a few seconds."""
    parent = subprocess.Popen(
        [sys.executable, "-m", "lightact.cli", *map(str, args)],
        env=cli.env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seen: set[int] = set()
    deadline = time.monotonic() + 240
    while parent.poll() is None and time.monotonic() < deadline:
        seen |= _descendants(parent.pid)
        if len(seen) >= workers:
            break
        time.sleep(0.05)
    assert parent.poll() is None, "the command ended before its workers could be seen"
    seen |= _descendants(parent.pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in seen if _alive(p)]
    names = [_command_line(p) for p in left]
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"{len(left)} of {len(seen)} child process(es) outlived their parent: {names}"


@needs_mediapipe
def test_pose_workers_die_with_their_parent(cli, tmp_path):
    videos = [write_video(tmp_path / f"v{i}.mp4", noise(300, seed=i, size=(120, 160))) for i in range(4)]
    # The forkserver and two workers.
    kill_and_check_orphans(cli, ["pose", *videos, "--out", tmp_path / "p.pkl", "--workers", "2"], 3, tmp_path)


def test_ntu_workers_die_with_their_parent(cli, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    template = _good_ntu(tmp_path / "t.skeleton", frames=300).read_text()
    for i in range(1, 61):
        (raw / f"S001C001P001R001A{i:03d}.skeleton").write_text(template)
    args = [
        "data",
        "convert",
        "ntu",
        raw,
        "--dataset",
        "ntu120",
        "--out",
        tmp_path / "n.pkl",
        "--workers",
        "2",
    ]
    kill_and_check_orphans(cli, args, 2, tmp_path)
