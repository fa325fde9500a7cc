"""Still-image data: Stanford 40 reader, folder trees, the synthetic set, transforms, data module."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lightact.config import build_config
from lightact.data.image import (
    ImageDataset,
    ImageReadError,
    ImageTransformSpec,
    drop_unreadable,
    eval_view,
    read_image_folder,
    read_stanford40,
    stanford40_label,
)
from lightact.data.image.dataset import FixedViews, collate_images
from lightact.data.synthetic.image import IMAGE_CLASSES, generate_image_dataset, write_image_folder
from lightact.engine.image_data import ImageDataModule
from lightact.models.registry import model_entry


def _jpeg(path, seed: int, size=(40, 30)) -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels


def _stanford_tree(root, per_class_lists: bool = False):
    """A miniature Stanford 40: 3 classes, 2 train + 1 test image each."""
    classes = ["applauding", "riding_a_bike", "writing_on_a_book"]
    splits = root / "ImageSplits"
    splits.mkdir(parents=True)
    (splits / "actions.txt").write_text(
        "action_name\tnumber_of_images\n" + "".join(f"{c}\t3\n" for c in classes)
    )
    lists = {"train": [], "test": []}
    for c_i, name in enumerate(classes):
        for n in range(1, 4):
            file = f"{name}_{n:03d}.jpg"
            _jpeg(root / "JPEGImages" / file, 10 * c_i + n)
            split = "test" if n == 3 else "train"
            lists[split].append(file)
            if per_class_lists:
                with open(splits / f"{name}_{split}.txt", "a") as f:
                    f.write(file + "\n")
    if not per_class_lists:
        for split, files in lists.items():
            (splits / f"{split}.txt").write_text("\n".join(files) + "\n")
    return classes


def test_stanford40_label_strips_the_number():
    assert stanford40_label("riding_a_bike_123.jpg") == "riding_a_bike"
    assert stanford40_label("applauding_001.jpg") == "applauding"
    with pytest.raises(ValueError, match="not a Stanford 40 image name"):
        stanford40_label("riding.jpg")


@pytest.mark.parametrize("per_class_lists", [False, True])
def test_stanford40_official_split(tmp_path, per_class_lists):
    classes = _stanford_tree(tmp_path, per_class_lists)
    train = read_stanford40(tmp_path, "train")
    test = read_stanford40(tmp_path, "test")
    assert train.classes == classes == test.classes
    assert len(train) == 6 and len(test) == 3
    assert train.keys[:2] == ["applauding_001.jpg", "applauding_002.jpg"]
    assert train.labels.tolist() == [0, 0, 1, 1, 2, 2] and test.labels.tolist() == [0, 1, 2]
    image = train.load(2)
    assert image.dtype == torch.uint8 and image.shape == (3, 30, 40)


def test_stanford40_errors_name_the_file(tmp_path):
    _stanford_tree(tmp_path)
    (tmp_path / "JPEGImages" / "riding_a_bike_002.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"train.txt:4: .*riding_a_bike_002.jpg"):
        read_stanford40(tmp_path, "train")
    with open(tmp_path / "ImageSplits" / "test.txt", "a") as f:
        f.write("jumping_001.jpg\n")
    with pytest.raises(ValueError, match="test.txt:4: .*'jumping', not in actions.txt"):
        read_stanford40(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match="actions.txt"):
        read_stanford40(tmp_path / "nowhere", "train")


def test_folder_layout_with_and_without_split_folders(tmp_path):
    for split, count in (("train", 3), ("val", 1)):
        for c in ("b_cls", "a_cls"):
            for i in range(count):
                _jpeg(tmp_path / "split" / split / c / f"{i}.png", i)
    (tmp_path / "split" / "train" / "a_cls" / "notes.txt").write_text("not an image")
    train = read_image_folder(tmp_path / "split", "train")
    val = read_image_folder(tmp_path / "split", "val")
    assert train.classes == ["a_cls", "b_cls"] == val.classes
    assert len(train) == 6 and len(val) == 2 and train.keys[0] == "train/a_cls/0.png"
    with pytest.raises(FileNotFoundError, match="no 'test'"):
        read_image_folder(tmp_path / "split", "test")

    for c in ("x", "y"):
        for i in range(5):
            _jpeg(tmp_path / "flat" / c / f"{i}.jpg", i)
    train = read_image_folder(tmp_path / "flat", "train", holdout_fraction=0.2)
    test = read_image_folder(tmp_path / "flat", "test", holdout_fraction=0.2)
    assert len(train) == 8 and len(test) == 2
    assert not set(train.keys) & set(test.keys)
    assert test.keys == ["x/4.jpg", "y/4.jpg"]


def test_corrupt_image_error_or_skip(tmp_path):
    for i in range(3):
        _jpeg(tmp_path / "train" / "c" / f"{i}.jpg", i)
    (tmp_path / "train" / "c" / "1.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    samples = read_image_folder(tmp_path, "train")
    with pytest.raises(ImageReadError, match=r"1\.jpg: cannot read image"):
        samples.load(1)
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image\(s\): .*1\.jpg"):
        kept = drop_unreadable(samples)
    assert len(kept) == 2 and [p.name for p in kept.skipped] == ["1.jpg"]
    assert kept.keys == ["train/c/0.jpg", "train/c/2.jpg"]


def test_synthetic_set_is_deterministic_and_stable_under_growth():
    a = generate_image_dataset(samples_per_class=4, seed=3, size=32)
    b = generate_image_dataset(samples_per_class=4, seed=3, size=32)
    c = generate_image_dataset(samples_per_class=6, seed=3, size=32)
    d = generate_image_dataset(samples_per_class=4, seed=4, size=32)
    assert len(IMAGE_CLASSES) >= 12 and a.classes == list(IMAGE_CLASSES)
    assert a.images.shape == (4 * len(IMAGE_CLASSES), 32, 32, 3) and a.images.dtype == np.uint8
    assert np.array_equal(a.images, b.images) and a.keys == b.keys
    # Image (class, i) depends on the seed only, not on how many images were asked for.
    assert np.array_equal(a.images[:4], c.images[:4])
    assert not np.array_equal(a.images, d.images)
    assert set(a.splits) == {"train", "test"}
    # Images of one class are not near-copies of each other.
    assert np.abs(a.images[0].astype(int) - a.images[1].astype(int)).mean() > 10


def test_synthetic_folder_round_trip(tmp_path):
    data = generate_image_dataset(samples_per_class=3, seed=0, size=32)
    counts = write_image_folder(data, tmp_path)
    assert counts == {"train": 2 * len(IMAGE_CLASSES), "test": len(IMAGE_CLASSES)}
    train = read_image_folder(tmp_path, "train")
    assert train.classes == sorted(IMAGE_CLASSES)
    first = train.keys.index("train/applauding/applauding_0001.png")
    source = data.keys.index("applauding_0001")
    assert np.array_equal(train.load(first).permute(1, 2, 0).numpy(), data.images[source])


def test_train_views_are_seeded_and_cached_views_are_fixed():
    data = generate_image_dataset(samples_per_class=2, seed=0, size=32)
    from lightact.data.image.sources import ImageSamples

    samples = ImageSamples(data.classes, data.keys, data.labels, arrays=data.images)
    spec = ImageTransformSpec(img_size=24, crop_scale=(0.3, 1.0))
    fresh = ImageDataset(samples, spec, train=True, seed=1)
    x, label, index, view = fresh[(0, 5)]
    assert x.shape == (3, 24, 24) and x.dtype == torch.float32 and index == 5 and view == -1
    assert torch.equal(x, fresh[(0, 5)][0])
    assert not torch.equal(x, fresh[(1, 5)][0])  # another epoch, another augmentation

    cached = ImageDataset(samples, spec, train=True, seed=1, cache_views=3)
    seen = set()
    for epoch in range(12):
        x, _, _, view = cached[(epoch, 5)]
        assert 0 <= view < 3
        assert torch.equal(x, cached.fixed_view(5, view))
        seen.add(view)
    assert seen == {0, 1, 2}
    views = FixedViews(cached, 3)
    assert len(views) == 3 * len(samples)
    assert torch.equal(views[5 * 3 + 2][0], cached.fixed_view(5, 2))
    batch = collate_images([cached[(0, i)] for i in range(4)])
    assert batch.inputs[0].shape == (4, 3, 24, 24) and batch.view_index.tolist() == [
        cached[(0, i)][3] for i in range(4)
    ]


def test_eval_views_centre_flip_and_corners():
    image = torch.arange(3 * 8 * 8, dtype=torch.uint8).reshape(3, 8, 8)
    spec = ImageTransformSpec(img_size=4, crop_pct=0.5, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    centre = eval_view(image, spec, 0)
    assert torch.allclose(centre * 255, image[:, 2:6, 2:6].float(), atol=1e-4)
    assert torch.equal(eval_view(image, spec, 1), centre.flip(-1))
    assert torch.allclose(eval_view(image, spec, 2) * 255, image[:, :4, :4].float(), atol=1e-4)
    with pytest.raises(ValueError, match="at most 10"):
        eval_view(image, spec, 10)


def test_data_module_and_model_arguments():
    cfg = build_config(
        {
            "data": {"kind": "image", "img_size": 32, "synth": {"samples_per_class": 3, "size": 32}},
            "model": {"name": "timm/vit_tiny_patch16_224"},
            "eval": {"num_crops": 2},
        }
    )
    dm = ImageDataModule(cfg.data, cfg.eval, "image")
    assert dm.class_names == list(IMAGE_CLASSES)
    assert dm.model_arguments() == {"num_classes": len(IMAGE_CLASSES), "img_size": 32}
    # ViTs are built for the data's image size; ConvNeXt takes any size and no img_size argument.
    assert model_entry("timm/vit_tiny_patch16_224").data_arguments(dm.model_arguments())["img_size"] == 32
    assert model_entry("timm/convnext_atto").data_arguments(dm.model_arguments()) == {
        "num_classes": len(IMAGE_CLASSES)
    }
    test = dm.dataset("test", train=False, views=dm.test_views)
    assert test.num_samples == len(IMAGE_CLASSES) and len(test) == 2 * len(IMAGE_CLASSES)
    batch = dm.collate([test[i] for i in range(4)])
    assert batch.sample_index.tolist() == [0, 0, 1, 1] and batch.inputs[0].shape == (4, 3, 32, 32)
    assert dm.inference_meta()["num_crops"] == 2


def test_map_and_per_class_ap_by_hand(tmp_path):
    from lightact.engine.reports import classification_metrics, write_reports

    probs = torch.tensor([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    labels = torch.tensor([0, 1, 1, 0])
    metrics = classification_metrics(probs, labels, ["a", "b", "c"])
    # Class a: ranked scores .7 (pos) .6 .2 .1 (pos): AP = (1/1 + 2/4) / 2 = 0.75. Class b: both
    # positives ranked first: AP = 1. Class c has no test image: no AP, left out of the mean.
    assert [r["ap"] for r in metrics["per_class"]][:2] == pytest.approx([0.75, 1.0])
    assert np.isnan(metrics["per_class"][2]["ap"])
    assert metrics["mAP"] == pytest.approx(0.875) and metrics["top1"] == pytest.approx(0.5)
    write_reports(metrics, ["a", "b", "c"], tmp_path)
    assert (tmp_path / "per_class.csv").read_text().splitlines()[0] == "class,support,accuracy,ap"
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 0
