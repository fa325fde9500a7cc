"""ST-GCN: Spatial Temporal Graph Convolutional Networks (Yan, Xiong & Lin, AAAI 2018).

The skeleton baseline, built as published: a data BatchNorm, ten ST-GCN units (graph convolution
over the joints with the *spatial configuration* partition, then a 9-frame temporal convolution),
learnable edge importance per unit, global average pooling, and a linear classifier. With 60 classes,
3 input channels and the 25-joint NTU layout it has the authors' 3.10 M parameters.

The graph comes from a :class:`~lightact.data.skeleton.layouts.Layout`, so any joint layout works.

Where the paper and the authors' code (github.com/yysijie/st-gcn) differ, this file says which it
follows:

* Partition distances. The authors' ``Graph`` measures each joint's distance to the centre with a
  hop matrix truncated at ``max_hop = 1``, so every joint two or more bones from the centre is
  "infinitely far" and most edges fall into one subset. We use the true bone distance
  (``Layout.hop_distance``), which is the partition the paper defines.
* Normalisation. Like the code (and unlike the paper's symmetric ``Λ^-1/2 A Λ^-1/2``), the adjacency
  with self loops is divided by each root joint's degree (``A D^-1``), then split into the subsets,
  so the three subsets of a joint together average over its whole neighbourhood.
* Input normalisation. Like the code, persons are folded into the batch before the data BatchNorm,
  which therefore runs over ``V * C`` features and works for any number of persons.
* The first unit has no dropout and no residual, as in the code.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from lightact.data.skeleton.layouts import Layout, get_layout
from lightact.models.registry import register_model
from lightact.models.spec import CONVOLUTION, BatchedInput, ExportTarget, ModelSpec

__all__ = ["STGCN", "STGCNBlock", "SpatialGraphConv", "spatial_partition", "stgcn"]

# (output channels, temporal stride) of the ten units; the published architecture.
# fmt: off
_STAGES: tuple[tuple[int, int], ...] = (
    (64, 1), (64, 1), (64, 1), (64, 1),
    (128, 2), (128, 1), (128, 1),
    (256, 2), (256, 1), (256, 1),
)
# fmt: on
_TEMPORAL_KERNEL = 9


def spatial_partition(layout: Layout) -> np.ndarray:
    """The spatial-configuration partition of ``layout``'s 1-hop graph as ``A [3, V, V]``.

    ``A[k, v, w]`` weights the message from joint ``v`` to root joint ``w`` in subset ``k``:

    * ``k = 0``, root: ``v == w`` (the self loop);
    * ``k = 1``, centripetal: neighbours ``v`` closer (in bones) to ``layout.center`` than ``w``;
    * ``k = 2``, centrifugal: all other neighbours (farther away, or as far, e.g. both unreachable).

    Entries are ``1 / deg(w)`` with ``deg`` counting the self loop (column normalisation ``A D^-1``
    of the adjacency with self loops, as in the authors' code), so ``A.sum(0)`` has unit columns.
    """
    hops = layout.hop_distance()
    to_centre = hops[:, layout.center]  # inf for joints in a component without the centre
    v = layout.num_joints
    neighbourhood = layout.adjacency() + np.eye(v, dtype=np.float32)
    normalised = neighbourhood / neighbourhood.sum(axis=0, keepdims=True)  # every column has a self loop

    source_closer = to_centre[:, None] < to_centre[None, :]  # [v, w]: v is nearer the centre than w
    self_loop = np.eye(v, dtype=bool)
    edge = layout.adjacency() > 0
    masks = (self_loop, edge & source_closer, edge & ~source_closer)
    return np.stack([np.where(mask, normalised, 0.0) for mask in masks]).astype(np.float32)


class SpatialGraphConv(nn.Module):
    """Graph convolution with K partition subsets: one 1x1 conv gives K * C_out channels, and subset
    k's channels are aggregated over the joints with ``A[k]``, then the subsets are summed."""

    def __init__(self, in_channels: int, out_channels: int, num_subsets: int) -> None:
        super().__init__()
        self.num_subsets = num_subsets
        self.conv = nn.Conv2d(in_channels, out_channels * num_subsets, kernel_size=1)

    def forward(self, x: Tensor, a: Tensor) -> Tensor:
        """``x: [B, C_in, T, V]``, ``a: [K, V, V]`` -> ``[B, C_out, T, V]``."""
        b, _, t, v = x.shape
        x = self.conv(x).view(b, self.num_subsets, -1, t, v)
        return torch.einsum("bkctv,kvw->bctw", x, a).contiguous()


class STGCNBlock(nn.Module):
    """One ST-GCN unit: graph conv -> BN -> ReLU -> temporal conv (9 x 1) -> BN -> dropout,
    plus a residual, then ReLU. Holds its own edge-importance mask, applied to the shared graph."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        graph_shape: tuple[int, int, int],
        stride: int = 1,
        dropout: float = 0.0,
        residual: bool = True,
        edge_importance: bool = True,
    ) -> None:
        super().__init__()
        # Initialised to ones so training starts from the plain partition graph.
        self.edge_importance = nn.Parameter(torch.ones(graph_shape)) if edge_importance else None
        self.gcn = SpatialGraphConv(in_channels, out_channels, graph_shape[0])
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(
                out_channels,
                out_channels,
                kernel_size=(_TEMPORAL_KERNEL, 1),
                stride=(stride, 1),
                padding=(_TEMPORAL_KERNEL // 2, 0),
            ),
            nn.BatchNorm2d(out_channels),
            nn.Dropout(dropout),
        )
        if not residual:
            self.residual: nn.Module | None = None
        elif in_channels == out_channels and stride == 1:
            self.residual = nn.Identity()
        else:
            # Projection shortcut where the channel count or the frame rate changes.
            self.residual = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=(stride, 1)),
                nn.BatchNorm2d(out_channels),
            )
        self.relu = nn.ReLU()

    def forward(self, x: Tensor, a: Tensor) -> Tensor:
        """``x: [B, C_in, T, V]``, ``a: [K, V, V]`` -> ``[B, C_out, ceil(T / stride), V]``."""
        if self.edge_importance is not None:
            a = a * self.edge_importance
        out = self.tcn(self.gcn(x, a))
        if self.residual is not None:
            out = out + self.residual(x)
        return self.relu(out)


class STGCN(nn.Module):
    """ST-GCN classifier on ``[N, C, T, V, M]`` skeleton clips (persons M are averaged at the end).

    Args:
        num_classes: number of action classes.
        layout: joint layout (name of a built-in one, a YAML path, or a :class:`Layout`).
        in_channels: input channels per joint (3 for xyz).
        edge_importance: learn a per-unit elementwise mask on the partition graph.
        dropout: dropout after the temporal conv of every unit but the first.
    """

    def __init__(
        self,
        num_classes: int = 60,
        layout: str | Layout = "ntu25",
        in_channels: int = 3,
        edge_importance: bool = True,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.layout = layout if isinstance(layout, Layout) else get_layout(layout)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.register_buffer("A", torch.from_numpy(spatial_partition(self.layout)))
        graph_shape = tuple(self.A.shape)
        v = self.layout.num_joints

        # Normalises every (joint, channel) coordinate over the batch and time.
        self.data_bn = nn.BatchNorm1d(in_channels * v)

        blocks = []
        channels = in_channels
        for i, (out_channels, stride) in enumerate(_STAGES):
            first = i == 0  # the first unit sees raw coordinates: no residual, no dropout
            blocks.append(
                STGCNBlock(
                    channels,
                    out_channels,
                    graph_shape,
                    stride=stride,
                    dropout=0.0 if first else dropout,
                    residual=not first,
                    edge_importance=edge_importance,
                )
            )
            channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        self.num_features = channels
        self.head = nn.Linear(channels, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        """``[N, C, T, V, M]`` -> feature maps ``[N, M, 256, T', V]`` with ``T' = ceil(ceil(T/2)/2)``."""
        if x.dim() != 5:
            raise ValueError(f"ST-GCN expects [N, C, T, V, M] input, got shape {tuple(x.shape)}")
        n, c, t, v, m = x.shape
        if c != self.in_channels or v != self.layout.num_joints:
            raise ValueError(
                f"ST-GCN built for {self.in_channels} channels and {self.layout.num_joints} joints "
                f"({self.layout.name}), got C={c}, V={v}"
            )
        # Fold persons into the batch; BatchNorm1d features are (joint, channel) pairs.
        x = x.permute(0, 4, 3, 1, 2).reshape(n * m, v * c, t)
        x = self.data_bn(x)
        x = x.view(n * m, v, c, t).permute(0, 2, 3, 1).contiguous()  # [N*M, C, T, V]
        for block in self.blocks:
            x = block(x, self.A)
        return x.view(n, m, *x.shape[1:])

    def forward_head(self, x: Tensor) -> Tensor:
        """Feature maps ``[N, M, C, T', V]`` -> logits ``[N, num_classes]``."""
        # Pool over frames and joints per person, then average the persons.
        return self.head(x.mean(dim=(3, 4)).mean(dim=1))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


# ----------------------------------------------------------------------------- spec and variant

# A canonical sample: NTU's 300 frames of 2 persons.
_INPUT = BatchedInput(lambda model: (model.in_channels, 300, model.layout.num_joints, 2), "C x T x V x M")


def _export_target(model: STGCN) -> ExportTarget:
    return ExportTarget(
        model,
        canonical=(1, *_INPUT.shape(model)),
        axes={0: "batch", 2: "frames", 4: "persons"},
        alternate={"batch": 2, "frames": 150, "persons": 1},
        note="ST-GCN: x [N, C, T, V, M] (persons M last), logits averaged over persons.",
    )


_SPEC = ModelSpec(
    modality="skeleton", input_format="padded", data_args=("num_classes", "layout", "in_channels"),
    example_input=_INPUT, export=_export_target, efficiency_class=CONVOLUTION,
)  # fmt: skip


@register_model(
    "stgcn", _SPEC, description="ST-GCN (Yan et al. 2018), spatial partitions, learnable edge importance"
)
def stgcn(**kwargs) -> STGCN:
    return STGCN(**kwargs)
