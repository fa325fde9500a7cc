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
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

COMPOSITE = "composite"
ATTENTION_ONLY = "attention-only"
STANDALONE = "stand-alone attention"
CONVOLUTION = "convolution"

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

# By name prefix. STAN and the single-stream transformer count as composite: they are transformers
# over CNN features (cached by `lightact extract-features`), the study's composite design.
_LIGHTACT_CLASSES = {
    "star": ATTENTION_ONLY,
    "pst": ATTENTION_ONLY,
    "swin": ATTENTION_ONLY,
    "stgcn": CONVOLUTION,
    "clip3d": CONVOLUTION,
    "composite": COMPOSITE,
    "stan": COMPOSITE,
    "single_stream": COMPOSITE,
    "meanpool": "linear",
}

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
    ``onnx_calls(inputs)`` turns them into the ONNX session's calls (one call per sample for models
    whose export takes one sample at a time)."""

    name: str
    module: nn.Module
    source: str  # lightact, torchvision or timm
    model_class: str
    modality: str
    sample_shape: tuple[int, ...]  # one sample's first input, batch axis left out
    input_desc: str
    inputs: Callable[[int], tuple[Tensor, ...]]
    onnx_module: nn.Module | None = None
    onnx_axes: dict[int, str] = field(default_factory=lambda: {0: "batch"})
    onnx_calls: Callable[[tuple[Tensor, ...]], list[Tensor]] = lambda inputs: [inputs[0]]
    onnx_alternate: Callable[[], Tensor] | None = None  # a second, differently sized input to verify on
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


def _randn(shape: tuple[int, ...], seed: int = 0) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _batched(shape: tuple[int, ...]) -> Callable[[int], tuple[Tensor, ...]]:
    return lambda batch: (_randn((batch, *shape)),)


def timm_class(name: str) -> str:
    for pattern, label in _TIMM_CLASSES:
        if re.search(pattern, name):
            return label
    return "unclassified"


def _lightact_class(module: nn.Module, name: str) -> str:
    declared = getattr(module, "efficiency_class", None)
    if declared:
        return str(declared)
    for prefix, label in _LIGHTACT_CLASSES.items():
        if name.startswith(prefix):
            return label
    return "unclassified"


def _torchvision(name: str, shape: tuple[int, ...] | None) -> BenchModel:
    import torchvision.models.video as tvv

    if not hasattr(tvv, name) or name.startswith("_") or name[0].isupper():
        raise KeyError(f"torchvision has no video model {name!r}")
    label, frames, crop = TORCHVISION_VIDEO.get(name, ("unclassified", 16, 224))
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


def _star(name: str, module: nn.Module, shape: tuple[int, ...] | None) -> BenchModel:
    from lightact.export.targets import STAR_NOTE
    from lightact.models.star import SingleClipSTAR

    # Canonical: one NTU clip of 2 persons x 100 frames, persons concatenated along time (packed).
    frames, joints, channels = shape or (200, module.num_joints, module.in_channels)

    def inputs(batch: int) -> tuple[Tensor, ...]:
        x = _randn((batch * frames, joints, channels))
        return x, torch.arange(batch).repeat_interleave(frames)

    def onnx_calls(inputs: tuple[Tensor, ...]) -> list[Tensor]:
        return list(inputs[0].split(frames))

    return BenchModel(
        name,
        module,
        "lightact",
        _lightact_class(module, name),
        "skeleton",
        (frames, joints, channels),
        f"skeleton {frames}x{joints}x{channels} (2 persons x {frames // 2} frames, packed)",
        inputs,
        SingleClipSTAR(module).eval(),
        onnx_axes={0: "frames"},
        onnx_calls=onnx_calls,
        onnx_alternate=lambda: _randn((max(frames * 2 // 3, 1), joints, channels), seed=1),
        note="onnxruntime runs one clip per call (" + STAR_NOTE.split(":")[0] + ")",
    )


def _lightact(name: str, shape: tuple[int, ...] | None) -> BenchModel:
    from lightact.export.onnx import load_source
    from lightact.export.targets import NotExportable, export_target
    from lightact.models.star import STAR

    module, meta = load_source(name)
    model_name = meta.get("model") or name
    if isinstance(module, STAR):
        return _star(name, module, shape)
    try:
        target = export_target(module, meta.get("modality"))
    except NotExportable as err:
        example = getattr(module, "example_inputs", None)
        if not callable(example):
            raise KeyError(f"{name}: {err}") from None
        return BenchModel(
            name, module, "lightact", _lightact_class(module, model_name), meta.get("modality") or "?",
            tuple(example(1)[0].shape[1:]), "declared by the model", lambda b: tuple(example(b)),
            not_onnx=str(err),
        )  # fmt: skip
    if 0 not in target.axes:
        raise KeyError(f"{name}: its export has no batch axis; the benchmark cannot batch it")
    sample = shape or target.canonical[1:]
    desc = f"{meta.get('modality') or 'input'} {'x'.join(map(str, sample))}"
    if model_name == "stgcn":
        desc = f"skeleton {'x'.join(map(str, sample))} (C x T x V x M)"
    onnx_axes = {0: "batch"}
    return BenchModel(
        name, module, "lightact", _lightact_class(module, model_name), meta.get("modality") or "?",
        tuple(sample), desc, _batched(tuple(sample)), target.module, onnx_axes=onnx_axes,
    )  # fmt: skip


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
