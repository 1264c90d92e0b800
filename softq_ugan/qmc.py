"""Randomized quasi-Monte Carlo noise: pure functions.

Means over a few points of a smooth function vary less when the points are spread evenly than when they are drawn
independently, while each point keeps its law, so an importance-sampling mean stays unbiased (Owen 1997; L'Ecuyer,
"Randomized quasi-Monte Carlo: an introduction for practitioners", 2018). The soft value's proposals use them
(``SoftQ(value_qmc=True)``, ``ConditionalMAF.rsample_and_log_prob(..., qmc=True)``).
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor


@lru_cache(maxsize=32)
def _sobol_digits(num: int, dim: int) -> Tensor:
    """The first ``num`` points of the unscrambled Sobol sequence in [0, 1)^dim, as 30-bit integers ``(num, dim)``."""
    points = torch.quasirandom.SobolEngine(dim, scramble=False).draw(num, dtype=torch.float64)
    return (points * 2.0**30).long()


def sobol_uniform(rows: int, num: int, dim: int, *, dtype: torch.dtype = torch.float32,
                  device: torch.device | str | None = None) -> Tensor:
    """Randomized quasi-Monte Carlo points ``(rows, num, dim)`` in (0, 1)^dim: for each row, the first ``num`` Sobol
    points with their own random digital shift (each 30-bit coordinate XOR a uniform random 30-bit integer, plus a
    uniform offset inside the last bit's cell).

    Each point is uniform on (0, 1)^dim, so a mean over a row's points is unbiased, as with i.i.d. points; within a
    row they are spread evenly (for ``num`` = 2^k, each coordinate puts exactly one point in each interval
    [j/num, (j+1)/num)), which lowers the variance of means of smooth functions (Owen 1997; L'Ecuyer 2018).
    """
    if rows < 1 or num < 1 or dim < 1:
        raise ValueError(f"sobol_uniform: rows, num and dim must be >= 1, got {rows}, {num}, {dim}")
    digits = _sobol_digits(num, dim).to(device)
    shift = torch.randint(0, 2**30, (rows, 1, dim), device=device)
    u = ((digits.unsqueeze(0) ^ shift).double() + torch.rand(rows, num, dim, dtype=torch.float64, device=device))
    return (u / 2.0**30).clamp(2.0**-40, 1 - 2.0**-40).to(dtype)


def sobol_normal(rows: int, num: int, dim: int, *, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None) -> Tensor:
    """:func:`sobol_uniform` points mapped through Φ⁻¹: each point ~ N(0, I), each row's points spread evenly."""
    u = sobol_uniform(rows, num, dim, dtype=torch.float64, device=device)
    return torch.special.ndtri(u).to(dtype)
