"""Temporal Patch Shift / Channel Shift and the PST models, checked against hand-written references."""

from __future__ import annotations

import itertools

import pytest
import torch
from timm.models.swin_transformer import SwinTransformer, window_partition, window_reverse
from torch.overrides import TorchFunctionMode

from lightact.models.registry import create_model, list_models
from lightact.models.tps import (
    PATTERNS,
    PST,
    PSTViT,
    TemporalWindowAttention,
    channel_shift,
    patch_shift,
    pattern_shifts,
)

torch.set_num_threads(1)

SMALL = {
    "img_size": 48,
    "patch_size": 4,
    "embed_dim": 16,
    "depths": (2, 2),
    "num_heads": (2, 4),
    "window_size": 3,
    "drop_path_rate": 0.0,
}


def _windows(x: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """[B, T, H, W, C] -> timm's window batch [B*T*windows, N, C]."""
    b, t, h, w, c = x.shape
    return window_partition(x.reshape(b * t, h, w, c), window).reshape(-1, window[0] * window[1], c)


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_patch_shift_matches_per_position_reference(name: str) -> None:
    torch.manual_seed(0)
    b, t, h, w, c = 2, 5, 6, 10, 3  # odd T, a 3x5 window (not 7x7), patterns of period 2, 3, 4
    window = (3, 5)
    x = torch.randn(b, t, h, w, c)
    table = PATTERNS[name]
    windows = (h // 3) * (w // 5)
    out = patch_shift(_windows(x, window), pattern_shifts(name, window), t, windows)
    out = window_reverse(out.reshape(-1, *window, c), window, h, w).reshape(b, t, h, w, c)
    expected = torch.empty_like(x)
    for bi, ti, yi, xi in itertools.product(range(b), range(t), range(h), range(w)):
        r, col = yi % window[0], xi % window[1]
        s = table[r % len(table)][col % len(table[0])]
        expected[bi, ti, yi, xi] = x[bi, (ti - s) % t, yi, xi]
    assert torch.equal(out, expected)


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_shift_then_shift_back_is_identity(name: str) -> None:
    x = torch.randn(2 * 7 * 4, 16, 5)
    shifts = pattern_shifts(name, (4, 4))
    shifted = patch_shift(x, shifts, 7, 4)
    assert not torch.equal(shifted, x)
    assert torch.equal(patch_shift(shifted, shifts, 7, 4, inverse=True), x)


def test_channel_shift_matches_reference() -> None:
    b, t, windows, n, heads, hd = 2, 3, 2, 4, 2, 8
    x = torch.randn(b * t * windows, n, heads * hd)
    out = channel_shift(x, t, heads, fold_div=8, num_windows=windows)
    xv = x.reshape(b, t, windows, n, heads, hd)
    ov = out.reshape(b, t, windows, n, heads, hd)
    for ti in range(t):
        past = xv[:, max(ti - 1, 0), ..., 0]
        future = xv[:, min(ti + 1, t - 1), ..., 1]
        assert torch.equal(ov[:, ti, ..., 0], past)
        assert torch.equal(ov[:, ti, ..., 1], future)
        assert torch.equal(ov[:, ti, ..., 2:], xv[:, ti, ..., 2:])


def test_tps_attention_matches_brute_force_with_3d_bias() -> None:
    """Shift, per-frame window attention with the bias at the tokens' true time offsets, shift back."""
    torch.manual_seed(1)
    frames, windows, window, dim, heads = 3, 2, (2, 3), 8, 2
    base = (
        SwinTransformer(
            img_size=8, patch_size=2, embed_dim=dim, depths=(1,), num_heads=(heads,), window_size=window
        )
        .layers[0]
        .blocks[0]
        .attn
    )
    attn = TemporalWindowAttention(base, "tps", windows, frames, pattern="C").eval()
    with torch.no_grad():
        attn.relative_position_bias_table.normal_()
    n = window[0] * window[1]
    x = torch.randn(frames * windows, n, dim)  # B = 1
    out = attn(x)
    shifts = pattern_shifts("C", window)
    wh, ww = window
    table = attn.relative_position_bias_table
    xs = x.reshape(frames, windows, n, dim)
    heads_out = torch.zeros(frames, windows, n, dim)
    for t, w in itertools.product(range(frames), range(windows)):
        tau = [(t - int(shifts[i])) % frames for i in range(n)]
        tokens = torch.stack([xs[tau[i], w, i] for i in range(n)])
        q, k, v = attn.qkv(tokens).reshape(n, 3, heads, -1).permute(1, 2, 0, 3)
        bias = torch.empty(heads, n, n)
        for i, j in itertools.product(range(n), range(n)):
            dt, dr, dc = tau[i] - tau[j], i // ww - j // ww, i % ww - j % ww
            row = ((dt + frames - 1) * (2 * wh - 1) + dr + wh - 1) * (2 * ww - 1) + dc + ww - 1
            bias[:, i, j] = table[row]
        a = ((q * attn.scale) @ k.transpose(-1, -2) + bias).softmax(-1) @ v  # [heads, n, d]
        heads_out[t, w] = a.transpose(0, 1).reshape(n, dim)
    back = torch.empty_like(heads_out)
    for t, i in itertools.product(range(frames), range(n)):
        back[t, :, i] = heads_out[(t + int(shifts[i])) % frames, :, i]  # inverse roll
    expected = attn.proj(back.reshape(frames * windows, n, dim))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


def test_joint_attention_matches_full_space_time_attention() -> None:
    torch.manual_seed(2)
    frames, window, dim, heads = 3, (2, 2), 8, 2
    base = (
        SwinTransformer(
            img_size=4, patch_size=1, embed_dim=dim, depths=(1,), num_heads=(heads,), window_size=window
        )
        .layers[0]
        .blocks[0]
        .attn
    )
    attn = TemporalWindowAttention(base, "joint", 4, frames).eval()
    with torch.no_grad():
        attn.relative_position_bias_table.normal_()
    x = torch.randn(frames * 4, 4, dim)
    out = attn(x).reshape(frames, 4, 4, dim)
    for w in range(4):
        tokens = x.reshape(frames, 4, 4, dim)[:, w].reshape(frames * 4, dim)
        q, k, v = attn.qkv(tokens).reshape(frames * 4, 3, heads, -1).permute(1, 2, 0, 3)
        index = torch.empty(frames * 4, frames * 4, dtype=torch.long)
        for i, j in itertools.product(range(frames * 4), range(frames * 4)):
            (ti, pi), (tj, pj) = divmod(i, 4), divmod(j, 4)
            dt, dr, dc = ti - tj, pi // 2 - pj // 2, pi % 2 - pj % 2
            index[i, j] = ((dt + frames - 1) * 3 + dr + 1) * 3 + dc + 1
        bias = attn.relative_position_bias_table[index].permute(2, 0, 1)
        a = ((q * attn.scale) @ k.transpose(-1, -2) + bias).softmax(-1) @ v
        expected = attn.proj(a.transpose(0, 1).reshape(frames * 4, dim)).reshape(frames, 4, dim)
        torch.testing.assert_close(out[:, w], expected, rtol=1e-5, atol=1e-5)


def _timm_swin(**kw) -> SwinTransformer:
    return SwinTransformer(
        img_size=kw["img_size"],
        patch_size=kw["patch_size"],
        embed_dim=kw["embed_dim"],
        depths=kw["depths"],
        num_heads=kw["num_heads"],
        window_size=kw["window_size"],
        drop_path_rate=0.0,
        num_classes=0,
    ).eval()


def _per_frame_timm(swin: SwinTransformer, clip: torch.Tensor) -> torch.Tensor:
    b, _, t = clip.shape[:3]
    frames = clip.transpose(1, 2).flatten(0, 1)
    return swin.forward_head(swin.forward_features(frames), pre_logits=True).reshape(b, t, -1).mean(1)


def test_zero_pattern_reproduces_unshifted_model_and_timm_swin() -> None:
    torch.manual_seed(3)
    swin = _timm_swin(**SMALL)
    clip = torch.randn(2, 3, 5, 48, 48)
    reference = _per_frame_timm(swin, clip)
    for temporal, pattern in (("none", "C"), ("tps", [[0]])):
        model = PST(num_classes=4, num_frames=5, **SMALL, temporal=temporal, pattern=pattern).eval()
        report = model.load_state_dict(model.adapt_state_dict(swin.state_dict()), strict=False)
        assert not [k for k in report.missing_keys if not k.startswith("head")]
        with torch.no_grad():
            torch.testing.assert_close(model.forward_features(clip), reference, rtol=1e-5, atol=1e-5)


def test_shifts_mix_time_and_the_2d_baseline_ignores_frame_order() -> None:
    torch.manual_seed(4)
    clip = torch.randn(1, 3, 5, 48, 48)
    reversed_clip = clip.flip(2)
    base = PST(num_classes=3, num_frames=5, **SMALL, temporal="none").eval()
    with torch.no_grad():
        torch.testing.assert_close(base(clip), base(reversed_clip), rtol=1e-5, atol=1e-5)
        for temporal in ("alternate", "tps", "tcs", "joint"):
            model = PST(num_classes=3, num_frames=5, **SMALL, temporal=temporal).eval()
            model.load_state_dict(model.adapt_state_dict(base.state_dict()))
            if temporal == "joint":  # order-blind until its bias tells time offsets apart
                for blk in (b for stage in model.layers for b in stage.blocks):
                    blk.attn.relative_position_bias_table.normal_(std=2.0)
            change = model.forward_features(clip) - model.forward_features(reversed_clip)
            assert change.norm() > 1e-3 * model.forward_features(clip).norm(), temporal


@pytest.mark.parametrize("temporal", ["alternate", "joint"])
def test_gradients_reach_every_block_odd_frames_non7_windows(temporal: str) -> None:
    torch.manual_seed(5)
    model = PST(num_classes=3, num_frames=6, tubelet_size=2, **SMALL, temporal=temporal)  # T' = 3
    model(torch.randn(2, 3, 6, 48, 48)).logsumexp(-1).sum().backward()
    blocks = [blk for stage in model.layers for blk in stage.blocks]
    assert len(blocks) == 4
    for blk in blocks:
        for param in (blk.attn.qkv.weight, blk.attn.relative_position_bias_table, blk.mlp.fc1.weight):
            assert param.grad is not None and param.grad.abs().sum() > 0
    assert model.patch_embed.proj.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("family", ["swin", "vit"])
def test_grad_checkpointing_gives_the_same_gradients_and_only_in_training(family: str) -> None:
    def build(checkpointing: bool) -> torch.nn.Module:
        torch.manual_seed(7)
        if family == "swin":
            kwargs = {**SMALL, "drop_path_rate": 0.2}
            return PST(num_classes=3, num_frames=4, grad_checkpointing=checkpointing, **kwargs)
        return PSTViT(
            num_classes=3, num_frames=4, img_size=16, patch_size=4, embed_dim=16, depth=2,
            num_heads=2, drop_path_rate=0.2, grad_checkpointing=checkpointing,
        )  # fmt: skip

    size = 48 if family == "swin" else 16
    clip = torch.randn(2, 3, 4, size, size)
    grads, attention_calls = [], []
    for checkpointing in (False, True):
        model = build(checkpointing)
        calls: list[int] = []
        first_block = model.layers[0].blocks[0] if family == "swin" else model.vit.blocks[0]
        first_block.attn.register_forward_hook(lambda *_, calls=calls: calls.append(1))
        torch.manual_seed(8)  # the same drop-path draws; checkpointing must replay them
        model(clip).logsumexp(-1).sum().backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
        attention_calls.append(len(calls))
    assert attention_calls == [1, 2]  # recomputed in the backward pass
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-4, atol=1e-6, msg=name)
    stages = model.layers if family == "swin" else [model.vit]
    assert all(stage.grad_checkpointing for stage in stages)
    model.eval()
    assert not any(stage.grad_checkpointing for stage in stages)


class _SoftmaxDtypes(TorchFunctionMode):
    """Records the dtype of every softmax output computed inside the mode."""

    def __init__(self) -> None:
        super().__init__()
        self.dtypes: list[torch.dtype] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in (torch.Tensor.softmax, torch.softmax, torch.nn.functional.softmax):
            self.dtypes.append(out.dtype)
        return out


@pytest.mark.parametrize("temporal", ["alternate", "joint"])
def test_bf16_mixed_precision_follows_fp32_with_fp32_attention_maps(temporal: str) -> None:
    """Under CPU autocast the products run in bf16; the attention softmax stays fp32 (stability)."""
    torch.manual_seed(6)
    model = PST(num_classes=5, num_frames=4, **SMALL, temporal=temporal).eval()
    clip = torch.randn(2, 3, 4, 48, 48)
    with torch.no_grad():
        reference = model(clip)
        with torch.autocast("cpu", dtype=torch.bfloat16), _SoftmaxDtypes() as seen:
            mixed = model(clip)
    assert mixed.dtype == torch.bfloat16
    assert (mixed.float() - reference).norm() < 0.05 * reference.norm()
    assert len(seen.dtypes) == 4 and set(seen.dtypes) == {torch.float32}


def test_inflated_2d_weights_give_the_2d_answer_on_a_static_clip() -> None:
    """Swin weights -> PST (Conv3d tubelet 2, 3D bias): a clip of one repeated frame = timm's Swin."""
    torch.manual_seed(6)
    swin = _timm_swin(**{**SMALL, "window_size": 4})
    model = PST(num_classes=5, num_frames=6, tubelet_size=2, **SMALL).eval()  # window 3: table resized
    state = model.adapt_state_dict(swin.state_dict())
    assert state["patch_embed.proj.weight"].shape == (16, 3, 2, 4, 4)
    tps_block = model.layers[0].blocks[1].attn
    assert (
        tps_block.mode == "tps"
        and state["layers.0.blocks.1.attn.relative_position_bias_table"].shape[0] == 5 * 25
    )
    model.load_state_dict(state, strict=False)
    swin3 = _timm_swin(**SMALL)
    same = PST(num_classes=5, num_frames=6, tubelet_size=2, **SMALL).eval()
    same.load_state_dict(same.adapt_state_dict(swin3.state_dict()), strict=False)
    frame = torch.randn(2, 3, 1, 48, 48)
    static = frame.expand(-1, -1, 6, -1, -1)
    with torch.no_grad():
        torch.testing.assert_close(
            same.forward_features(static), _per_frame_timm(swin3, frame), rtol=1e-5, atol=1e-5
        )


def test_vit_zero_pattern_and_static_clip_match_per_frame_vit() -> None:
    torch.manual_seed(7)
    kw = {"img_size": 32, "patch_size": 8, "embed_dim": 24, "depth": 2, "num_heads": 2, "drop_path_rate": 0.0}
    zero = PSTViT(num_classes=3, num_frames=3, pattern=[[0]], temporal="tps", **kw).eval()
    shifted = PSTViT(num_classes=3, num_frames=3, **kw).eval()
    shifted.load_state_dict(zero.state_dict())
    clip = torch.randn(2, 3, 3, 32, 32)
    vit = zero.vit
    with torch.no_grad():
        frames = clip.transpose(1, 2).flatten(0, 1)
        for m in vit.blocks:  # the same ViT without the temporal wrapper: the zero pattern changes nothing
            m.attn.mode = "none"
        expected = vit.head(
            vit.forward_head(vit.forward_features(frames), pre_logits=True).reshape(2, 3, -1).mean(1)
        )
        for m in vit.blocks:
            m.attn.mode = "tps"
        torch.testing.assert_close(zero(clip), expected, rtol=1e-5, atol=1e-5)
        assert (shifted(clip) - shifted(clip.flip(2))).abs().max() > 1e-4
        static = clip[:, :, :1].expand(-1, -1, 3, -1, -1)
        torch.testing.assert_close(shifted(static), zero(static), rtol=1e-5, atol=1e-5)
    shifted.train()
    shifted(clip).sum().backward()
    assert all(b.attn.qkv.weight.grad.abs().sum() > 0 for b in shifted.vit.blocks)


def test_registered_variants_and_bad_input() -> None:
    names = list_models("video")
    for name in ("pst_t", "pst_b", "pst_xs", "swin2d_xs", "swin3d_joint_xs"):
        assert name in names
    model = create_model("pst_xs", num_classes=7, num_frames=4, img_size=32)
    assert model(torch.randn(1, 3, 4, 32, 32)).shape == (1, 7)
    with pytest.raises(ValueError, match="4 frames"):
        model(torch.randn(1, 3, 6, 32, 32))
    with pytest.raises(ValueError, match="32"):
        model(torch.randn(1, 3, 4, 48, 48))
    with pytest.raises(ValueError, match="pattern"):
        PST(num_classes=2, num_frames=2, **SMALL, pattern="Z")
    t_model = create_model("pst_t", num_classes=10, num_frames=4, img_size=64)
    assert sum(p.numel() for p in t_model.parameters()) > 27e6


def test_user_2d_swin_file_is_inflated_by_load_pretrained(tmp_path) -> None:
    """``--weights swin.pth``: a 2D timm Swin state dict (1000-class head) initialises a PST."""
    from lightact.models.weights import load_pretrained

    torch.manual_seed(8)
    swin = SwinTransformer(
        img_size=48,
        patch_size=4,
        embed_dim=16,
        depths=(2, 2),
        num_heads=(2, 4),
        window_size=3,
        num_classes=1000,
    ).eval()
    torch.save({"model": swin.state_dict()}, tmp_path / "swin.pth")
    model = PST(num_classes=5, num_frames=4, tubelet_size=2, **SMALL).eval()
    report = load_pretrained(model, tmp_path / "swin.pth")
    assert report.missing == [] and report.shape_mismatch == []
    assert report.head == ["head.bias", "head.weight"]  # 1000 classes there, 5 here
    frame = torch.randn(1, 3, 1, 48, 48)
    with torch.no_grad():
        expected = _per_frame_timm(swin, frame)
        torch.testing.assert_close(
            model.forward_features(frame.expand(-1, -1, 4, -1, -1)), expected, rtol=1e-5, atol=1e-5
        )
