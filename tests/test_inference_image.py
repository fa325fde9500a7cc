"""Predicting actions in still images with an image model (lightact.inference.image)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightact.data.image import ImageReadError, ImageTransformSpec, eval_view
from lightact.inference import ImageRecognizer, Recognizer, predict_path

KWARGS = {"num_classes": 3, "img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 1, "num_heads": 2}


@pytest.fixture(scope="module")
def checkpoint_and_model(tmp_path_factory, save_checkpoint) -> tuple[Path, torch.nn.Module]:
    """A randomly initialised tiny ViT saved with the preprocessing a training run records (two
    test crops)."""
    import timm

    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, **KWARGS).eval()
    spec = ImageTransformSpec(img_size=32)
    data = {"img_size": 32, "crop_pct": spec.crop_pct, "mean": list(spec.mean), "std": list(spec.std)}
    data["num_crops"] = 2
    directory = tmp_path_factory.mktemp("vit")
    save_checkpoint(directory, model, "timm/vit_tiny_patch16_224", KWARGS, ["x", "y", "z"], data)
    return directory, model


def test_predict_path_matches_the_model_on_eval_crops(checkpoint_and_model, tmp_path):
    checkpoint, model = checkpoint_and_model
    pixels = np.random.default_rng(1).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    (tmp_path / "in").mkdir()
    Image.fromarray(pixels).save(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "b.jpg").write_bytes(b"broken")
    with pytest.warns(UserWarning, match=r"skipping .*b\.jpg: cannot read image"):
        predictions = predict_path(checkpoint, tmp_path / "in", out_dir=tmp_path / "out", skip_errors=True)
    # One JSON per image and no timeline: an image is one frame.
    assert len(predictions) == 1 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.json"]
    image = torch.from_numpy(pixels).permute(2, 0, 1)
    spec = ImageTransformSpec(img_size=32)
    with torch.no_grad():
        views = torch.stack([eval_view(image, spec, 0), eval_view(image, spec, 1)])
        expected = model(views).softmax(-1).mean(0).numpy()
    assert np.allclose(predictions[0].probabilities, expected, atol=1e-5)
    with pytest.raises(ImageReadError, match="b.jpg"):
        predict_path(checkpoint, tmp_path / "in" / "b.jpg")


def test_pixels_and_options(checkpoint_and_model):
    checkpoint, _ = checkpoint_and_model
    recognizer = Recognizer.from_checkpoint(checkpoint)
    assert isinstance(recognizer, ImageRecognizer) and recognizer.num_crops == 2
    pixels = np.random.default_rng(2).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    prediction = recognizer.predict(pixels, 2)
    assert prediction.source == "array" and [c.label for c in prediction.topk] == [
        prediction.classes[i] for i in np.argsort(-prediction.probabilities)[:2]
    ]
    assert (prediction.num_frames, len(prediction.windows)) == (1, 1)
    with pytest.raises(ValueError, match="RGB uint8"):
        recognizer.predict(pixels.astype(np.float32))
    # topk is checked as for every predictor (it used to be clamped to 1 for images).
    with pytest.raises(ValueError, match="topk must be a positive integer"):
        recognizer.predict(pixels, 0)
