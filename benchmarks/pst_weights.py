"""An ImageNet Swin-T in the original (Microsoft) layout into pst_t at the paper's input.

Bar (issue 18): static-clip features of pst_t (32 frames, tubelet 2, 224 px) initialised from an
original-layout Swin-T file equal the 2D Swin-T's per-frame features within 1e-5; where tensors
would stay at their initial values, loading is refused (and with ``strict=False`` the result is
measured, which is what lightact did before: the three patch-merging layers stayed random).

``--swin FILE`` takes your own Microsoft checkpoint (``swin_tiny_patch4_window7_224.pth``); without
one a Swin-T with timm's initialisation (relative-position tables spread wider, std 0.5, so that a
table read at the wrong row shows) is written in that layout first. Nothing is downloaded.

    python benchmarks/pst_weights.py [--swin swin_tiny_patch4_window7_224.pth] [--threads 2]
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import torch
from timm.models.swin_transformer import SwinTransformer

from lightact.models.registry import create_model
from lightact.models.weights import WeightsMismatchError, load_pretrained, read_state_dict

SWIN_T = {"img_size": 224, "embed_dim": 96, "depths": (2, 2, 6, 2), "num_heads": (3, 6, 12, 24)}


def microsoft_file(out: Path) -> Path:
    """A Swin-T written as microsoft/Swin-Transformer saves it (patch merging at the end of each
    stage, ``head.weight``, its index and mask buffers), under ``model`` as their checkpoints do."""
    torch.manual_seed(0)
    swin = SwinTransformer(num_classes=1000, **SWIN_T)
    with torch.no_grad():
        for name, p in swin.named_parameters():
            if name.endswith("relative_position_bias_table"):
                p.normal_(0, 0.5)
    state = {}
    for key, value in swin.state_dict().items():
        key = re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m[1]) - 1}.downsample", key)
        state[key.replace("head.fc.", "head.")] = value
    buffers = ("relative_position_index", "attn_mask")
    state.update({k: b for k, b in swin.named_buffers() if k.endswith(buffers)})
    torch.save({"model": state}, out)
    return out


def timm_swin_from(path: Path) -> SwinTransformer:
    """The 2D reference: timm's Swin-T with the file's weights through timm's own conversion."""
    from timm.models.swin_transformer import checkpoint_filter_fn

    swin = SwinTransformer(num_classes=1000, **SWIN_T).eval()
    swin.load_state_dict(checkpoint_filter_fn(read_state_dict(path), swin))
    return swin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swin", type=Path, help="a Swin-T checkpoint in the Microsoft layout")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.swin or microsoft_file(Path(tmp) / "swin_tiny_patch4_window7_224.pth")
        swin = timm_swin_from(path)
        frame = torch.randn(1, 3, 1, 224, 224, generator=torch.Generator().manual_seed(1))
        static = frame.expand(-1, -1, 32, -1, -1)
        with torch.no_grad():
            expected = swin.forward_head(swin.forward_features(frame[:, :, 0]), pre_logits=True)

        model = create_model("pst_t", num_classes=400).eval()
        start = time.perf_counter()
        report = load_pretrained(model, path, model_name="pst_t")
        with torch.no_grad():
            diff = float((model.forward_features(static) - expected).abs().max())
        print(f"pst_t (32 frames, 224 px) from {path.name}: {len(report.fitting)} tensors loaded")
        for note in report.conversion.notes:
            print(f"  converted: {note}")
        print(f"  static-clip features vs 2D Swin-T: max abs difference {diff:.3g} (bar 1e-5)")
        print(f"  load + forward: {time.perf_counter() - start:.1f} s")

        # What lightact did before: patch merging in the original placement matched nothing,
        # so those tensors stayed random. Strictly loaded, that is now a refusal.
        state = {k: v for k, v in read_state_dict(path).items() if ".downsample." not in k}
        torch.save({"model": state}, Path(tmp) / "without_merging.pth")
        try:
            load_pretrained(create_model("pst_t", num_classes=400), Path(tmp) / "without_merging.pth")
        except WeightsMismatchError as err:
            print(f"  patch merging left random, strict: refused: {str(err)[:160]}...")
        loose = create_model("pst_t", num_classes=400).eval()
        left = load_pretrained(loose, Path(tmp) / "without_merging.pth", strict=False).missing
        with torch.no_grad():
            before = float((loose.forward_features(static) - expected).abs().max())
        print(f"  patch merging left random ({len(left)} tensors), strict=False: max abs diff {before:.3g}")


if __name__ == "__main__":
    main()
