"""Fixed sinusoidal position codes (Vaswani et al. 2017): any length, nothing learned."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def sinusoidal_code(positions: Tensor, dim: int) -> Tensor:
    """Code ``[N, 2 * (dim // 2)]`` of ``N`` positions (integer indices, as any dtype): the sines,
    then the cosines, of the positions at ``dim // 2`` frequencies from 1 down to 1/10000."""
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device) / half)
    angle = positions.float()[:, None] * freq[None]
    return torch.cat([angle.sin(), angle.cos()], dim=-1)
