"""ST-GCN baseline: graph partition, architecture size, shapes, gradients, registration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightact.data.skeleton.layouts import NTU25, Layout
from lightact.models import registry
from lightact.models.stgcn import STGCN, SpatialGraphConv, spatial_partition, stgcn


def upper_body8() -> Layout:
    """A small custom layout, centred on the neck, unlike any built-in one."""
    return Layout(
        name="upper8",
        joints=("pelvis", "spine", "neck", "head", "l_shoulder", "l_elbow", "r_shoulder", "r_elbow"),
        bones=((1, 0), (2, 1), (3, 2), (4, 2), (5, 4), (6, 2), (7, 6)),
        center=2,
    )


def chain3() -> Layout:
    return Layout(name="chain3", joints=("a", "b", "c"), bones=((0, 1), (2, 1)), center=1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --- graph partition -------------------------------------------------------------------------------


def test_partition_of_a_chain_is_explicit() -> None:
    # a - b - c centred on b; A[k, source, root], entries 1 / (root degree incl. self loop).
    a = spatial_partition(chain3())
    expected = np.zeros((3, 3, 3), dtype=np.float32)
    expected[0] = np.diag([1 / 2, 1 / 3, 1 / 2])
    expected[1, 1, 0] = expected[1, 1, 2] = 1 / 2  # roots a and c hear from the centre b
    expected[2, 0, 1] = expected[2, 2, 1] = 1 / 3  # root b hears from a and c, which are farther
    np.testing.assert_allclose(a, expected, rtol=1e-6)


@pytest.mark.parametrize("layout", [NTU25, upper_body8()], ids=lambda lay: lay.name)
def test_partition_covers_neighbourhood_disjointly(layout: Layout) -> None:
    a = spatial_partition(layout)
    v = layout.num_joints
    assert a.shape == (3, v, v) and a.dtype == np.float32
    nonzero = a != 0
    assert nonzero.sum(axis=0).max() == 1, "partition subsets overlap"
    np.testing.assert_array_equal(nonzero.any(axis=0), (layout.adjacency() + np.eye(v)) > 0)
    np.testing.assert_array_equal(nonzero[0], np.eye(v, dtype=bool))
    # A D^-1: each root joint averages over its whole neighbourhood (self included).
    np.testing.assert_allclose(a.sum(axis=(0, 1)), np.ones(v), rtol=1e-6)


@pytest.mark.parametrize("layout", [NTU25, upper_body8()], ids=lambda lay: lay.name)
def test_centripetal_neighbours_are_closer_to_centre(layout: Layout) -> None:
    a = spatial_partition(layout)
    to_centre = layout.hop_distance()[:, layout.center]
    sources, roots = np.nonzero(a[1])
    assert len(sources) > 0
    assert np.all(to_centre[sources] < to_centre[roots])
    sources, roots = np.nonzero(a[2])
    assert np.all(to_centre[sources] > to_centre[roots])
    # In a tree every joint but the centre has exactly one neighbour nearer the centre: its parent.
    per_root = (a[1] != 0).sum(axis=0)
    assert per_root[layout.center] == 0
    assert np.all(np.delete(per_root, layout.center) == 1)


def test_graph_conv_aggregates_only_over_neighbours() -> None:
    gcn = SpatialGraphConv(1, 1, num_subsets=3)
    torch.nn.init.ones_(gcn.conv.weight)
    torch.nn.init.zeros_(gcn.conv.bias)
    layout = upper_body8()
    a = torch.from_numpy(spatial_partition(layout))
    x = torch.zeros(1, 1, 1, layout.num_joints)
    x[..., 5] = 1.0  # l_elbow, whose only neighbour is l_shoulder (4)
    out = gcn(x, a)[0, 0, 0]
    assert torch.nonzero(out).flatten().tolist() == [4, 5]
    # All-ones weights: each root sums its subsets back to the plain neighbourhood mean.
    torch.testing.assert_close(out[4], torch.tensor(1 / 3))  # l_shoulder: self, neck, l_elbow
    torch.testing.assert_close(out[5], torch.tensor(1 / 2))


# --- architecture ----------------------------------------------------------------------------------


def test_parameter_count_matches_published_ntu60() -> None:
    model = STGCN(num_classes=60, layout="ntu25", in_channels=3, edge_importance=True)
    count = sum(p.numel() for p in model.parameters())
    assert abs(count - 3.10e6) / 3.10e6 < 0.01, count
    without = sum(p.numel() for p in STGCN(edge_importance=False).parameters())
    assert count - without == 10 * 3 * 25 * 25  # one [K, V, V] mask per unit


def test_output_shape_and_stride() -> None:
    model = STGCN(num_classes=7).eval()
    x = torch.randn(2, 3, 17, 25, 2)
    with torch.no_grad():
        features = model.forward_features(x)
        logits = model(x)
    # Stride 2 at units 5 and 8 with 9-frame kernels padded by 4: 17 -> 9 -> 5 frames.
    assert features.shape == (2, 2, 256, 5, 25)
    assert logits.shape == (2, 7)
    strides = [blk.tcn[2].stride[0] for blk in model.blocks]
    assert strides == [1, 1, 1, 1, 2, 1, 1, 2, 1, 1]
    assert [blk.tcn[2].out_channels for blk in model.blocks] == [64] * 4 + [128] * 3 + [256] * 3
    assert model.blocks[0].residual is None
    assert model.blocks[0].tcn[-1].p == 0.0 and model.blocks[1].tcn[-1].p == 0.5


def test_persons_are_averaged() -> None:
    model = STGCN(num_classes=5, layout=upper_body8()).eval()
    one = torch.randn(2, 3, 10, 8, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(one.repeat(1, 1, 1, 1, 2)), model(one))


def test_custom_layout_builds_and_runs() -> None:
    layout = upper_body8()
    model = STGCN(num_classes=4, layout=layout, in_channels=2).eval()
    assert model.A.shape == (3, 8, 8)
    assert model.blocks[3].edge_importance.shape == (3, 8, 8)
    with torch.no_grad():
        out = model(torch.randn(3, 2, 12, 8, 1))
    assert out.shape == (3, 4) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="joints"):
        model(torch.randn(3, 2, 12, 25, 1))


def test_gradients_reach_every_parameter() -> None:
    layout = upper_body8()
    model = STGCN(num_classes=3, layout=layout).train()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(2, 3, 12, 8, 2)), torch.tensor([0, 2]))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    mask = model.A != 0
    for blk in model.blocks:
        grad = blk.edge_importance.grad
        assert torch.all(grad[~mask] == 0)  # importance only matters on real edges
        assert torch.all(grad[mask] != 0)


def test_eval_is_deterministic_and_train_uses_dropout() -> None:
    model = STGCN(num_classes=5, layout=upper_body8())
    x = torch.randn(2, 3, 12, 8, 2)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))


def test_registered_factory() -> None:
    entry = registry._REGISTRY["stgcn"]
    assert (entry.modality, entry.input_format) == ("skeleton", "padded")
    assert entry.factory is stgcn
    model = entry.factory(num_classes=11, layout=upper_body8(), dropout=0.1)
    assert isinstance(model, STGCN) and model.head.out_features == 11
    assert model.blocks[-1].tcn[-1].p == 0.1
