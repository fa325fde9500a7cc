"""Deploying without PyTorch: what `lightact export` writes (metadata, suffix, exporter, atomic
replacement, int8), and predictors running from the .onnx file with ONNX Runtime, matching the torch
path within 1e-4; the ONNX path for skeletons and images runs in a process where torch cannot be
imported at all."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lightact.cli import app
from lightact.data.skeleton.layouts import NTU25
from lightact.export import ExportParityError, NotExportable, export_model
from lightact.inference import Recognizer
from lightact.models.registry import create_model
from lightact.models.star import STAR, PaddedSTAR, pad_packed

TRANSFORMS = ["center", {"name": "normalize_scale"}]
VIT = "timm/vit_tiny_patch16_224"
VIT_KWARGS = {"num_classes": 3, "img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2}
# Put first on PYTHONPATH, this makes `import torch` (and what needs it) fail in a subprocess.
NO_TORCH = (
    "import sys\nfor name in ('torch', 'torchvision', 'timm', 'lightning'):\n    sys.modules[name] = None\n"
)
SKELETON_DATA = {"test_transforms": TRANSFORMS, "clip_len": None, "max_frames": 300}


@pytest.fixture(scope="module")
def star_dir(tmp_path_factory, save_star):
    return save_star(tmp_path_factory.mktemp("star"), NTU25, "abcd", SKELETON_DATA, dim=16)


@pytest.fixture(scope="module")
def star_onnx(star_dir):
    return export_model(str(star_dir))


def _clip(frames=40, persons=1, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.3, (persons, frames, 25, 3)).astype(np.float32) + np.array([0, 1, 3], np.float32)


@pytest.mark.parametrize("segment_length", [None, 5])
def test_padded_star_equals_the_packed_forward_clip_by_clip(segment_length):
    torch.manual_seed(0)
    model = STAR(num_classes=7, dim=16, depth=2, heads=2, segment_length=segment_length).eval()
    lengths = [13, 1, 40, 7, 6]
    x = torch.randn(sum(lengths), 25, 9)
    ids = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    padded, got = pad_packed(x, ids)
    padded[1, 1:] = 1e3  # what padding holds must not matter
    with torch.no_grad():
        packed = model(x, ids)
        out = PaddedSTAR(model)(padded, got)
        alone = torch.cat([model(c, torch.zeros(len(c), dtype=torch.long)) for c in x.split(lengths)])
    torch.testing.assert_close(out, packed, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out, alone, atol=1e-5, rtol=1e-5)


def test_export_carries_classes_layout_and_preprocessing(star_dir, star_onnx):
    import onnx

    assert star_onnx.path == str(star_dir / "model.onnx") and star_onnx.exporter == "dynamo"
    props = {p.key: p.value for p in onnx.load(star_onnx.path).metadata_props}
    assert json.loads(props["classes"]) == list("abcd")
    preprocessing = json.loads(props["preprocessing"])
    assert preprocessing["test_transforms"] == TRANSFORMS and preprocessing["layout"]["name"] == "ntu25"
    assert preprocessing["in_channels"] == 9 and preprocessing["input_format"] == "packed"
    layout = json.loads(props["input_layout"])
    assert [i["name"] for i in layout["inputs"]] == ["x", "lengths"]
    assert layout["inputs"][0]["dynamic"] == {"0": "batch", "1": "frames"}
    description = json.loads(props["lightact"])
    assert description["kwargs"]["num_classes"] == 4 and description["modality"] == "skeleton"
    sidecar = json.loads((star_dir / "model.onnx.json").read_text())
    assert sidecar["exporter"] == "dynamo" and sidecar["meta"]["classes"] == list("abcd")


def test_out_gets_the_onnx_suffix(tmp_path, star_dir):
    result = CliRunner().invoke(app, ["export", str(star_dir), "--out", str(tmp_path / "exp")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "exp.onnx").is_file() and not (tmp_path / "exp").exists()
    assert (tmp_path / "exp.onnx.json").is_file()
    assert "torch's current exporter (dynamo)" in result.output and "4 class names" in result.output


def test_a_failed_export_leaves_the_previous_good_files_untouched(tmp_path, star_dir):
    out = tmp_path / "model.onnx"
    export_model(str(star_dir), out)
    before = out.read_bytes(), (tmp_path / "model.onnx.json").read_bytes()
    with pytest.raises(NotExportable, match="dynamo exporter.*legacy exporter"):
        export_model(str(star_dir), out, opset=5)  # an opset neither exporter supports
    with pytest.raises(ExportParityError):
        export_model(str(star_dir), out, tolerance=1e-12)  # a parity miss
    assert (out.read_bytes(), (tmp_path / "model.onnx.json").read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.onnx.json"]  # no leftovers


def test_the_legacy_exporter_is_the_fallback_and_says_why(tmp_path, star_dir, monkeypatch):
    import lightact.export.onnx as onnx_export

    real = onnx_export._trace

    def no_dynamo(exporter, *args):
        if exporter == "dynamo":
            raise RuntimeError("simulated torch.export failure")
        return real(exporter, *args)

    monkeypatch.setattr(onnx_export, "_trace", no_dynamo)
    result = export_model(str(star_dir), tmp_path / "m.onnx")
    assert result.exporter == "legacy" and "simulated torch.export failure" in result.fallback
    assert result.worst_diff <= 1e-4
    # The legacy exporter's warnings are shown, not swallowed.
    assert any("Warning" in line for line in result.warnings), result.warnings


def test_onnxruntime_skeleton_predictor_matches_torch(star_dir, star_onnx):
    torch_rec = Recognizer.from_checkpoint(star_dir)
    onnx_rec = Recognizer.from_checkpoint(star_dir, backend="onnxruntime")
    assert onnx_rec.backend == "onnxruntime" and onnx_rec.classes == torch_rec.classes
    clips = [{"keypoint": _clip(n, persons, seed=n)} for n, persons in ((40, 1), (17, 2), (3, 1))]
    np.testing.assert_allclose(onnx_rec.probabilities(clips), torch_rec.probabilities(clips), atol=1e-4)
    a = torch_rec.predict(_clip(120, 2), window=48, stride=16)
    b = onnx_rec.predict(_clip(120, 2), window=48, stride=16)
    assert [w.start_frame for w in a.windows] == [w.start_frame for w in b.windows]
    np.testing.assert_allclose(
        [w.probabilities for w in b.windows], [w.probabilities for w in a.windows], atol=1e-4
    )


def test_onnxruntime_padded_skeleton_and_image_predictors_match_torch(tmp_path, save_checkpoint):
    from lightact.inference.image import eval_views_numpy

    torch.manual_seed(0)
    stgcn_kwargs = {"num_classes": 3, "layout": "ntu25", "in_channels": 3}
    stgcn_dir = save_checkpoint(
        tmp_path / "stgcn", create_model("stgcn", **stgcn_kwargs), "stgcn", stgcn_kwargs, list("abc"),
        {**SKELETON_DATA, "max_frames": 32},
    )  # fmt: skip
    export_model(str(stgcn_dir))
    clips = [{"keypoint": _clip(n, 1, seed=n)} for n in (32, 20)]
    torch_rec, onnx_rec = (
        Recognizer.from_checkpoint(stgcn_dir),
        Recognizer.from_onnx(stgcn_dir / "model.onnx"),
    )
    np.testing.assert_allclose(onnx_rec.probabilities(clips), torch_rec.probabilities(clips), atol=1e-4)

    image_data = {"img_size": 32, "crop_pct": 0.875, "mean": [0.5] * 3, "std": [0.25] * 3, "num_crops": 2}
    image_model = create_model(VIT, **VIT_KWARGS)
    image_dir = save_checkpoint(tmp_path / "img", image_model, VIT, VIT_KWARGS, list("xyz"), image_data)
    export_model(str(image_dir))
    torch_rec, onnx_rec = Recognizer.from_checkpoint(image_dir), Recognizer.from_onnx(image_dir)
    pixels = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)
    # The same views: the ONNX graph against the PyTorch model, within 1e-4.
    views = eval_views_numpy(pixels, 32, 0.875, image_data["mean"], image_data["std"], 2)
    with torch.no_grad():
        expected = torch_rec.model(torch.from_numpy(views)).softmax(-1).mean(0).numpy()
    np.testing.assert_allclose(onnx_rec.probabilities(pixels), expected, atol=1e-4)
    # From the file: PIL's resize against torchvision's differs by rounding only.
    diff = np.abs(onnx_rec.probabilities(pixels) - torch_rec.probabilities(pixels)).max()
    assert diff < 2e-2, diff


def test_onnx_predictor_runs_where_torch_cannot_be_imported(tmp_path, star_dir, star_onnx):
    from lightact.data.skeleton.pickle_io import save_pickle

    np.save(tmp_path / "clip.npy", _clip(60, 1))
    save_pickle(
        {"annotations": [{"frame_dir": "s1", "label": 0, "keypoint": _clip(30, 2, seed=3)}]},
        tmp_path / "c.pkl",
    )
    (tmp_path / "sitecustomize.py").write_text(NO_TORCH)
    script = textwrap.dedent(
        f"""
        import json, sys
        from lightact.inference import Recognizer
        rec = Recognizer.from_onnx({str(star_dir)!r})
        out = {{
            "npy": rec.predict({str(tmp_path / "clip.npy")!r}).probabilities.tolist(),
            "pkl": rec.predict({str(tmp_path / "c.pkl")!r})[0].probabilities.tolist(),
            "torch_loaded": sys.modules.get("torch") is not None,
        }}
        print(json.dumps(out))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    check = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert check.returncode != 0  # the shim works: torch cannot be imported
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["torch_loaded"] is False
    torch_rec = Recognizer.from_checkpoint(star_dir)
    np.testing.assert_allclose(got["npy"], torch_rec.predict(tmp_path / "clip.npy").probabilities, atol=1e-4)
    np.testing.assert_allclose(got["pkl"], torch_rec.predict(tmp_path / "c.pkl")[0].probabilities, atol=1e-4)


def test_onnx_image_predictor_runs_where_torch_cannot_be_imported(tmp_path, save_checkpoint):
    from PIL import Image

    torch.manual_seed(0)
    data = {"img_size": 32, "crop_pct": 0.875, "mean": [0.5] * 3, "std": [0.25] * 3, "num_crops": 1}
    model = create_model(VIT, **VIT_KWARGS)
    folder = save_checkpoint(tmp_path / "img", model, VIT, VIT_KWARGS, list("xyz"), data)
    export_model(str(folder))
    pixels = np.random.default_rng(1).integers(0, 256, (50, 60, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    (tmp_path / "sitecustomize.py").write_text(NO_TORCH)
    script = (
        "import json, sys\nfrom lightact.inference import Recognizer\n"
        f"p = Recognizer.from_onnx({str(folder)!r}).predict({str(tmp_path / 'a.png')!r})\n"
        "print(json.dumps([p.probabilities.tolist(), sys.modules.get('torch') is not None]))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    probs, torch_loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert torch_loaded is False
    in_process = Recognizer.from_onnx(folder).predict(tmp_path / "a.png").probabilities
    np.testing.assert_allclose(probs, in_process, atol=1e-6)


def test_cli_predict_with_the_onnxruntime_backend(tmp_path, star_dir, star_onnx):
    np.save(tmp_path / "clip.npy", _clip(50, 1))
    result = CliRunner().invoke(
        app,
        [
            "predict",
            str(star_dir),
            str(tmp_path / "clip.npy"),
            "--backend",
            "onnxruntime",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "clip.json").read_text())
    expected = Recognizer.from_checkpoint(star_dir).predict(tmp_path / "clip.npy").probabilities
    np.testing.assert_allclose(saved["probabilities"], expected, atol=1e-4)
    missing = CliRunner().invoke(
        app, ["predict", str(tmp_path), str(tmp_path / "clip.npy"), "--backend", "onnxruntime"]
    )
    assert missing.exit_code == 2 and "lightact export" in missing.output


@pytest.mark.slow
def test_int8_export_reports_the_evaluation_split_accuracy(trained_work_dir, tmp_path):
    result = export_model(str(trained_work_dir), tmp_path / "model.onnx", quantize="int8")
    q = result.quantized
    assert (tmp_path / "model.int8.onnx").is_file() and (tmp_path / "model.int8.onnx.json").is_file()
    acc = q["accuracy"]
    assert acc["samples"] > 0 and {"top1_torch", "top1_fp32", "top1_int8"} <= set(acc)
    assert acc["top1_fp32"] == pytest.approx(acc["top1_torch"], abs=1e-9)
    assert q["size_bytes"]["int8"] < q["size_bytes"]["fp32"]
    int8 = Recognizer.from_onnx(tmp_path / "model.int8.onnx")
    assert int8.predict(_clip(40, 1)).label in int8.classes
