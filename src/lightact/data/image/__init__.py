"""Still images: Stanford 40 Actions, class-per-folder trees, the embedded synthetic set."""

from lightact.data.image.dataset import FixedViews, ImageBatch, ImageDataset, collate_images
from lightact.data.image.sources import (
    ImageReadError,
    ImageSamples,
    decode_image,
    drop_unreadable,
    read_image_folder,
    read_stanford40,
    stanford40_label,
    synthetic_samples,
)
from lightact.data.image.transforms import ImageTransformSpec, eval_view, train_transform

__all__ = [
    "FixedViews",
    "ImageBatch",
    "ImageDataset",
    "ImageReadError",
    "ImageSamples",
    "ImageTransformSpec",
    "collate_images",
    "decode_image",
    "drop_unreadable",
    "eval_view",
    "read_image_folder",
    "read_stanford40",
    "stanford40_label",
    "synthetic_samples",
    "train_transform",
]
