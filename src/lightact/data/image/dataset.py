"""The still-image dataset and batch, with fixed augmented views for the teacher-logit cache."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lightact.data.batch import Batch
from lightact.data.image.sources import ImageSamples
from lightact.data.image.transforms import ImageTransformSpec, eval_view, sample_seed, seeded, train_transform


@dataclass
class ImageBatch(Batch):
    """A :class:`Batch` that also says which augmented view of its sample each row is: the key,
    with ``sample_index``, into a cache of teacher logits (``-1``: a fresh random view)."""

    view_index: Tensor | None = None


class ImageDataset(Dataset):
    """Images of one split, indexed by ``(epoch, index)`` pairs (or plain indices).

    Training: with ``cache_views == 0`` each epoch draws a fresh augmentation seeded by
    ``(seed, epoch, index)``. With ``cache_views == K`` every image has K fixed augmented views
    (view ``k`` seeded by ``(seed, index, k)``) and each epoch picks one of them by
    ``(seed, epoch, index)``, so a teacher's outputs for all ``N x K`` views can be computed once.
    Test: each image yields ``views`` deterministic crops (``len = N * views``).
    Items are ``(image, label, sample_index, view_index)``.
    """

    def __init__(
        self,
        samples: ImageSamples,
        spec: ImageTransformSpec,
        train: bool,
        seed: int = 0,
        views: int = 1,
        cache_views: int = 0,
    ) -> None:
        self.samples, self.spec, self.train, self.seed = samples, spec, train, seed
        self.views = 1 if train else views
        self.cache_views = cache_views if train else 0
        self.num_samples = len(samples)
        self.transform = train_transform(spec) if train else None
        # JPEG decoding may drop detail the crop would throw away (random crops upscale up to 1/sqrt(scale)).
        self.decode_size = (
            int(spec.img_size / max(spec.crop_scale[0], 1e-3) ** 0.5) if train else spec.img_size
        )

    def __len__(self) -> int:
        return self.num_samples * self.views

    def sample_ids(self) -> list[str]:
        """Each image's stable key (file name or path below the dataset root), in index order."""
        return list(self.samples.keys)

    def fixed_view(self, index: int, view: int) -> Tensor:
        """Augmented view ``view`` of image ``index``: the same tensor on every call."""
        image = self.samples.load(index, self.decode_size)
        return seeded(self.transform, image, sample_seed(self.seed, index, view, 1))

    def __getitem__(self, item: tuple[int, int] | int) -> tuple[Tensor, int, int, int]:
        epoch, index = item if isinstance(item, tuple) else (0, item)
        if not self.train:
            sample, view = divmod(index, self.views)
            image = eval_view(self.samples.load(sample, self.decode_size), self.spec, view)
            return image, int(self.samples.labels[sample]), sample, view
        if self.cache_views:
            view = int(np.random.default_rng([self.seed, epoch, index, 2]).integers(self.cache_views))
            return self.fixed_view(index, view), int(self.samples.labels[index]), index, view
        image = self.samples.load(index, self.decode_size)
        return (
            seeded(self.transform, image, sample_seed(self.seed, epoch, index, 0)),
            int(self.samples.labels[index]),
            index,
            -1,
        )


class FixedViews(Dataset):
    """All ``N x K`` fixed training views of an :class:`ImageDataset`, in (sample, view) order:
    what the teacher sees when its logit cache is built."""

    def __init__(self, dataset: ImageDataset, views: int) -> None:
        self.dataset, self.views = dataset, views

    def __len__(self) -> int:
        return self.dataset.num_samples * self.views

    def __getitem__(self, item: int) -> tuple[Tensor, int, int, int]:
        index, view = divmod(item, self.views)
        return self.dataset.fixed_view(index, view), int(self.dataset.samples.labels[index]), index, view


def collate_images(items: list[tuple[Tensor, int, int, int]]) -> ImageBatch:
    images, labels, samples, views = zip(*items, strict=True)
    return ImageBatch(
        inputs=(torch.stack(images),),
        labels=torch.tensor(labels, dtype=torch.long),
        sample_index=torch.tensor(samples, dtype=torch.long),
        view_index=torch.tensor(views, dtype=torch.long),
    )
