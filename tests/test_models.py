"""Every registered model against its own spec (timm's tests/test_models.py): it builds from what a
data module offers, runs forward and backward on its example input, and exports to ONNX with parity,
or its spec says why not."""

import dataclasses

import pytest
import torch

from lightact.export.onnx import export_target_onnx
from lightact.models.registry import constructor_arguments, create_model, list_models, model_entry
from lightact.models.spec import EFFICIENCY_CLASSES, NotExportable

# What a small data module would offer (each model takes the arguments its spec declares), and small
# sizes for the dynamic axes of the example input; everything else stays canonical.
OFFERED = {"num_classes": 3, "num_frames": 4, "img_size": 32, "frame_dim": 16, "clip_dim": 8}
SMALL = {"batch": 1, "frames": 4, "persons": 1}
SMALL_ALTERNATE = {"batch": 2, "frames": 3, "persons": 2}
BATCH = 2
MODALITIES = ("skeleton", "video", "image", "longvideo")


# Exported smaller than built (the export of every block goes through torch's exporter, about 3 s
# each here): STAR's other variants at one block (their blocks are all alike; star_64 exports whole),
# the paper-sized PST variants at width 48 / 32 with two blocks a stage (each stage's two block kinds;
# their own 12 and 24 blocks, 28M and 88M parameters, only repeat those and took 1 and 2 minutes).
EXPORT_SMALLER = {
    "star_128": {"depth": 1},
    "star_64_paper": {"depth": 1},
    "star_128_paper": {"depth": 1},
    "pst_t": {"embed_dim": 48, "depths": (2, 2, 2, 2)},
    "pst_b": {"embed_dim": 32, "depths": (2, 2, 2, 2)},
}


def _build(name: str, **overrides) -> torch.nn.Module:
    entry = model_entry(name)
    torch.manual_seed(0)
    return create_model(name, **entry.data_arguments(OFFERED), **overrides)


def _small_sample(name: str, model: torch.nn.Module) -> tuple[int, ...] | None:
    """One sample's input shape with the dynamic axes shrunk; None (canonical) when not exportable."""
    try:
        target = model_entry(name).export_target(model)
    except NotExportable:
        return None
    return target.shape(SMALL)[1:]  # every export's axis 0 is the batch (STAR's: its clips)


@pytest.mark.parametrize("name", list_models())
def test_model_spec_is_complete(name):
    entry = model_entry(name)
    assert entry.modality in MODALITIES and entry.spec.efficiency_class in EFFICIENCY_CLASSES
    assert "num_classes" in entry.spec.data_args
    assert set(entry.spec.data_args) <= set(entry.accepts)
    assert entry.description


@pytest.mark.parametrize("name", list_models())
def test_model_forward_and_backward(name):
    entry = model_entry(name)
    model = _build(name).train()
    inputs = entry.example_input(model, BATCH, _small_sample(name, model))
    out = model(*inputs)
    assert out.shape == (BATCH, OFFERED["num_classes"]) and torch.isfinite(out).all()
    out.float().square().mean().backward()
    # Every trainable parameter gets a gradient: one that never does makes DDP wait for it every
    # step, an error unless find_unused_parameters (STAN's self-attention layers had a context norm
    # they never ran).
    missing = [key for key, param in model.named_parameters() if param.requires_grad and param.grad is None]
    assert not missing, missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", list_models())
def test_model_exports_with_parity(name, tmp_path):
    entry = model_entry(name)
    model = _build(name, **EXPORT_SMALLER.get(name, {}))
    try:
        target = entry.export_target(model)
    except NotExportable as reason:
        pytest.skip(f"{name}: {reason}")
    small = dataclasses.replace(
        target,
        canonical=target.shape(SMALL),
        alternate={axis: n for axis, n in SMALL_ALTERNATE.items() if axis in target.axis_names},
    )
    result = export_target_onnx(small, tmp_path / f"{name}.onnx", small.axis_names)
    assert len(result.input_shapes_checked) == 2 and result.worst_diff <= 1e-4
    # The model's own inputs reach the exported module as the spec says.
    calls = small.calls(entry.example_input(model, BATCH, _small_sample(name, model)))
    assert len(calls) == 1 and len(calls[0]) == len(small.input_names)  # one call for the whole batch


def test_constructor_arguments_follow_kwargs_into_base_classes():
    class Base(torch.nn.Module):
        def __init__(self, num_classes: int = 2, img_size: int = 8) -> None:
            super().__init__()

    class Child(Base):
        def __init__(self, depth: int = 1, **kwargs) -> None:
            super().__init__(**kwargs)

    class Opaque(torch.nn.Module):
        def __init__(self, **kwargs) -> None:
            super().__init__()

    assert constructor_arguments(Child) == (("depth", "num_classes", "img_size"), True)
    assert constructor_arguments(Opaque) == ((), False)


def test_data_modules_pass_only_what_a_model_takes():
    offered = {"num_classes": 5, "num_frames": 8, "img_size": 64}
    assert model_entry("pst_xs").data_arguments(offered) == offered  # built for one clip length and size
    assert model_entry("composite_mnv3s").data_arguments(offered) == {"num_classes": 5}
    assert model_entry("tv/r3d_18").data_arguments(offered) == {"num_classes": 5}
    assert model_entry("timm/vit_tiny_patch16_224").data_arguments(offered) == {
        "num_classes": 5,
        "img_size": 64,
    }
    assert model_entry("timm/convnext_atto").data_arguments(offered) == {"num_classes": 5}
    with pytest.raises(TypeError, match="num_frames"):
        create_model("tv/r3d_18", num_classes=5, num_frames=8)  # no longer swallowed


@pytest.mark.parametrize("name", ["clip3d_tiny", "tv/r3d_18"])
def test_weights_saved_with_the_former_video_arguments_still_load(tmp_path, name):
    # Until data modules passed only what a model takes, every video model's weights recorded the
    # clip length and size, also for the models that ignored them.
    from lightact.engine.checkpoint import load_model, save_weights

    torch.manual_seed(0)
    model = create_model(name, num_classes=3)
    kwargs = {"num_classes": 3, "num_frames": 8, "img_size": 64}
    save_weights(
        model, tmp_path / "model.safetensors", {"model": name, "kwargs": kwargs, "classes": list("abc")}
    )
    loaded, _ = load_model(tmp_path)
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model.eval()(x))


def test_image_models_export_at_the_size_they_are_built_for():
    # A ViT trained at the data's image size keeps it on its patch embedding, not as img_size.
    model = create_model("timm/test_vit", num_classes=2, img_size=32)
    assert model_entry("timm/test_vit").export_target(model).canonical == (1, 3, 32, 32)
    assert model_entry("timm/resnet18").export_target(create_model("timm/resnet18")).canonical == (
        1,
        3,
        224,
        224,
    )
