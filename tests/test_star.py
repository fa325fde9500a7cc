"""STAR against slow, obvious references: per-clip runs, dense per-joint attention, the quadratic
form of linear attention."""

import dataclasses

import numpy as np
import pytest
import torch

from lightact.data.skeleton.batching import pack_clips
from lightact.data.skeleton.layouts import NTU25, Layout
from lightact.models import create_model
from lightact.models.layers import SegmentedLinearAttention, SparseGraphAttention, k_hop_neighbours
from lightact.models.layers.linear_attention import feature_map, segment_lengths
from lightact.models.star import STAR

UPPER_BODY = Layout(
    name="upper8",
    joints=("neck", "head", "l_sh", "l_el", "l_wr", "r_sh", "r_el", "r_wr"),
    bones=((1, 0), (2, 0), (3, 2), (4, 3), (5, 0), (6, 5), (7, 6)),
    center=0,
)


def random_clips(lengths, joints=25, channels=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, joints, channels, generator=g) for n in lengths]


@pytest.mark.parametrize("segment_length", [None, 7])
def test_packed_batch_equals_each_clip_alone(segment_length):
    torch.manual_seed(0)
    model = STAR(num_classes=11, dim=32, depth=2, heads=4, segment_length=segment_length).eval()
    clips = random_clips([5, 31, 1, 64, 12])
    x, clip_ids = pack_clips(clips)
    with torch.no_grad():
        packed = model(x, clip_ids)
        alone = torch.cat([model(c, torch.zeros(len(c), dtype=torch.long)) for c in clips])
    assert packed.shape == (5, 11)
    torch.testing.assert_close(packed, alone, atol=1e-5, rtol=0)


def test_changing_one_clip_leaves_the_others_untouched():
    model = STAR(num_classes=4, dim=32, depth=2, heads=4).eval()
    clips = random_clips([20, 30, 25])
    with torch.no_grad():
        before = model(*pack_clips(clips))
        clips[1] = clips[1] * 3 + 1
        after = model(*pack_clips(clips))
    torch.testing.assert_close(before[[0, 2]], after[[0, 2]], atol=1e-5, rtol=0)
    assert (before[1] - after[1]).abs().max() > 1e-3


def naive_graph_attention(module: SparseGraphAttention, x, allowed):
    """Per destination joint: softmax over exactly the allowed source joints."""
    frames, joints, dim = x.shape
    heads = module.heads
    q, k, v = module.qkv(x).view(frames, joints, 3, heads, dim // heads).unbind(2)
    out = torch.zeros(frames, joints, heads, dim // heads)
    for i in range(joints):
        src = torch.nonzero(allowed[i]).flatten()
        scores = torch.einsum("fhd,fshd->fhs", q[:, i], k[:, src]) / (dim // heads) ** 0.5
        out[:, i] = torch.einsum("fhs,fshd->fhd", scores.softmax(-1), v[:, src])
    return out.reshape(frames, joints, dim)


@pytest.mark.parametrize("kernel", ["gather", "masked"])
@pytest.mark.parametrize(("layout", "hops"), [(NTU25, 3), (NTU25, 1), (UPPER_BODY, 2)])
def test_sparse_spatial_attention_equals_dense_masked_reference(kernel, layout, hops):
    torch.manual_seed(1)
    distance = layout.hop_distance()
    module = SparseGraphAttention(32, 4, *k_hop_neighbours(distance, hops), kernel=kernel)
    x = torch.randn(6, layout.num_joints, 32)
    allowed = torch.from_numpy(distance <= hops)
    with torch.no_grad():
        torch.testing.assert_close(module(x), naive_graph_attention(module, x, allowed), atol=1e-5, rtol=1e-5)


def test_k_hop_neighbourhood_is_the_pattern_of_adjacency_powers():
    a = torch.from_numpy(NTU25.adjacency()) + torch.eye(25)
    reach = (torch.linalg.matrix_power(a, 3) > 0).numpy()
    index, valid = k_hop_neighbours(NTU25.hop_distance(), 3)
    table = np.zeros((25, 25), dtype=bool)
    for joint in range(25):
        table[joint, index[joint][valid[joint]].numpy()] = True
    assert (table == reach).all()
    assert valid.sum(1).max() < 25  # 3 hops on NTU-25 is genuinely sparse


def naive_linear_attention(module: SegmentedLinearAttention, x, lengths):
    """out_t = sum_s φ(q_t)·φ(k_s) v_s / sum_s φ(q_t)·φ(k_s), over each segment, one frame at a time."""
    frames, joints, dim = x.shape
    heads = module.heads
    q, k, v = module.qkv(x).view(frames, joints, 3, heads, dim // heads).unbind(2)
    q, k = feature_map(q), feature_map(k)
    out = torch.zeros(frames, joints, heads, dim // heads)
    start = 0
    for n in lengths:
        for t in range(start, start + n):
            weights = (q[t] * k[start : start + n]).sum(-1)  # [n, V, H]
            out[t] = (weights[..., None] * v[start : start + n]).sum(0) / weights.sum(0)[..., None]
        start += n
    return out.reshape(frames, joints, dim)


def test_segmented_linear_attention_equals_naive_per_clip_formula():
    torch.manual_seed(2)
    module = SegmentedLinearAttention(16, 2)
    lengths = [3, 1, 9, 4]
    x = torch.randn(sum(lengths), 5, 16)
    with torch.no_grad():
        torch.testing.assert_close(
            module(x, lengths), naive_linear_attention(module, x, lengths), atol=1e-5, rtol=1e-5
        )


def test_segment_lengths_split_clips_into_fixed_sub_segments():
    assert segment_lengths([10, 3, 8], None) == [10, 3, 8]
    assert segment_lengths([10, 3, 8], 4) == [4, 4, 2, 3, 4, 4]


def test_any_layout_builds_and_trains():
    model = STAR(num_classes=3, layout=UPPER_BODY, dim=16, depth=1, heads=2)
    x, clip_ids = pack_clips(random_clips([7, 9], joints=8))
    loss = model(x, clip_ids).logsumexp(-1).sum()
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_a_small_skeleton_exports_with_parity(tmp_path):
    """An 8-joint layout's spatial attention runs on padded score rows; the exported graph too."""
    from lightact.export.onnx import export_target_onnx
    from lightact.models.registry import model_entry

    torch.manual_seed(0)
    model = create_model("star_64", num_classes=3, layout=UPPER_BODY).eval()
    target = model_entry("star_64").export_target(model)
    canonical = target.shape({"batch": 2, "frames": 6, "persons": 1})
    small = dataclasses.replace(target, canonical=canonical, alternate={"batch": 3, "frames": 5})
    result = export_target_onnx(small, tmp_path / "star_upper8.onnx", small.axis_names)
    assert len(result.input_shapes_checked) == 2 and result.worst_diff <= 1e-4


def test_wrong_joint_count_is_a_clear_error():
    model = STAR(num_classes=3, dim=16, depth=1, heads=2)
    x, clip_ids = pack_clips(random_clips([4], joints=17))
    with pytest.raises(ValueError, match="25 joints"):
        model(x, clip_ids)


def test_registered_widths_match_the_papers_sizes():
    sizes = {
        name: sum(p.numel() for p in create_model(name).parameters()) for name in ("star_64", "star_128")
    }
    # The paper's computed sizes with an NTU-60 head: ~0.43 M and ~1.26 M.
    assert 0.40e6 < sizes["star_64"] < 0.46e6
    assert 1.20e6 < sizes["star_128"] < 1.32e6


def test_feature_map_is_elu_plus_one_in_value_and_gradient():
    x = torch.cat([torch.linspace(-30, 30, 601), torch.tensor([0.0, -1e-7, 1e-7])]).requires_grad_()
    reference = x.detach().clone().requires_grad_()
    feature_map(x).sum().backward()
    (torch.nn.functional.elu(reference) + 1).sum().backward()
    torch.testing.assert_close(feature_map(x), torch.nn.functional.elu(reference) + 1, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(x.grad, reference.grad, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "lengths",
    [[1], [9], [1, 1, 1], [5, 5, 5], [120, 1, 3], [2, 57], None],
    ids=["one-frame", "one-clip", "one-frame-clips", "equal", "very-different", "two-person-like", "whole"],
)
def test_linear_attention_fast_paths_equal_the_naive_formula_forward_and_backward(lengths):
    """The packed path (a loop of batched matmuls on strided views, the normaliser as an extra
    column, the equal-length batch) against the per-frame formula, values and input gradients."""
    torch.manual_seed(3)
    module = SegmentedLinearAttention(16, 2)
    frames = 13 if lengths is None else sum(lengths)
    x = torch.randn(frames, 5, 16, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    out = module(x, lengths)
    expected = naive_linear_attention(module, x_ref, [frames] if lengths is None else lengths)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    (expected * weights).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("layout", [NTU25, UPPER_BODY], ids=["25-joints", "8-joints-padded"])
def test_masked_spatial_attention_backward_equals_the_naive_reference(layout):
    torch.manual_seed(4)
    distance = layout.hop_distance()
    module = SparseGraphAttention(32, 4, *k_hop_neighbours(distance, 3), kernel="masked")
    joints = layout.num_joints
    x = torch.randn(3, joints, 32, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_()
    weights = torch.randn(3, joints, 32)
    (module(x) * weights).sum().backward()
    (naive_graph_attention(module, x_ref, torch.from_numpy(distance <= 3)) * weights).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "lengths",
    [[1], [40], [1, 1, 1, 1], [150, 1, 2, 37], [60, 60, 60]],
    ids=["one-frame", "one-clip", "one-frame-clips", "very-different", "equal"],
)
def test_packed_batch_gradients_are_the_sum_of_each_clips_own(lengths):
    """Backward through the packed fast paths equals backward through each clip alone (eval mode,
    so the input normalisation uses its running statistics and the head no dropout)."""
    torch.manual_seed(5)
    model = STAR(num_classes=6, dim=32, depth=2, heads=4).eval()
    clips = random_clips(lengths, seed=6)
    labels = torch.arange(len(clips)) % 6
    loss = torch.nn.functional.cross_entropy(model(*pack_clips(clips)), labels, reduction="sum")
    packed = torch.autograd.grad(loss, list(model.parameters()))
    alone = [torch.zeros_like(p) for p in model.parameters()]
    for clip, label in zip(clips, labels, strict=True):
        logits = model(clip, torch.zeros(len(clip), dtype=torch.long))
        grads = torch.autograd.grad(
            torch.nn.functional.cross_entropy(logits, label[None]), list(model.parameters())
        )
        alone = [a + g for a, g in zip(alone, grads, strict=True)]
    for p, a in zip(packed, alone, strict=True):
        torch.testing.assert_close(p, a, atol=1e-4, rtol=1e-4)


def test_a_moving_average_of_star_stays_a_working_star():
    """torch's foreach EMA (``get_ema_multi_avg_fn``, as timm-style EMA helpers do) lerps every
    floating buffer, STAR's attention-mask bias among them: with -inf there, -inf + w·(-inf - -inf)
    made it NaN and every output NaN. Averaging a model with itself must change nothing."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    model = create_model("star_64", num_classes=5, layout="ntu25", in_channels=9).eval()
    average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    for _ in range(3):
        average.update_parameters(model)
    frames, clip_ids = torch.randn(30, 25, 9), torch.zeros(30, dtype=torch.long)
    with torch.no_grad():
        torch.testing.assert_close(average.module.eval()(frames, clip_ids), model(frames, clip_ids))
