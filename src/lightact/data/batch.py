"""The batch every data module yields, whatever the modality."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class Batch:
    """What a model's ``forward(*inputs)`` takes, plus targets.

    ``labels`` are class ids (long, ``[B]``), soft targets (float, ``[B, C]``: mixup and cutmix in
    training) or regression targets (float, ``[B]`` or ``[B, K]``). ``sample_index`` maps each row to
    its dataset sample, so several test views of one sample can be averaged.
    """

    inputs: tuple[Tensor, ...]
    labels: Tensor
    sample_index: Tensor

    def __len__(self) -> int:
        return len(self.labels)
