"""A tiny 3D CNN for short clips: the embedded long-video pipeline's default clip encoder.

Not a published model: a cheap, motion-sensitive encoder that needs no pretrained weights (see
:class:`TinyClipCNN`). With ``lightact extract-features`` it turns every short clip of a long video
into the features STAN's temporal stream reads; on its own it is a video classifier.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightact.models.registry import register_model
from lightact.models.spec import CLIP_INPUT, CONVOLUTION, ModelSpec, clip_export

__all__ = ["TinyClipCNN", "clip3d_tiny"]


class TinyClipCNN(nn.Module):
    """A three-layer 3D CNN for short clips, ``[B, 3, T, H, W] -> [B, num_classes]``.

    Cheap enough on one CPU core to encode hundreds of two-minute videos. It sees the frames and
    their temporal differences (as TSN's RGB-difference stream does), so even with random weights
    its filters respond to moving edges, differently for different directions, which global average
    pooling keeps. Any clip length (>= 3 frames) and size work.
    """

    def __init__(self, num_classes: int = 10, width: int = 16, dropout: float = 0.0) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv3d(6, w, (3, 5, 5), stride=(1, 2, 2), padding=(1, 2, 2)),
            nn.ReLU(inplace=True),
            nn.Conv3d(w, 2 * w, 3, stride=(1, 2, 2), padding=1),
            nn.ReLU(inplace=True),
            nn.Conv3d(2 * w, 4 * w, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool3d(1),
            nn.Flatten(1),
        )
        self.num_features = 4 * w
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * w, num_classes))
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        # Frames and their temporal differences (the first difference repeated so that T is kept):
        # moving edges stand out in the differences, so even random filters respond to motion.
        diff = x[:, :, 1:] - x[:, :, :-1]
        diff = torch.cat([diff[:, :, :1], diff], dim=2)
        return self.features(torch.cat([x, diff], dim=1))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.forward_features(x))


# ----------------------------------------------------------------------------- spec and variant

_SPEC = ModelSpec(
    modality="video", input_format="clip", data_args=("num_classes",),  # any clip length and size
    example_input=CLIP_INPUT, export=clip_export, efficiency_class=CONVOLUTION,
)  # fmt: skip


@register_model("clip3d_tiny", _SPEC)
def clip3d_tiny(**kwargs) -> TinyClipCNN:
    """Tiny 3D CNN (~40 k parameters): the long-video pipeline's default clip encoder."""
    return TinyClipCNN(**kwargs)
