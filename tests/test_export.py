"""ONNX export: STAR's single-clip form, parity with PyTorch on inputs of different sizes, loud failures."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from lightact.cli import app
from lightact.export import (
    ExportParityError,
    ExportTarget,
    NotExportable,
    check_all_models,
    export_onnx,
    ort_session,
)
from lightact.export.onnx import export_target_onnx, parse_dynamic
from lightact.models.composite import CompositeVideoTransformer
from lightact.models.registry import _REGISTRY, create_model, model_entry, register_model
from lightact.models.spec import BatchedInput, ModelSpec
from lightact.models.star import STAR, SingleClipSTAR, pad_packed
from lightact.models.stgcn import STGCN


@pytest.mark.parametrize("segment_length", [None, 5])
def test_single_clip_star_equals_the_packed_forward(segment_length):
    torch.manual_seed(0)
    model = STAR(num_classes=7, dim=16, depth=2, heads=2, segment_length=segment_length).eval()
    single = SingleClipSTAR(model)
    for frames in (1, 5, 13, 40):
        x = torch.randn(frames, 25, 9)
        with torch.no_grad():
            expected = model(x, torch.zeros(frames, dtype=torch.long))
            torch.testing.assert_close(single(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("segment_length", [None, 6])
def test_star_exports_several_clips_per_call(tmp_path, segment_length):
    torch.manual_seed(0)
    model = STAR(num_classes=5, dim=16, depth=1, heads=2, segment_length=segment_length).eval()
    target = model_entry("star_64").export_target(model)
    assert target.axis_names == ["batch", "frames"] and target.input_names == ["x", "lengths"]
    result = export_target_onnx(target, tmp_path / "star.onnx", ["batch", "frames"])
    assert result.input_shapes_checked == [[2, 200, 25, 9], [3, 137, 25, 9]]
    assert result.worst_diff <= 1e-4
    # Clip counts and lengths the export never saw, padded to the longest: each row is PyTorch's
    # answer on that clip alone.
    session = ort_session(result.path)
    lengths = [31, 5, 17, 1]
    clips = [torch.randn(n, 25, 9) for n in lengths]
    x, got_lengths = pad_packed(
        torch.cat(clips), torch.repeat_interleave(torch.arange(4), torch.tensor(lengths))
    )
    assert got_lengths.tolist() == lengths
    got = session.run(None, {"x": x.numpy(), "lengths": got_lengths.numpy()})[0]
    with torch.no_grad():
        expected = torch.cat([model(c, torch.zeros(len(c), dtype=torch.long)) for c in clips]).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_stgcn_exports_with_dynamic_batch_frames_and_persons(tmp_path):
    torch.manual_seed(0)
    target = model_entry("stgcn").export_target(STGCN(num_classes=4))
    small = dataclasses.replace(
        target, canonical=(1, 3, 24, 25, 2), alternate={"batch": 2, "frames": 17, "persons": 1}
    )
    result = export_target_onnx(small, tmp_path / "stgcn.onnx", parse_dynamic("all", small))
    assert result.input_shapes_checked == [[1, 3, 24, 25, 2], [2, 3, 17, 25, 1]]
    assert result.worst_diff <= 1e-4


def test_composite_exports_with_dynamic_batch_and_frames(tmp_path):
    torch.manual_seed(0)
    model = CompositeVideoTransformer(num_classes=3, backbone="test_efficientnet", dim=32, depth=1, heads=2)
    target = dataclasses.replace(
        model_entry("composite_mnv3s").export_target(model),
        canonical=(1, 3, 4, 64, 64),
        alternate={"batch": 2, "frames": 3},
    )
    result = export_target_onnx(target, tmp_path / "composite.onnx", ["batch", "frames"])
    assert result.input_shapes_checked == [[1, 3, 4, 64, 64], [2, 3, 3, 64, 64]]
    assert result.worst_diff <= 1e-4


@pytest.mark.parametrize("name", ["pst_xs", "swin3d_joint_xs"])
def test_video_transformers_export_at_their_clip_shape(tmp_path, name):
    # Their shift pattern and 3D position bias are built for one clip length: only the batch is dynamic.
    torch.manual_seed(0)
    target = model_entry(name).export_target(
        create_model(name, num_classes=4, embed_dim=16, num_heads=(1, 2))
    )
    assert target.canonical == (1, 3, 8, 32, 32) and target.axis_names == ["batch"]
    result = export_target_onnx(target, tmp_path / f"{name}.onnx", ["batch"])
    assert result.input_shapes_checked == [[1, 3, 8, 32, 32], [2, 3, 8, 32, 32]]
    assert result.worst_diff <= 1e-4


def test_long_video_models_are_listed_with_the_reason():
    with pytest.raises(NotExportable, match="several packed inputs"):
        model_entry("stan").export_target(create_model("stan", num_classes=3))


class FrozenBatch(nn.Module):
    """Reads the batch size into Python: a tracer records it as a constant."""

    def forward(self, x):
        return x * float(x.shape[0])


def test_a_trace_that_freezes_a_size_fails_loudly(tmp_path):
    path = tmp_path / "bad.onnx"
    with pytest.raises(ExportParityError) as err:
        export_onnx(
            FrozenBatch(),
            torch.ones(1, 3),
            path,
            dynamic_axes={0: "batch"},
            verify_inputs=[torch.ones(2, 3)],
            exporter="legacy",  # torch.export keeps the size symbolic; tracing freezes it
        )
    assert err.value.max_abs_diff == pytest.approx(1.0)
    assert "> 0.0001" in str(err.value)
    assert not path.exists()  # no unverified file left behind


def test_asking_for_an_axis_the_model_lacks_is_an_error():
    target = model_entry("star_64").export_target(STAR(num_classes=3, dim=16, depth=1, heads=2))
    with pytest.raises(NotExportable, match="no dynamic axis persons.*PaddedSTAR"):
        parse_dynamic("batch,persons", target)
    assert parse_dynamic("frames", target) == ["frames"]


def test_every_registered_model_is_exported_or_listed_with_a_reason(tmp_path, monkeypatch):
    # A model whose export fails (its example input does not fit it) is a row with the reason.
    spec = ModelSpec("audio", "features", (), BatchedInput(lambda m: (3,)), lambda m: ExportTarget(m, (1, 3)))

    @register_model("test_unexportable", spec, description="x")
    def _factory(**kwargs) -> nn.Linear:
        return nn.Linear(4, 2)

    try:
        # One cheap exportable model beside the failing one (every model's own export is
        # tests/test_models.py's test_model_exports_with_parity).
        monkeypatch.setattr(
            "lightact.models.registry.list_models", lambda: ["clip3d_tiny", "test_unexportable"]
        )
        rows = {row["model"]: row for row in check_all_models(tmp_path)}
    finally:
        _REGISTRY.pop("test_unexportable")
    exported = rows["clip3d_tiny"]
    assert exported["status"] == "exported" and exported["max_abs_diff"] <= 1e-4
    assert exported["dynamic"] == "batch,frames"
    assert rows["test_unexportable"]["status"] == "not exportable"
    assert "torch.onnx.export failed" in rows["test_unexportable"]["reason"]


def test_cli_export_writes_a_verified_file_and_its_description(tmp_path):
    out = tmp_path / "star.onnx"
    result = CliRunner().invoke(
        app, ["export", "star_64", "--format", "onnx", "--dynamic", "frames", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "max |diff|" in result.output and out.is_file()
    meta = json.loads(out.with_name("star.onnx.json").read_text())
    assert meta["meta"]["input"]["dynamic"] == {"1": "frames"}
    assert meta["input_shapes_checked"][1] == [2, 137, 25, 9]

    bad = CliRunner().invoke(
        app, ["export", "star_64", "--dynamic", "persons", "--out", str(tmp_path / "x.onnx")]
    )
    assert bad.exit_code == 1 and "no dynamic axis persons" in bad.output


def test_a_checkpoint_exports_beside_its_weights(tmp_path):
    from lightact.engine.checkpoint import save_weights

    torch.manual_seed(0)
    kwargs = {"num_classes": 3, "dim": 16, "depth": 1, "heads": 2}
    save_weights(
        STAR(**kwargs),
        tmp_path / "model.safetensors",
        {"model": "star_64", "kwargs": kwargs, "classes": ["a", "b", "c"]},
    )
    result = CliRunner().invoke(app, ["export", str(tmp_path), "--dynamic", "all"])
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "model.onnx.json").read_text())
    assert meta["meta"]["classes"] == ["a", "b", "c"] and meta["max_abs_diff"][1] <= 1e-4
