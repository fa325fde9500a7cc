"""STAR's real-data options against slow references: the per-clip temporal convolution, the joint
embedding, and the registered variants (the paper-faithful one keeps the paper's size)."""

import pytest
import torch
import torch.nn.functional as F

from lightact.data.skeleton.batching import pack_clips
from lightact.models import create_model
from lightact.models.layers import PackedTemporalConv, Packing
from lightact.models.star import STAR, PaddedSTAR, pad_packed


@pytest.mark.parametrize("kernel", [1, 3, 9])
def test_packed_temporal_conv_equals_each_clip_zero_padded_alone(kernel):
    torch.manual_seed(0)
    conv = PackedTemporalConv(6, kernel)
    clips = [torch.randn(n, 4, 6) for n in (5, 1, 12, 2)]
    x, clip_ids = pack_clips(clips)
    packed = conv(x, Packing(clip_ids))
    reference = []
    for clip in clips:  # [T, V, C] -> per joint, a depthwise conv1d with zero padding
        out = F.conv1d(clip.permute(1, 2, 0), conv.conv.weight, conv.conv.bias, padding=kernel // 2, groups=6)
        reference.append(out.permute(2, 0, 1))
    torch.testing.assert_close(packed, torch.cat(reference), atol=1e-6, rtol=0)
    torch.testing.assert_close(conv(clips[2]), reference[2], atol=1e-6, rtol=0)  # one clip, no lengths


def test_packed_temporal_conv_needs_an_odd_kernel():
    with pytest.raises(ValueError, match="odd"):
        PackedTemporalConv(4, 4)


@pytest.mark.parametrize("options", [{"temporal_kernel": 5}, {"joint_embedding": True}])
def test_options_keep_clips_independent_and_the_export_form_equal(options):
    torch.manual_seed(0)
    model = STAR(num_classes=5, dim=32, depth=2, heads=4, **options).eval()
    clips = [torch.randn(n, 25, 9) for n in (7, 1, 30, 3)]
    with torch.no_grad():
        packed = model(*pack_clips(clips))
        alone = torch.cat([model(c, torch.zeros(len(c), dtype=torch.long)) for c in clips])
        one_clip_form = torch.cat([model.forward_clip(c) for c in clips])
        padded_form = PaddedSTAR(model)(*pad_packed(*pack_clips(clips)))  # what `lightact export` traces
    torch.testing.assert_close(packed, alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(packed, one_clip_form, atol=1e-5, rtol=0)
    torch.testing.assert_close(packed, padded_form, atol=1e-5, rtol=0)


def test_the_joint_embedding_tells_mirrored_joints_apart():
    """Two joints with the same coordinates get the same tokens without the embedding, not with it."""
    torch.manual_seed(0)
    x = torch.randn(4, 25, 9)
    x[:, 8] = x[:, 4]  # the right shoulder where the left one is
    for joint_embedding in (False, True):
        model = STAR(num_classes=3, dim=16, depth=1, heads=2, joint_embedding=joint_embedding).eval()
        with torch.no_grad():
            tokens = model._embed(model.input_norm(x.flatten(1)).view_as(x), torch.arange(4))
        # The input BatchNorm in eval mode (fresh statistics) is the identity, so only the
        # embedding can separate the two joints.
        same = torch.allclose(tokens[:, 4], tokens[:, 8])
        assert same != joint_embedding


def test_the_paper_variant_keeps_the_paper_size_and_has_no_additions():
    paper = create_model("star_64_paper")
    assert paper.joint_embed is None and not any(b.local_temporal for b in paper.blocks)
    assert 0.40e6 < sum(p.numel() for p in paper.parameters()) < 0.46e6  # ~0.43 M with an NTU-60 head
    assert sum(p.numel() for p in create_model("star_128_paper").parameters()) < 1.35e6


def test_clips_of_equal_length_take_the_batched_path_and_give_the_same_answer():
    torch.manual_seed(0)
    model = STAR(num_classes=5, dim=32, depth=2, heads=4).eval()
    clips = [torch.randn(6, 25, 9) for _ in range(3)]
    with torch.no_grad():
        packed = model(*pack_clips(clips))
        alone = torch.cat([model(c, torch.zeros(6, dtype=torch.long)) for c in clips])
    torch.testing.assert_close(packed, alone, atol=1e-5, rtol=0)
