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
  which therefore runs over ``V * C`` features and works for any number of persons
  (``data_bn="MVC"`` normalises ``M * V * C`` features instead, as MMAction2 and pyskl can).
* The first unit has no dropout and no residual, as in the code.

Checkpoints of the original code, MMAction2 and pyskl load through :meth:`STGCN.adapt_state_dict`;
they carry their own graph (the ``A`` buffer), which replaces the one built here.
"""

from __future__ import annotations

import re

import numpy as np
import torch
from torch import Tensor, nn

from lightact.data.skeleton.layouts import Layout, get_layout
from lightact.models.registry import register_model
from lightact.models.spec import CONVOLUTION, BatchedInput, ExportTarget, ModelSpec
from lightact.models.weights import Conversion

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
DATA_BN = ("VC", "MVC", "none")


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
            nn.Dropout(dropout, inplace=True),
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
        # In place from here on: these full-size activations are written once, not copied (on a CPU a
        # fresh tensor of this size is also fresh pages to fault in).
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor, a: Tensor) -> Tensor:
        """``x: [B, C_in, T, V]``, ``a: [K, V, V]`` -> ``[B, C_out, ceil(T / stride), V]``."""
        if self.edge_importance is not None:
            a = a * self.edge_importance
        out = self.tcn(self.gcn(x, a))
        if self.residual is not None:
            out += self.residual(x)
        return self.relu(out)


class STGCN(nn.Module):
    """ST-GCN classifier on ``[N, C, T, V, M]`` skeleton clips (persons M are averaged at the end).

    Args:
        num_classes: number of action classes.
        layout: joint layout (name of a built-in one, a YAML path, or a :class:`Layout`).
        in_channels: input channels per joint (3 for xyz).
        edge_importance: learn a per-unit elementwise mask on the partition graph.
        dropout: dropout after the temporal conv of every unit but the first.
        data_bn: input BatchNorm over ``"VC"`` features (persons folded into the batch), over
            ``"MVC"`` features (each person slot its own statistics; clips must then hold exactly
            ``num_person`` persons), or ``"none"``.
        num_person: persons per clip, for ``data_bn="MVC"``.
    """

    def __init__(
        self,
        num_classes: int = 60,
        layout: str | Layout = "ntu25",
        in_channels: int = 3,
        edge_importance: bool = True,
        dropout: float = 0.5,
        data_bn: str = "VC",
        num_person: int = 2,
    ) -> None:
        super().__init__()
        if data_bn not in DATA_BN:
            raise ValueError(f"data_bn must be one of {DATA_BN}, got {data_bn!r}")
        self.layout = layout if isinstance(layout, Layout) else get_layout(layout)
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.register_buffer("A", torch.from_numpy(spatial_partition(self.layout)))
        graph_shape = tuple(self.A.shape)
        v = self.layout.num_joints

        # Normalises every (joint, channel) coordinate (per person slot for MVC) over the batch and time.
        self.data_bn_type, self.num_person = data_bn, num_person
        features = {"VC": in_channels * v, "MVC": num_person * in_channels * v}.get(data_bn)
        self.data_bn = nn.BatchNorm1d(features) if features else nn.Identity()

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
        x = x.permute(0, 4, 3, 1, 2)  # [N, M, V, C, T]
        if self.data_bn_type == "MVC":
            if m != self.num_person:
                raise ValueError(
                    f"ST-GCN with data_bn MVC was built for {self.num_person} persons, got M={m}"
                )
            x = self.data_bn(x.reshape(n, m * v * c, t))
        else:
            x = self.data_bn(x.reshape(n * m, v * c, t))
        x = x.reshape(n * m, v, c, t).permute(0, 2, 3, 1).contiguous()  # [N*M, C, T, V]
        for block in self.blocks:
            x = block(x, self.A)
        return x.view(n, m, *x.shape[1:])

    def forward_head(self, x: Tensor) -> Tensor:
        """Feature maps ``[N, M, C, T', V]`` -> logits ``[N, num_classes]``."""
        # Pool over frames and joints per person, then average the persons.
        return self.head(x.mean(dim=(3, 4)).mean(dim=1))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def adapt_state_dict(
        self, state: dict[str, Tensor], conversion: Conversion | None = None
    ) -> dict[str, Tensor]:
        """Map ST-GCN checkpoints of the original code, MMAction2 (0.x and 1.x) and pyskl onto this model.

        * Original (yysijie/st-gcn) and MMAction2 0.x: ``st_gcn_networks.i`` -> ``blocks.i`` (the
          unit's modules are ours), ``edge_importance.i`` -> ``blocks.i.edge_importance``, the 1x1
          convolution classifier (``fcn``, ``cls_head.fc``) -> the linear ``head``.
        * MMAction2 1.x and pyskl: ``gcn.i.gcn.{conv,bn,PA}`` -> ``blocks.i.{gcn.conv, tcn.0,
          edge_importance}``, ``gcn.i.tcn.{conv,bn}`` -> ``blocks.i.tcn.{2,3}``, ``gcn.i.residual``
          -> ``blocks.i.residual``, ``cls_head.fc`` / ``cls_head.fc_cls`` -> ``head``; the units'
          copies of the graph (``gcn.i.gcn.A``) must agree and become ``A``.

        The file's graph replaces the one this model built (the codebases partition the joints
        differently; their weights were learnt with theirs). A file without edge importance gets
        ones (the same function); a data BatchNorm of the other kind is reported.
        """
        from lightact.models.weights import detect_layout

        conversion = conversion if conversion is not None else Conversion()
        layout = detect_layout(state)
        state = {k.removeprefix("backbone."): v for k, v in state.items()}
        if layout == "stgcn-original":
            state = self._from_original(state)
        elif layout in ("stgcn-mmaction2", "stgcn-pyskl", "stgcn-mmaction"):
            state = self._from_mmaction(state, conversion)
        else:
            return state
        conversion.notes.append(f"{layout} keys mapped onto lightact's ST-GCN units")
        head = state.get("head.weight")
        if head is not None and head.dim() == 4:  # a 1x1 convolution classifier is a linear layer
            state["head.weight"] = head.flatten(1)
            conversion.notes.append("1x1-convolution classifier -> linear head")
        importance = [f"blocks.{i}.edge_importance" for i in range(len(self.blocks))]
        has_importance = any(k in state for k in importance)
        if not has_importance and self.blocks[0].edge_importance is not None and "A" in state:
            for key in importance:
                state[key] = torch.ones_like(state["A"])
            conversion.notes.append("no edge importance in the file: set to ones (the plain graph, as there)")
        elif has_importance and self.blocks[0].edge_importance is None:
            conversion.problems.append("the file learnt edge importance; set model.edge_importance: true")
        if "A" in state:
            conversion.notes.append(f"graph A {list(state['A'].shape)} taken from the file")
        bn = state.get("data_bn.weight")
        features = self.in_channels * self.layout.num_joints
        if bn is not None and bn.numel() != self.data_bn_features and bn.numel() % features == 0:
            persons = bn.numel() // features
            hint = f"data_bn: MVC and model.num_person: {persons}" if persons > 1 else "data_bn: VC"
            conversion.problems.append(
                f"the file's data BatchNorm has {bn.numel()} features ({persons} x {features}): "
                f"set model.{hint}"
            )
        elif bn is None and self.data_bn_type != "none":
            conversion.problems.append("the file has no data BatchNorm: set model.data_bn: none")
        return state

    @property
    def data_bn_features(self) -> int:
        return self.data_bn.num_features if isinstance(self.data_bn, nn.BatchNorm1d) else 0

    @staticmethod
    def _from_original(state: dict[str, Tensor]) -> dict[str, Tensor]:
        out = {}
        for key, value in state.items():
            key = re.sub(r"^st_gcn_networks\.(\d+)\.", r"blocks.\1.", key)
            key = re.sub(r"^edge_importance\.(\d+)$", r"blocks.\1.edge_importance", key)
            key = re.sub(r"^(fcn|cls_head\.fc)\.", "head.", key)
            out[key] = value
        return out

    @staticmethod
    def _from_mmaction(state: dict[str, Tensor], conversion: Conversion) -> dict[str, Tensor]:
        parts = {
            "gcn.conv": "gcn.conv",
            "gcn.bn": "tcn.0",
            "tcn.conv": "tcn.2",
            "tcn.bn": "tcn.3",
            "residual.conv": "residual.0",
            "residual.bn": "residual.1",
        }
        out, graphs = {}, []
        for key, value in state.items():
            unit = re.match(r"gcn\.(\d+)\.(.+)$", key)
            if unit is not None:
                i, rest = unit[1], unit[2]
                if rest == "gcn.A":
                    graphs.append(value)
                    continue
                if rest == "gcn.PA":
                    out[f"blocks.{i}.edge_importance"] = value
                    continue
                part = next((p for p in parts if rest.startswith(p + ".")), None)
                if part is not None:
                    key = f"blocks.{i}.{parts[part]}{rest[len(part) :]}"
            key = re.sub(r"^cls_head\.(fc_cls|fc)\.", "head.", key)
            out[key] = value
        if graphs:
            if any(g.shape != graphs[0].shape or not torch.equal(g, graphs[0]) for g in graphs):
                conversion.problems.append(
                    "the units hold different graphs (an adaptive graph, e.g. ST-GCN++): not a plain ST-GCN"
                )
            out["A"] = graphs[0]
        return out


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
