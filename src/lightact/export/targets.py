"""What to trace for each lightact model: the module, its example input and its dynamic axes.

A model may declare its own target by defining a method ``export_target() -> ExportTarget``; the
built-in families are known here. Every target has one input tensor named ``x`` and one output
``logits``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


class ExportError(RuntimeError):
    """An export that did not produce a verified ONNX file."""


class NotExportable(ExportError):
    """The model (or the requested dynamic axes) cannot be exported; the message says why."""


@dataclass
class ExportTarget:
    """The module to trace and its input: ``canonical`` is the example shape, ``axes`` maps each
    dimension that may be dynamic to its name, ``alternate`` gives a second size per axis name for
    the parity check on a differently shaped input."""

    module: nn.Module
    canonical: tuple[int, ...]
    axes: dict[int, str] = field(default_factory=dict)
    alternate: dict[str, int] = field(default_factory=dict)
    note: str = ""

    @property
    def axis_names(self) -> list[str]:
        return list(self.axes.values())

    def shape(self, sizes: Mapping[str, int] | None = None) -> tuple[int, ...]:
        sizes = sizes or {}
        return tuple(sizes.get(self.axes.get(d, ""), n) for d, n in enumerate(self.canonical))

    def example(self, sizes: Mapping[str, int] | None = None, seed: int = 0) -> Tensor:
        g = torch.Generator().manual_seed(seed)
        return torch.randn(self.shape(sizes), generator=g)

    def alternate_sizes(self, dynamic: list[str]) -> dict[str, int]:
        return {name: self.alternate[name] for name in dynamic if name in self.alternate}


STAR_NOTE = (
    "STAR exports as SingleClipSTAR: one clip [frames, joints, 9] per call -> [1, classes]. The packed "
    "batch reads clip lengths into Python and loops over clips, which a tracer would freeze to the "
    "traced lengths; the single-clip form computes every per-clip quantity with tensor operations, "
    "so the frame count stays dynamic. Batch clips by calling the session once per clip."
)


def export_target(model: nn.Module, modality: str | None = None) -> ExportTarget:
    """The export target of a lightact model (in eval mode); raises :class:`NotExportable`."""
    from lightact.models.composite import CompositeVideoTransformer
    from lightact.models.star import STAR, SingleClipSTAR
    from lightact.models.stgcn import STGCN

    model = model.eval()
    hook = getattr(model, "export_target", None)
    if callable(hook):
        return hook()
    if isinstance(model, STAR):
        # Canonical NTU input: 2 persons x 100 frames concatenated along time = 200 frames.
        return ExportTarget(
            SingleClipSTAR(model).eval(),
            canonical=(200, model.num_joints, model.in_channels),
            axes={0: "frames"},
            alternate={"frames": 137},
            note=STAR_NOTE,
        )
    if isinstance(model, STGCN):
        return ExportTarget(
            model,
            canonical=(1, model.in_channels, 300, model.layout.num_joints, 2),
            axes={0: "batch", 2: "frames", 4: "persons"},
            alternate={"batch": 2, "frames": 150, "persons": 1},
            note="ST-GCN: x [N, C, T, V, M] (persons M last), logits averaged over persons.",
        )
    size = getattr(model, "img_size", 224)
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if isinstance(model, CompositeVideoTransformer):
        return ExportTarget(
            model,
            canonical=(1, 3, 16, height, width),
            axes={0: "batch", 2: "frames"},
            alternate={"batch": 2, "frames": 8},
            note="video clip x [N, 3, T, H, W]",
        )
    if modality == "video":
        # Models built for a clip length (their position bias or shift pattern depends on it) say so.
        frames = getattr(model, "num_frames", None)
        return ExportTarget(
            model,
            canonical=(1, 3, frames or 16, height, width),
            axes={0: "batch"} if frames else {0: "batch", 2: "frames"},
            alternate={"batch": 2} if frames else {"batch": 2, "frames": 8},
            note=f"video clip x [N, 3, {frames or 'T'}, {height}, {width}]",
        )
    if modality == "image":
        return ExportTarget(
            model, canonical=(1, 3, height, width), axes={0: "batch"}, alternate={"batch": 2}, note="image"
        )
    if modality == "longvideo":
        raise NotExportable(
            "long-video models take several packed inputs (frame and clip features with their times "
            "and per-video lengths) and the ONNX path handles one-input models; the per-video encoders "
            "that make those features (timm/<name>, tv/<name>, video models) do export"
        )
    raise NotExportable(
        f"no canonical input is known for {type(model).__name__} (modality {modality!r}); "
        "give the model an export_target() method returning lightact.export.ExportTarget"
    )
