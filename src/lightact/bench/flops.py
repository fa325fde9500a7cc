"""FLOPs with torch's own counter, and the multiply-add figure papers quote.

``torch.utils.flop_counter.FlopCounterMode`` intercepts the ATen operators of one forward pass and
counts the floating-point operations of the matrix products, convolutions and attention kernels:
a multiply-add is **two** FLOPs (``Linear(in, out)`` on ``n`` rows = ``2·n·in·out``). Element-wise
work (activations, normalisation, softmax, pooling, bias additions) is not counted; for the models
benchmarked here it is a few percent of the total.

fvcore, mmengine/mmcv ``get_flops`` and most papers (and torchvision's ``_ops`` metadata) count a
multiply-add as **one** "FLOP". ``macs = flops / 2`` is that figure; compare it with papers' "GFLOPs".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class FlopCount:
    flops: int  # torch convention: a multiply-add is 2
    by_operator: dict[str, int] = field(default_factory=dict)

    @property
    def macs(self) -> int:
        """Multiply-adds: what fvcore, mmengine and papers call "FLOPs"."""
        return self.flops // 2

    @property
    def gflops(self) -> float:
        return self.flops / 1e9

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9


def count_flops(fn: Callable[[], object]) -> FlopCount:
    """Count the FLOPs of ``fn()`` (e.g. ``lambda: model(*inputs)``), run once without gradients."""
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        fn()
    per_op = counter.get_flop_counts().get("Global", {})
    by_operator = {str(op).removeprefix("aten."): int(n) for op, n in per_op.items() if n}
    return FlopCount(flops=int(counter.get_total_flops()), by_operator=by_operator)


def count_model_flops(model: torch.nn.Module, inputs: tuple) -> FlopCount:
    return count_flops(lambda: model(*inputs))


def count_parameters(model: torch.nn.Module) -> int:
    """Distinct parameters (tied weights counted once)."""
    seen = {id(p): p.numel() for p in model.parameters()}
    return sum(seen.values())
