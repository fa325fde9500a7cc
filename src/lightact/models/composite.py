"""Composite video models: a 2D CNN encodes every frame, a small transformer models time.

The efficiency benchmark of lightweight video transformers (arXiv 2111.09641) names this class
*composite* (a transformer on top of a CNN backbone, as in VTN or the "CNN + temporal transformer"
baselines) and finds it the best lightweight trade-off. Neither torchvision nor timm ships one, so
lightact registers two here:

* ``composite_mnv3s``: MobileNetV3-Small (timm ``mobilenetv3_small_100``) per frame;
* ``composite_r18``: ResNet-18 (timm ``resnet18``) per frame.

Input ``[N, 3, T, H, W]`` (the torchvision video layout) -> logits ``[N, num_classes]``. Frames are
folded into the batch for the CNN, each frame's pooled feature becomes a token, a sinusoidal code of
the frame index is added (so any ``T`` works), a class token is prepended, and ``depth`` pre-norm
transformer blocks run over the ``T + 1`` tokens. Backbones start from random weights unless
``pretrained_backbone=True`` (which lets timm download ImageNet weights).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor, nn

from lightact.models.layers import SelfAttentionBlock, sinusoidal_code
from lightact.models.registry import register_model
from lightact.models.spec import CLIP_INPUT, COMPOSITE, ExportTarget, ModelSpec, clip_export


class CompositeVideoTransformer(nn.Module):
    """Per-frame CNN features -> temporal transformer with a class token -> linear classifier."""

    def __init__(
        self,
        num_classes: int = 400,
        backbone: str = "mobilenetv3_small_100",
        dim: int = 256,
        depth: int = 2,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        dropout: float = 0.1,
        pretrained_backbone: bool = False,
    ) -> None:
        super().__init__()
        import timm

        self.backbone = timm.create_model(backbone, pretrained=pretrained_backbone, num_classes=0)
        # Width of the pooled feature timm returns with num_classes=0 (after any pre-logits layer).
        features = getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features
        self.proj = nn.Linear(features, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.blocks = nn.ModuleList(SelfAttentionBlock(dim, heads, mlp_ratio, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 5:
            raise ValueError(f"expected a video batch [N, C, T, H, W], got shape {tuple(x.shape)}")
        n, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(n * t, c, h, w)
        tokens = self.proj(self.backbone(frames)).view(n, t, -1)  # [N, T, dim]
        tokens = tokens + sinusoidal_code(torch.arange(t, device=x.device), tokens.shape[-1])
        z = torch.cat([self.cls_token.expand(n, -1, -1), tokens], dim=1)
        for block in self.blocks:
            z = block(z)
        return self.head(self.norm(z[:, 0]))


# ----------------------------------------------------------------------------- spec and variants


def _export_target(model: CompositeVideoTransformer) -> ExportTarget:
    # Frames fold into the CNN's batch and each becomes a token: any clip length works.
    return replace(clip_export(model), note="video clip x [N, 3, T, H, W]")


_SPEC = ModelSpec(
    modality="video", input_format="clip", data_args=("num_classes",),  # any clip length and frame size
    example_input=CLIP_INPUT, export=_export_target, efficiency_class=COMPOSITE,
)  # fmt: skip


@register_model(
    "composite_mnv3s",
    _SPEC,
    description="Composite: MobileNetV3-Small per frame + 2-block temporal transformer",
)
def composite_mnv3s(**kwargs) -> CompositeVideoTransformer:
    return CompositeVideoTransformer(**{"backbone": "mobilenetv3_small_100", **kwargs})


@register_model(
    "composite_r18", _SPEC, description="Composite: ResNet-18 per frame + 2-block temporal transformer"
)
def composite_r18(**kwargs) -> CompositeVideoTransformer:
    return CompositeVideoTransformer(**{"backbone": "resnet18", "dim": 384, "heads": 6, **kwargs})
