"""Resolve benchmark model names to a module, its canonical input and its efficiency class.

Names:

* a lightact registry name (``star_64``, ``stgcn``, ``composite_mnv3s``, ...) or a checkpoint path;
* ``tv/<name>``: a torchvision video model (``tv/r3d_18``, ``tv/mvit_v2_s``, ...);
* ``timm/<name>``: any timm model (``timm/vit_tiny_patch16_224``, ``timm/halonet26t``, ...).

Everything is built with random weights (``weights=None`` / ``pretrained=False``): nothing is
downloaded, and latency does not depend on the weights' values.

Classes follow the efficiency study of lightweight video transformers (arXiv 2111.09641):
``composite`` (a transformer on a CNN backbone), ``attention-only`` (a transformer on patches or
joints), ``stand-alone attention`` (self-attention blocks replacing convolutions inside a CNN, in the
sense of Ramachandran et al. 2019: BoTNet, HaloNet, LambdaNet), plus the ``convolution`` baselines.
lightact's models declare their class, canonical input and export form in their spec
(:mod:`lightact.models.spec`); timm and torchvision models are classified and sized here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from lightact.errors import UnknownNameError
from lightact.models.spec import (
    ATTENTION_ONLY,
    COMPOSITE,
    CONVOLUTION,
    STANDALONE,
    UNCLASSIFIED,
    NotExportable,
    random_input,
)

# torchvision video models: (frames, crop) of the published weights' evaluation transforms, the
# input at which torchvision's metadata states their FLOPs (e.g. r3d_18: 40.7 G multiply-adds).
TORCHVISION_VIDEO: dict[str, tuple[str, int, int]] = {
    "r3d_18": (CONVOLUTION, 16, 112),
    "mc3_18": (CONVOLUTION, 16, 112),
    "r2plus1d_18": (CONVOLUTION, 16, 112),
    "s3d": (CONVOLUTION, 16, 224),
    "mvit_v1_b": (ATTENTION_ONLY, 16, 224),
    "mvit_v2_s": (ATTENTION_ONLY, 16, 224),
    "swin3d_t": (ATTENTION_ONLY, 16, 224),
    "swin3d_s": (ATTENTION_ONLY, 16, 224),
    "swin3d_b": (ATTENTION_ONLY, 16, 224),
}

_TIMM_CLASSES: list[tuple[str, str]] = [
    (r"botnet|halonet|halo2bot|lambda_|lamhalo|haloregnet|sebotnet", STANDALONE),
    (r"mobilevit|levit|coat|convit|efficientformer|edgenext|maxvit|coatnet|fastvit", COMPOSITE),
    (r"^(vit|deit|swin|pvt|twins|xcit|cait|beit|eva|crossvit|tnt|gcvit|davit|mvitv2)", ATTENTION_ONLY),
    (r"resnet|resnext|mobilenet|efficientnet|convnext|regnet|ghostnet|mnasnet|densenet|vgg", CONVOLUTION),
]

# ``lightact bench @default``: the study's three classes, at least two models each, and the
# convolutional baselines, across skeleton, video and image inputs.
DEFAULT_MODELS: tuple[str, ...] = (
    "star_64",  # attention-only (skeleton)
    "stgcn",  # convolution (skeleton graph)
    "composite_mnv3s",  # composite (video)
    "composite_r18",  # composite (video)
    "tv/r3d_18",  # convolution (video)
    "tv/mvit_v2_s",  # attention-only (video)
    "timm/deit_tiny_patch16_224",  # attention-only (image)
    "timm/mobilevit_xxs",  # composite (image: convolutions and transformer blocks)
    "timm/botnet26t_256",  # stand-alone attention (image)
    "timm/lambda_resnet26t",  # stand-alone attention (image; halonet26t does not export to ONNX)
    "timm/resnet18",  # convolution (image)
)


def expand(names: list[str] | tuple[str, ...]) -> list[str]:
    """Replace ``@default`` by :data:`DEFAULT_MODELS`; keep order, drop repeats."""
    out: list[str] = []
    for name in names:
        for item in DEFAULT_MODELS if name == "@default" else (name,):
            if item not in out:
                out.append(item)
    return out


@dataclass
class BenchModel:
    """A model ready to time. ``inputs(batch)`` gives the forward arguments for ``batch`` samples;
    ``onnx_calls(inputs)`` turns them into the ONNX session's calls, one tuple of inputs each (STAR's
    padded form: one call with the padded clips and their lengths)."""

    name: str
    module: nn.Module
    source: str  # lightact, torchvision or timm
    model_class: str
    modality: str
    sample_shape: tuple[int, ...]  # one sample's first input, batch axis left out
    input_desc: str
    inputs: Callable[[int], tuple[Tensor, ...]]
    onnx_module: nn.Module | None = None
    onnx_names: list[str] = field(default_factory=lambda: ["x"])  # the exported graph's inputs
    onnx_axes: dict[str, dict[int, str]] = field(default_factory=lambda: {"x": {0: "batch"}})
    onnx_calls: Callable[[tuple[Tensor, ...]], list[tuple[Tensor, ...]]] = lambda inputs: [(inputs[0],)]
    # A second, differently sized input of the exported graph to verify on.
    onnx_alternate: Callable[[], tuple[Tensor, ...]] | None = None
    not_onnx: str | None = None  # why there is no ONNX path
    note: str = ""


def parse_shape(text: str) -> tuple[int, ...]:
    """``"3x16x112x112"`` (or commas) -> ``(3, 16, 112, 112)``."""
    try:
        dims = tuple(int(d) for d in re.split(r"[x,]", text.strip().lower()) if d)
    except ValueError:
        raise ValueError(f"bad shape {text!r}: write it like 3x16x112x112") from None
    if not dims or any(d <= 0 for d in dims):
        raise ValueError(f"bad shape {text!r}")
    return dims


def _batched(shape: tuple[int, ...]) -> Callable[[int], tuple[Tensor, ...]]:
    return lambda batch: (random_input((batch, *shape)),)


def timm_class(name: str) -> str:
    for pattern, label in _TIMM_CLASSES:
        if re.search(pattern, name):
            return label
    return UNCLASSIFIED


def _torchvision(name: str, shape: tuple[int, ...] | None) -> BenchModel:
    import torchvision.models.video as tvv

    if not hasattr(tvv, name) or name.startswith("_") or name[0].isupper():
        raise UnknownNameError(f"torchvision has no video model {name!r}")
    label, frames, crop = TORCHVISION_VIDEO.get(name, (UNCLASSIFIED, 16, 224))
    module = getattr(tvv, name)(weights=None)
    shape = shape or (3, frames, crop, crop)
    desc = f"clip {'x'.join(map(str, shape))} (C x T x H x W)"
    return BenchModel(
        f"tv/{name}", module, "torchvision", label, "video", shape, desc, _batched(shape), module
    )


def _timm(name: str, shape: tuple[int, ...] | None) -> BenchModel:
    import timm

    module = timm.create_model(name, pretrained=False)
    shape = shape or tuple(module.pretrained_cfg.get("input_size", (3, 224, 224)))
    desc = f"image {'x'.join(map(str, shape))} (C x H x W)"
    return BenchModel(
        f"timm/{name}", module, "timm", timm_class(name), "image", shape, desc, _batched(shape), module
    )


def _lightact(name: str, shape: tuple[int, ...] | None) -> BenchModel:
    """A registered model or a checkpoint, with the input, export form and class its spec declares."""
    from lightact.export.onnx import load_source
    from lightact.models.registry import model_entry

    module, meta = load_source(name)
    spec = model_entry(meta["model"]).spec
    example = spec.example_input
    sample = tuple(shape or example.shape(module))
    example(module, 1, shape)  # an input this model cannot take fails here, before any timing
    bench = BenchModel(
        name,
        module,
        "lightact",
        spec.efficiency_class,
        spec.modality,
        sample,
        f"{spec.modality} {example.describe(sample)}",
        lambda batch: example(module, batch, shape),
    )
    try:
        target = spec.export_target(module)
    except NotExportable as err:
        bench.not_onnx = str(err)
        return bench
    bench.onnx_module = target.module
    bench.onnx_names = target.input_names
    if target.feeds is not None:  # the export takes other inputs than the model
        bench.onnx_axes = target.input_axes(target.axis_names)
        bench.onnx_calls = target.calls
        bench.onnx_alternate = lambda: target.example(target.alternate_sizes(target.axis_names), seed=1)
        bench.note = f"onnxruntime: {target.note.split(':')[0]}"
    elif target.axes.get(0) != "batch":
        raise KeyError(f"{name}: its export has no batch axis; the benchmark cannot batch it")
    return bench


def check_name(name: str) -> None:
    """Refuse a name that :func:`resolve` cannot build, before a benchmark run starts."""
    from pathlib import Path

    if name.startswith("tv/"):
        import torchvision.models.video as tvv

        if not hasattr(tvv, name[3:]) or name[3:].startswith("_") or name[3:][:1].isupper():
            raise UnknownNameError(f"torchvision has no video model {name[3:]!r}")
    elif name.startswith("timm/"):
        import timm

        if not timm.is_model(name[5:]):
            raise UnknownNameError(f"timm has no model {name[5:]!r}")
    elif not Path(name).exists():
        from lightact.models.registry import model_entry

        model_entry(name)


def resolve(name: str, shape: tuple[int, ...] | None = None, seed: int = 0) -> BenchModel:
    """Build the named model (random weights, seeded) in eval mode with its canonical input;
    ``shape`` overrides one sample's input shape (batch axis left out)."""
    torch.manual_seed(seed)
    if name.startswith("tv/"):
        bench = _torchvision(name[3:], shape)
    elif name.startswith("timm/"):
        bench = _timm(name[5:], shape)
    else:
        bench = _lightact(name, shape)
    bench.module.eval()
    return bench
