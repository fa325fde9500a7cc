"""Weights from the ecosystem: every foreign layout is written here FROM a lightact model by the
inverse mapping (key names and shapes as the foreign code defines them: Microsoft Swin, the
authors' TPS in mmaction, the original ST-GCN, MMAction2 0.x/1.x, pyskl, timm, torchvision), loaded
through the normal path, and must give identical outputs. Strict loading, reading and the
``weights inspect`` command are checked on the same files."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from timm.models.swin_transformer import SwinTransformer
from torch import nn
from typer.testing import CliRunner

from lightact.models.registry import create_model
from lightact.models.stgcn import STGCN
from lightact.models.tps import PATTERNS, PST
from lightact.models.weights import (
    WeightsMismatchError,
    detect_layout,
    inspect_weights,
    load_pretrained,
    read_weights,
)

torch.set_num_threads(1)

EXACT = 1e-6  # the bar: identical outputs after a round trip through a foreign layout


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def _randomise(model: nn.Module, seed: int, table_std: float = 0.5) -> nn.Module:
    """Every learnt tensor and normalisation statistic random, so that a tensor left behind or read
    at the wrong place shows in the output (bias tables get a large spread)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            std = table_std if "relative_position_bias_table" in name else 0.1
            p.copy_(
                torch.randn(p.shape, generator=gen) * std + (1.0 if name.endswith("norm.weight") else 0.0)
            )
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=gen) + 0.5)
    return model.eval()


# ----------------------------------------------------------------------------- Swin layouts

XS_SWIN = dict(img_size=32, patch_size=4, embed_dim=32, depths=(2, 2), num_heads=(2, 4), window_size=4)


def _timm_swin(num_classes: int = 1000, seed: int = 0, **kw) -> SwinTransformer:
    return _randomise(SwinTransformer(num_classes=num_classes, drop_path_rate=0.0, **kw), seed)


def _to_microsoft_swin(swin: SwinTransformer) -> dict[str, torch.Tensor]:
    """A timm Swin's weights as microsoft/Swin-Transformer saves them: patch merging at the end of
    stage i (``layers.i.downsample``), ``head.weight``, and its persistent buffers
    ``relative_position_index`` [N, N] and ``attn_mask`` [windows, N, N] (shifted blocks only)."""
    out = {}
    for key, value in swin.state_dict().items():
        key = re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m[1]) - 1}.downsample", key)
        out[key.replace("head.fc.", "head.")] = value
    for name, buffer in swin.named_buffers():
        if name.endswith(("relative_position_index", "attn_mask")):
            out[name] = buffer.clone()
    return out


def _per_frame(swin: SwinTransformer, clip: torch.Tensor) -> torch.Tensor:
    """2D Swin features of every frame of ``clip`` [B, 3, T, H, W], averaged over time."""
    b, _, t = clip.shape[:3]
    feats = swin.forward_head(swin.forward_features(clip.transpose(1, 2).flatten(0, 1)), pre_logits=True)
    return feats.reshape(b, t, -1).mean(1)


@pytest.mark.parametrize("name", ["pst_xs", "swin2d_xs", "swin3d_joint_xs"])
def test_original_swin_file_equals_the_timm_file_and_2d_swin_in_every_swin_model(name, tmp_path):
    swin = _timm_swin(**XS_SWIN)
    torch.save({"model": _to_microsoft_swin(swin)}, tmp_path / "microsoft.pth")
    save_file(swin.state_dict(), tmp_path / "timm.safetensors")
    assert detect_layout(read_weights(tmp_path / "microsoft.pth").state) == "swin-original"
    assert detect_layout(read_weights(tmp_path / "timm.safetensors").state) == "swin-timm"

    from_original = create_model(name, num_classes=5).eval()
    report = load_pretrained(from_original, tmp_path / "microsoft.pth")
    assert not report.problems and report.head == ["head.bias", "head.weight"]  # 1000 classes there
    assert any("layers.(i+1).downsample" in n for n in report.conversion.notes)
    from_timm = create_model(name, num_classes=5).eval()
    load_pretrained(from_timm, tmp_path / "timm.safetensors")
    clip = torch.randn(2, 3, 8, 32, 32)
    static = clip[:, :, :1].expand_as(clip)
    with torch.no_grad():
        assert _max_diff(from_original.forward_features(clip), from_timm.forward_features(clip)) <= EXACT
        # inflated 2D weights on a clip of one repeated frame: the 2D model's answer
        torch.testing.assert_close(
            from_original.forward_features(static), _per_frame(swin, clip[:, :, :1]), rtol=0, atol=1e-5
        )


def test_original_swin_t_file_into_pst_t_gives_2d_swin_features_on_a_static_clip(tmp_path):
    """The issue's case: an ImageNet Swin-T in the Microsoft layout (the one the TPS README links)
    into pst_t at the paper's resolution (4 frames here to keep CI short; the 32-frame run is in
    benchmarks/pst_weights.py)."""
    swin = _timm_swin(
        **{"img_size": 224, "embed_dim": 96, "depths": (2, 2, 6, 2), "num_heads": (3, 6, 12, 24)}
    )
    torch.save({"model": _to_microsoft_swin(swin)}, tmp_path / "swin_tiny_patch4_window7_224.pth")
    model = create_model("pst_t", num_classes=400, num_frames=4).eval()
    report = load_pretrained(model, tmp_path / "swin_tiny_patch4_window7_224.pth")
    assert not report.missing and not report.shape_mismatch and not report.unexpected
    frame = torch.randn(1, 3, 1, 224, 224)
    with torch.no_grad():
        diff = _max_diff(model.forward_features(frame.expand(-1, -1, 4, -1, -1)), _per_frame(swin, frame))
    assert diff <= 1e-5


def test_a_swin_file_without_patch_merging_is_refused_naming_the_keys_or_loaded_with_the_list(tmp_path):
    swin = _timm_swin(**XS_SWIN)
    state = {k: v for k, v in _to_microsoft_swin(swin).items() if ".downsample." not in k}
    torch.save(state, tmp_path / "no_merging.pth")
    with pytest.raises(WeightsMismatchError) as err:
        load_pretrained(
            create_model("pst_xs", num_classes=5), tmp_path / "no_merging.pth", model_name="pst_xs"
        )
    message = str(err.value)
    for key in ("layers.1.downsample.reduction.weight", "layers.1.downsample.norm.weight"):
        assert key in message
    assert "no_merging.pth" in message and "swin-original" in message and "tensors" in message
    assert "\n" not in message and "weights_strict: false" in message
    model = create_model("pst_xs", num_classes=5)
    report = load_pretrained(model, tmp_path / "no_merging.pth", strict=False)
    assert report.missing == [
        "layers.1.downsample.norm.bias",
        "layers.1.downsample.norm.weight",
        "layers.1.downsample.reduction.weight",
    ]
    assert torch.equal(model.norm.weight, swin.norm.weight)  # what fits is loaded


def test_a_wrong_shape_is_refused_with_the_key_both_shapes_and_the_file(tmp_path):
    swin = _timm_swin(**XS_SWIN)
    state = swin.state_dict()
    state["layers.1.blocks.0.mlp.fc1.weight"] = state["layers.1.blocks.0.mlp.fc1.weight"][:, :16].contiguous()
    save_file(state, tmp_path / "narrow.safetensors")
    with pytest.raises(
        WeightsMismatchError,
        match=r"layers\.1\.blocks\.0\.mlp\.fc1\.weight \(file \[256, 16\], model \[256, 64\]\)",
    ) as err:
        load_pretrained(create_model("pst_xs", num_classes=5), tmp_path / "narrow.safetensors")
    assert "narrow.safetensors" in str(err.value)


# ----------------------------------------------------------------------------- the authors' TPS


def _authors_index(frames: int, window: tuple[int, int], pattern: str, tps: bool) -> torch.Tensor:
    """A slow, literal reading of the authors' index (MartinXM/TPS, WindowAttention3D): coordinates
    (t, r, c) of all frames x window tokens, the time coordinate of each pattern cell rolled along
    time by its shift (TPS blocks only), every (query, key) pair's coordinate difference turned
    into a table row, and of the (frames * frames) blocks the ones with the key in frame 0 kept."""
    wh, ww = window
    grid = PATTERNS[pattern]
    coords = torch.stack(
        torch.meshgrid(torch.arange(frames), torch.arange(wh), torch.arange(ww), indexing="ij")
    )
    if tps:
        for pr in range(len(grid)):
            for pc in range(len(grid[0])):
                cell = coords[:, :, pr :: len(grid), pc :: len(grid[0])]
                coords[:, :, pr :: len(grid), pc :: len(grid[0])] = torch.roll(
                    cell, shifts=grid[pr][pc], dims=1
                )
    tokens = coords.flatten(1).T.tolist()  # (t, r, c) of token d * N + n
    n = wh * ww
    index = torch.empty(frames, n, n, dtype=torch.long)
    for t in range(frames):
        for i in range(n):
            tq, rq, cq = tokens[t * n + i]
            for j in range(n):
                tk, rk, ck = tokens[j]  # the key in frame 0's window
                row = (tq - tk + frames - 1) * (2 * wh - 1) * (2 * ww - 1)
                index[t, i, j] = row + (rq - rk + wh - 1) * (2 * ww - 1) + (cq - ck + ww - 1)
    return index


# The authors' shapes: 32 frames with tubelet 2 (16 temporal tokens), 7x7 windows, pattern C.
AUTHORS = dict(XS_SWIN, img_size=56, embed_dim=16, window_size=7, num_frames=32, tubelet_size=2)


@pytest.mark.parametrize(
    "frames, window, pattern", [(16, (7, 7), "C"), (5, (3, 3), "C"), (4, (4, 4), "D"), (3, (2, 2), "A")]
)
def test_official_bias_index_is_the_authors_index(frames, window, pattern):
    from timm.models.swin_transformer import WindowAttention

    from lightact.models.tps import TemporalWindowAttention

    base = WindowAttention(8, num_heads=2, window_size=window)
    for mode in ("tps", "tcs"):
        attn = TemporalWindowAttention(base, mode, 1, frames, pattern, bias_index="official")
        expected = _authors_index(frames, window, pattern, tps=mode == "tps")
        assert torch.equal(attn.relative_position_index(frames), expected), mode
        assert attn.relative_position_bias_table.shape[0] == (2 * frames - 1) * (2 * window[0] - 1) * (
            2 * window[1] - 1
        )
    paper = TemporalWindowAttention(base, "tps", 1, frames, pattern)
    assert not torch.equal(
        paper.relative_position_index(frames), _authors_index(frames, window, pattern, True)
    )


def _to_authors_tps(model: PST, classes_key: str = "cls_head.fc_cls") -> dict[str, torch.Tensor]:
    """A PST's weights as the authors' mmaction checkpoint holds them: ``backbone.`` prefix, patch
    merging at the end of stage i, ``cls_head.fc_cls`` (I3DHead), and in every block both index
    buffers [T', N, N] (``relative_position_index`` for TPS blocks, ``_old`` for TCS ones),
    computed here by the slow reference of their code."""
    out = {}
    for key, value in model.state_dict().items():
        if key.startswith("head."):
            out[f"{classes_key}.{key[5:]}"] = value
            continue
        key = re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m[1]) - 1}.downsample", key)
        out[f"backbone.{key}"] = value
    for i, stage in enumerate(model.layers):
        for j, block in enumerate(stage.blocks):
            attn = block.attn
            args = (attn.max_frames, attn.window_size, "C")
            out[f"backbone.layers.{i}.blocks.{j}.attn.relative_position_index"] = _authors_index(
                *args, tps=True
            )
            out[f"backbone.layers.{i}.blocks.{j}.attn.relative_position_index_old"] = _authors_index(
                *args, tps=False
            )
    return out


def test_the_authors_tps_checkpoint_gives_their_model_with_bias_index_official(tmp_path):
    source = _randomise(PST(num_classes=7, bias_index="official", **AUTHORS), seed=1)
    assert (
        source.layers[0].blocks[0].attn.relative_position_bias_table.shape[0] == 31 * 169
    )  # their TCS table
    checkpoint = {
        "meta": {"epoch": 30, "best_score": np.float64(0.786)},
        "state_dict": _to_authors_tps(source),
    }
    torch.save(checkpoint, tmp_path / "tps_k400.pth")
    assert detect_layout(read_weights(tmp_path / "tps_k400.pth").state) == "tps-official"

    model = PST(num_classes=7, bias_index="official", **AUTHORS).eval()
    report = load_pretrained(model, tmp_path / "tps_k400.pth")
    assert not report.problems and not report.head and not report.unexpected
    clip = torch.randn(1, 3, 32, 56, 56)
    with torch.no_grad():
        assert _max_diff(model(clip), source(clip)) <= EXACT

    # lightact's default index reads their tables at other rows (and its TCS tables are 2D): refused
    with pytest.raises(WeightsMismatchError, match="bias_index: official"):
        load_pretrained(PST(num_classes=7, **AUTHORS), tmp_path / "tps_k400.pth")
    # a file made for another pattern has another index: refused as well
    other = PST(num_classes=7, bias_index="official", pattern="D", **AUTHORS)
    with pytest.raises(WeightsMismatchError, match="index stored in the file differs"):
        load_pretrained(other, tmp_path / "tps_k400.pth")


def test_both_indexes_give_the_same_function_from_imagenet_weights(tmp_path):
    """With tables constant along time (2D inflation) the two indexes read the same values."""
    swin = _timm_swin(
        **{k: AUTHORS[k] for k in ("img_size", "embed_dim", "depths", "num_heads", "window_size")}
    )
    torch.save({"model": _to_microsoft_swin(swin)}, tmp_path / "swin.pth")
    models = [PST(num_classes=3, bias_index=index, **AUTHORS).eval() for index in ("paper", "official")]
    for model in models:
        load_pretrained(model, tmp_path / "swin.pth")
    clip = torch.randn(1, 3, 32, 56, 56)
    with torch.no_grad():
        assert _max_diff(models[0].forward_features(clip), models[1].forward_features(clip)) <= EXACT


def test_official_index_only_for_tps_and_tcs_blocks():
    with pytest.raises(ValueError, match="has none"):
        PST(num_classes=3, temporal="joint", bias_index="official", **{**AUTHORS, "num_frames": 4})
    with pytest.raises(ValueError, match="bias_index must be one of"):
        PST(num_classes=3, bias_index="authors", **{**AUTHORS, "num_frames": 4})


# ----------------------------------------------------------------------------- ST-GCN layouts


def _stgcn(seed: int, **kw) -> STGCN:
    """A random ST-GCN whose graph is not lightact's partition (subsets reordered, reweighted), so
    the converted file must bring its own graph for the outputs to agree."""
    model = _randomise(STGCN(**kw), seed)
    with torch.no_grad():
        model.A.copy_(model.A[[0, 2, 1]] * torch.linspace(0.5, 1.5, model.A.shape[-1]))
    return model


def _to_original_stgcn(model: STGCN, mmaction0x: bool = False) -> dict[str, torch.Tensor]:
    """yysijie/st-gcn ``net.st_gcn.Model``: ``st_gcn_networks.i`` (gcn.conv, tcn.0/2/3,
    residual.0/1 as ours), ``edge_importance.i`` [K, V, V], ``A``, ``data_bn`` [V*C], classifier
    ``fcn`` Conv2d [classes, 256, 1, 1]. MMAction2 0.x: the same under ``backbone.``, classifier
    ``cls_head.fc`` (STGCNHead, a 1x1 Conv2d)."""
    prefix, head = ("backbone.", "cls_head.fc") if mmaction0x else ("", "fcn")
    out = {}
    for key, value in model.state_dict().items():
        if key.startswith("head."):
            out[f"{head}.{key[5:]}"] = value[:, :, None, None] if key.endswith("weight") else value
            continue
        key = re.sub(r"^blocks\.(\d+)\.edge_importance$", r"edge_importance.\1", key)
        out[prefix + re.sub(r"^blocks\.", "st_gcn_networks.", key)] = value
    return out


_MMACTION_PARTS = {  # ours -> MMAction2 1.x / pyskl STGCNBlock
    "gcn.conv": "gcn.conv",  # unit_gcn.conv, Conv2d [K*C_out, C_in, 1, 1]
    "tcn.0": "gcn.bn",  # unit_gcn.bn, after the graph aggregation
    "tcn.2": "tcn.conv",  # unit_tcn.conv, Conv2d [C, C, 9, 1]
    "tcn.3": "tcn.bn",
    "residual.0": "residual.conv",  # unit_tcn(kernel_size=1)
    "residual.1": "residual.bn",
}


def _to_mmaction_stgcn(model: STGCN, head: str | None = "cls_head.fc") -> dict[str, torch.Tensor]:
    """MMAction2 1.x (``cls_head.fc``, GCNHead) or pyskl (``cls_head.fc_cls``): ``backbone.gcn.i``
    with unit_gcn (conv, bn, ``A`` and importance ``PA`` [K, V, V] per unit) and unit_tcn (conv, bn)."""
    out = {}
    for key, value in model.state_dict().items():
        if key == "A":
            for i in range(len(model.blocks)):
                out[f"backbone.gcn.{i}.gcn.A"] = value.clone()
            continue
        if key.startswith("head."):
            if head is not None:
                out[f"{head}.{key[5:]}"] = value
            continue
        unit = re.match(r"blocks\.(\d+)\.(.+)$", key)
        if unit is None:
            out[f"backbone.{key}"] = value
            continue
        i, rest = unit[1], unit[2]
        if rest == "edge_importance":
            out[f"backbone.gcn.{i}.gcn.PA"] = value
            continue
        part = next(p for p in _MMACTION_PARTS if rest.startswith(p + "."))
        out[f"backbone.gcn.{i}.{_MMACTION_PARTS[part]}{rest[len(part) :]}"] = value
    return out


def _clip(model: STGCN, persons: int = 2) -> torch.Tensor:
    return torch.randn(
        3, model.in_channels, 24, model.layout.num_joints, persons, generator=torch.Generator().manual_seed(5)
    )


@pytest.mark.parametrize(
    "layout_name, graph, kw",
    [
        ("stgcn-original", "ntu25", {}),
        ("stgcn-original", "ntu25", {"mmaction0x": True}),
        ("stgcn-mmaction2", "ntu25", {"head": "cls_head.fc"}),
        ("stgcn-mmaction2", "coco17", {"head": "cls_head.fc", "data_bn": "MVC"}),
        ("stgcn-pyskl", "coco17", {"head": "cls_head.fc_cls"}),
        ("stgcn-pyskl", "ntu25", {"head": "cls_head.fc_cls", "data_bn": "MVC"}),
    ],
)
def test_stgcn_checkpoints_of_three_codebases_round_trip(layout_name, graph, kw, tmp_path):
    data_bn = kw.pop("data_bn", "VC")
    source = _stgcn(2, num_classes=11, layout=graph, data_bn=data_bn)
    if layout_name == "stgcn-original":
        state = _to_original_stgcn(source, **kw)
    else:
        state = _to_mmaction_stgcn(source, **kw)
    torch.save({"meta": {"CLASSES": tuple("abc")}, "state_dict": state}, tmp_path / "stgcn.pth")
    assert detect_layout(read_weights(tmp_path / "stgcn.pth").state) == layout_name
    model = STGCN(num_classes=11, layout=graph, data_bn=data_bn).eval()
    report = load_pretrained(model, tmp_path / "stgcn.pth")
    assert not report.problems and not report.head and not report.unexpected
    assert torch.equal(model.A, source.A)  # the file's graph, not lightact's partition
    with torch.no_grad():
        assert _max_diff(model(_clip(model)), source(_clip(model))) <= EXACT


def test_stgcn_file_mismatches_name_the_setting_to_change(tmp_path):
    source = _stgcn(3, num_classes=5, layout="coco17", data_bn="MVC")
    torch.save({"state_dict": _to_mmaction_stgcn(source)}, tmp_path / "mvc.pth")
    with pytest.raises(WeightsMismatchError, match="model.data_bn: MVC and model.num_person: 2"):
        load_pretrained(STGCN(num_classes=5, layout="coco17"), tmp_path / "mvc.pth")
    # an adaptive graph per unit (ST-GCN++) is not a plain ST-GCN
    state = _to_mmaction_stgcn(_stgcn(3, num_classes=5))
    state["backbone.gcn.3.gcn.A"] = state["backbone.gcn.3.gcn.A"] * 2
    torch.save(state, tmp_path / "adaptive.pth")
    with pytest.raises(WeightsMismatchError, match="different graphs"):
        load_pretrained(STGCN(num_classes=5), tmp_path / "adaptive.pth")


def test_stgcn_file_without_edge_importance_gets_ones(tmp_path):
    source = _randomise(STGCN(num_classes=4, edge_importance=False), 4)
    torch.save(_to_original_stgcn(source), tmp_path / "plain.pt")
    model = STGCN(num_classes=4).eval()
    report = load_pretrained(model, tmp_path / "plain.pt")
    assert any("ones" in n for n in report.conversion.notes)
    with torch.no_grad():
        assert _max_diff(model(_clip(model)), source(_clip(model))) <= EXACT


# ----------------------------------------------------------------------------- timm and torchvision


def test_torchvision_video_checkpoint_with_ema_and_ddp_prefix(tmp_path):
    source = _randomise(create_model("tv/mc3_18", num_classes=6), 6)
    ema = _randomise(create_model("tv/mc3_18", num_classes=6), 7)
    torch.save(
        {
            "epoch": 3,
            "state_dict": {f"module.{k}": v for k, v in source.state_dict().items()},
            "state_dict_ema": {f"module.{k}": v for k, v in ema.state_dict().items()},
        },
        tmp_path / "mc3.pth",
    )
    clip = torch.randn(1, 3, 4, 32, 32)
    for entry, expected in ((None, source), ("state_dict_ema", ema)):
        model = create_model("tv/mc3_18", num_classes=6).eval()
        load_pretrained(model, tmp_path / "mc3.pth", entry=entry)
        with torch.no_grad():
            assert _max_diff(model(clip), expected(clip)) <= EXACT
    assert read_weights(tmp_path / "mc3.pth").other_entries == ("state_dict_ema",)
    # an EMA copy alone is read without asking
    torch.save({"model_ema": ema.state_dict()}, tmp_path / "ema_only.pth")
    assert read_weights(tmp_path / "ema_only.pth").entry == "model_ema"


def test_torchvision_image_weights_into_timm_resnet(tmp_path):
    import torchvision

    source = _randomise(torchvision.models.resnet18(num_classes=9), 8)
    save_file(source.state_dict(), tmp_path / "resnet18.safetensors")
    model = create_model("timm/resnet18", num_classes=9).eval()
    assert not load_pretrained(model, tmp_path / "resnet18.safetensors").problems
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert _max_diff(model(image), source(image)) <= EXACT


def test_microsoft_swin_file_into_timm_swin_through_timms_filter(tmp_path):
    small = {"embed_dim": 16, "depths": (2, 2), "num_heads": (2, 4), "img_size": 56, "num_classes": 5}
    source = _randomise(create_model("timm/swin_tiny_patch4_window7_224", **small), 9)
    torch.save({"model": _to_microsoft_swin(source)}, tmp_path / "swin.pth")
    model = create_model("timm/swin_tiny_patch4_window7_224", **small).eval()
    report = load_pretrained(model, tmp_path / "swin.pth")
    assert not report.problems and any("checkpoint_filter_fn" in n for n in report.conversion.notes)
    image = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        assert _max_diff(model(image), source(image)) <= EXACT


def test_prefixes_are_stripped_unless_the_model_uses_them(tmp_path):
    source = _randomise(create_model("stgcn", num_classes=3), 10)
    torch.save(
        {"state_dict": {f"model.backbone.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "w.pt"
    )
    model = create_model("stgcn", num_classes=3)
    assert not load_pretrained(model, tmp_path / "w.pt").problems
    assert torch.equal(model.blocks[5].tcn[2].weight, source.blocks[5].tcn[2].weight)
    # a model with a backbone of its own keeps the prefix (only Lightning's model. goes)
    composite = _randomise(create_model("composite_mnv3s", num_classes=3, dim=32, depth=1), 13)
    torch.save({f"model.{k}": v for k, v in composite.state_dict().items()}, tmp_path / "composite.pt")
    again = create_model("composite_mnv3s", num_classes=3, dim=32, depth=1).eval()
    assert not load_pretrained(again, tmp_path / "composite.pt").problems
    clip = torch.randn(1, 3, 4, 64, 64)
    with torch.no_grad():
        assert _max_diff(again(clip), composite(clip)) <= EXACT


# ----------------------------------------------------------------------------- reading files


class _Payload:
    pass


def test_reading_refuses_code_and_names_the_objects(tmp_path):
    torch.save({"state_dict": {"w": torch.ones(1)}, "hook": _Payload()}, tmp_path / "objects.pth")
    with pytest.raises(ValueError, match=r"Python objects .*_Payload"):
        read_weights(tmp_path / "objects.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="cannot be read as plain weights"):
        read_weights(tmp_path / "junk.pth")
    torch.save({"epoch": 3, "config": "text"}, tmp_path / "empty.pth")
    with pytest.raises(ValueError, match="does not hold a dictionary of tensors"):
        read_weights(tmp_path / "empty.pth")
    torch.save({"state_dict": {"w": torch.ones(1)}}, tmp_path / "ok.pth")
    with pytest.raises(ValueError, match="no entry 'ema'"):
        read_weights(tmp_path / "ok.pth", entry="ema")


def test_teacher_and_head_rules(tmp_path):
    source = _randomise(create_model("stgcn", num_classes=3), 11)
    save_file(source.state_dict(), tmp_path / "three.safetensors")
    # a student of another label set: the head starts fresh, listed
    report = load_pretrained(create_model("stgcn", num_classes=8), tmp_path / "three.safetensors")
    assert report.head == ["head.bias", "head.weight"] and not report.problems
    # a teacher's head is what it teaches: it must fit
    with pytest.raises(WeightsMismatchError, match="head.weight"):
        load_pretrained(
            create_model("stgcn", num_classes=8), tmp_path / "three.safetensors", head_may_differ=False
        )
    with pytest.raises(ValueError, match="no tensor .* fits"):
        load_pretrained(nn.Linear(2, 2), tmp_path / "three.safetensors")


def test_training_with_weights_is_strict_unless_told(tmp_path, tiny_overrides):
    from lightact.config import load_config
    from lightact.engine.train import train

    model = create_model("star_64", num_classes=16, dim=16, depth=1, heads=2, dropout=0.0)
    state = {k: v for i, (k, v) in enumerate(model.state_dict().items()) if i != 2}
    dropped = list(model.state_dict())[2]
    save_file(state, tmp_path / "star.safetensors")
    common = [*tiny_overrides, f"model.weights={tmp_path / 'star.safetensors'}", "trainer.max_epochs=1"]
    cfg = load_config(None, [*common, f"work_dir={tmp_path / 'strict'}"])
    with pytest.raises(WeightsMismatchError, match=re.escape(dropped)):
        train(cfg)
    cfg = load_config(None, [*common, f"work_dir={tmp_path / 'loose'}", "model.weights_strict=false"])
    torch.set_num_threads(1)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        train(cfg)
    assert any(dropped in str(w.message) and "weights_strict false" in str(w.message) for w in seen)


# ----------------------------------------------------------------------------- weights inspect


def test_inspect_finds_the_model_and_variant_by_shapes(tmp_path):
    source = _stgcn(12, num_classes=120, layout="coco17")
    torch.save({"state_dict": _to_mmaction_stgcn(source, head="cls_head.fc_cls")}, tmp_path / "pyskl.pth")
    text = "\n".join(inspect_weights(tmp_path / "pyskl.pth"))
    assert "layout: stgcn-pyskl" in text and "entry 'state_dict'" in text
    assert "fits: stgcn with in_channels=3, layout=coco17" in text and "120 classes" in text

    swin = _timm_swin(**XS_SWIN)
    torch.save({"model": _to_microsoft_swin(swin)}, tmp_path / "swin.pth")
    text = "\n".join(inspect_weights(tmp_path / "swin.pth"))
    assert "layout: swin-original" in text
    assert {"fits: pst_xs", "fits: swin2d_xs", "fits: swin3d_joint_xs"} <= {
        line.split(" (")[0].split(" with")[0] for line in text.splitlines()
    }
    assert "fits: pst_t" not in text  # another width: not this variant


def test_weights_inspect_command(tmp_path):
    from lightact.cli import app

    swin = _timm_swin(**XS_SWIN)
    state = {k: v for k, v in _to_microsoft_swin(swin).items() if k != "norm.weight"}
    torch.save({"model": state}, tmp_path / "swin.pth")
    command = [
        "weights",
        "inspect",
        str(tmp_path / "swin.pth"),
        "--model",
        "pst_xs",
        "--set",
        "num_classes=5",
    ]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "layout: swin-original" in result.output
    assert "converted: patch merging moved" in result.output
    assert "PROBLEM: 1 tensors not in the file: norm.weight" in result.output
    assert "starts fresh" in result.output and "head.weight" in result.output
    assert "verdict: refused unless model.weights_strict: false" in result.output
    result = CliRunner().invoke(app, ["weights", "inspect", str(tmp_path / "missing.pth")])
    assert result.exit_code == 2 and "no weights file" in result.output
