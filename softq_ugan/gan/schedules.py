"""Annealing schedules for the variational-annealing weight ``lambda_t`` (VA eq. 9).

The regularized objective is ``V(mu, rho; D) - lambda_t E_rho[log mu]`` (VA eq. 9), i.e. the
generator targets ``u^(1 + lambda_t)``; ``lambda_t -> 0`` recovers the untempered target.
Schedules follow VA supplement I.1 and SPEC §4. Each is a pure function of
``(t, T, lambda0, ...)`` returning a float.

Every schedule's output but "geo" (which has its own floor ``beta_min > 0``) is clamped to ``>= LAMBDA_MIN = -0.99``: at ``lambda = -1`` the tempered
target ``u^0`` is flat and improper on ``R^d`` (SPEC §4), and below it the target is inverted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

__all__ = [
    "LAMBDA_MIN",
    "static",
    "linear",
    "exponential",
    "oscillatory",
    "oscillatory_linear",
    "geometric",
    "Schedule",
    "SCHEDULES",
    "make_schedule",
]

LAMBDA_MIN = -0.99
"""Lower clamp on every schedule: ``lambda > -1`` keeps the target ``u^(1+lambda)`` proper."""


def _check(t: float, T: float) -> None:
    if not T > 0:
        raise ValueError(f"total steps T must be > 0, got {T}")
    if t < 0:
        raise ValueError(f"step t must be >= 0, got {t}")


def _clamp(lam: float) -> float:
    # keep lambda > -1 so u^(1+lambda) stays proper (SPEC §4)
    return max(float(lam), LAMBDA_MIN)


def static(t: float, T: float, lambda0: float) -> float:
    """Constant ``lambda_t = lambda0`` (clamped to ``>= LAMBDA_MIN``)."""
    _check(t, T)
    return _clamp(lambda0)


def linear(t: float, T: float, lambda0: float) -> float:
    """Linear annealing ``sign(lambda0) max(|lambda0| (1 - t/T), 0)``.

    PMA for ``lambda0 > 0``, NMA for ``lambda0 < 0``; reaches exactly 0 at ``t = T`` and stays
    there. Clamped to ``>= LAMBDA_MIN``.
    """
    _check(t, T)
    # lambda_t = sign(lambda0) max{|lambda0|(1 - t/T), 0} (VA suppl. I.1)
    lam = math.copysign(max(abs(lambda0) * (1.0 - t / T), 0.0), lambda0)
    return _clamp(lam)


def exponential(t: float, T: float, lambda0: float, kappa: Optional[float] = None) -> float:
    """Exponential annealing ``lambda0 exp(-kappa t)`` for ``t < T`` and exactly 0 for ``t >= T``.

    ``kappa`` defaults to ``5 / T`` so that ``lambda_t`` has decayed to ``e^-5 lambda0`` by the
    end of training (VA suppl. I.1: "tau chosen so that at end of training lambda_t -> 0").
    Clamped to ``>= LAMBDA_MIN``.
    """
    _check(t, T)
    if t >= T:
        return 0.0
    k = 5.0 / T if kappa is None else float(kappa)
    if k < 0:
        raise ValueError(f"kappa must be >= 0, got {kappa}")
    # lambda_t = sign(lambda0)|lambda0| exp(-tau t) (VA suppl. I.1)
    return _clamp(lambda0 * math.exp(-k * t))


def oscillatory(t: float, T: float, lambda0: float, cycles: float = 5) -> float:
    """Oscillatory annealing (OA) ``lambda0 (1 - t/T)_+ cos(2 pi cycles t / T)``.

    Sinusoidal with ``cycles`` full periods over training (five in VA suppl. I.1), starting at
    ``lambda0`` with an amplitude decaying linearly to 0 at ``t = T`` (SPEC §4). Clamped to
    ``>= LAMBDA_MIN``.
    """
    _check(t, T)
    if cycles <= 0:
        raise ValueError(f"cycles must be > 0, got {cycles}")
    # lambda_t = lambda0 (1 - t/T)_+ cos(2 pi 5 t / T) (SPEC §4, VA suppl. I.1 "five cycles")
    lam = lambda0 * max(1.0 - t / T, 0.0) * math.cos(2.0 * math.pi * cycles * t / T)
    return _clamp(lam)


def oscillatory_linear(t: float, T: float, lambda0: float, cycles: float = 5) -> float:
    """Oscillatory annealing with linear ramps (``oa-linear``): a triangle wave in place of the cosine.

    ``lambda0 (1 - t/T)_+ tri(cycles t / T)`` where ``tri`` ramps linearly from +1 to -1 and back
    once per period (LGAN's alternating linear ramp); same extrema and zeros as "oa", so the two
    differ only in how long lambda dwells near its peaks (VA suppl. I.1). Clamped to ``>= LAMBDA_MIN``.
    """
    _check(t, T)
    if cycles <= 0:
        raise ValueError(f"cycles must be > 0, got {cycles}")
    phase = (cycles * t / T) % 1.0
    # triangle wave: +1 at phase 0, -1 at phase 1/2, linear in between (continuous OA, VA suppl. I.1)
    tri = 1.0 - 4.0 * phase if phase <= 0.5 else 4.0 * phase - 3.0
    return _clamp(lambda0 * max(1.0 - t / T, 0.0) * tri)


def geometric(
    t: float, T: float, lambda0: float, beta_min: float = 1e-3, hold: float = 0.25, end: float = 0.75
) -> float:
    """Geometric tempering: ``beta_t = 1 + lambda_t`` held at ``beta_0``, then log-linear up to 1.

    ``beta_0 = max(1 + lambda0, beta_min)``; beta is held for ``t < hold T``, rises log-linearly
    until ``end T`` and is 1 (``lambda = 0``) from there on. Spends long at the tiny beta that makes
    barriers between far-apart narrow modes crossable (SPEC §4); beta_min > 0 keeps the target
    proper, so this schedule may go below ``LAMBDA_MIN``.
    """
    _check(t, T)
    if not 0 < beta_min <= 1 or not 0 <= hold < end <= 1:
        raise ValueError(f"need 0 < beta_min <= 1 and 0 <= hold < end <= 1, got {beta_min}, {hold}, {end}")
    beta0 = min(max(1.0 + lambda0, beta_min), 1.0)
    frac = min(max((t / T - hold) / (end - hold), 0.0), 1.0)
    # log beta_t linear from log beta_0 to 0 (geometric tempering)
    return beta0 ** (1.0 - frac) - 1.0


def _none(t: float, T: float, lambda0: float) -> float:
    _check(t, T)
    return 0.0


def _pma(t: float, T: float, lambda0: float) -> float:
    return linear(t, T, abs(lambda0))


def _nma(t: float, T: float, lambda0: float) -> float:
    return linear(t, T, -abs(lambda0))


# name -> (function, allowed keyword arguments)
_REGISTRY: dict[str, tuple[Callable[..., float], frozenset[str]]] = {
    "none": (_none, frozenset()),
    "static": (static, frozenset()),
    "pma": (_pma, frozenset()),
    "nma": (_nma, frozenset()),
    "exp": (exponential, frozenset({"kappa"})),
    "oa": (oscillatory, frozenset({"cycles"})),
    "oa-linear": (oscillatory_linear, frozenset({"cycles"})),
    "geo": (geometric, frozenset({"beta_min", "hold", "end"})),
}

SCHEDULES: tuple[str, ...] = tuple(sorted(_REGISTRY))
"""Valid schedule names for ``make_schedule``."""


@dataclass(frozen=True)
class Schedule:
    """A picklable ``t -> lambda_t`` callable built by ``make_schedule``.

    Attributes:
        name: one of ``SCHEDULES``.
        lambda0: initial weight (its sign is forced to + for "pma" and - for "nma").
        total_steps: ``T``, the step at which the decaying schedules reach 0.
        kwargs: sorted ``(key, value)`` pairs of extra schedule arguments ("exp": ``kappa``; "oa": ``cycles``).
    """

    name: str
    lambda0: float
    total_steps: int
    kwargs: tuple[tuple[str, Any], ...] = ()

    def __call__(self, t: int) -> float:
        """Return ``lambda_t`` at step ``t >= 0``."""
        fn, _ = _REGISTRY[self.name]
        return fn(t, self.total_steps, self.lambda0, **dict(self.kwargs))


def make_schedule(name: str, lambda0: float, total_steps: int, **kwargs: Any) -> Schedule:
    """Build a picklable schedule ``t -> lambda_t`` by name.

    Names: "none" (always 0), "static", "pma" (linear from ``+|lambda0|``), "nma" (linear from
    ``-|lambda0|``), "exp" (``kappa=None``), "oa" and "oa-linear" (``cycles=5``), "geo" (``beta_min=1e-3``,
    ``hold=0.25``, ``end=0.75``).

    Raises:
        ValueError: unknown name (lists the valid ones), ``total_steps <= 0``, or an unexpected
            keyword argument.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown schedule {name!r}; choose one of: {', '.join(SCHEDULES)}")
    if not total_steps > 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")
    allowed = _REGISTRY[name][1]
    extra = set(kwargs) - allowed
    if extra:
        raise ValueError(
            f"schedule {name!r} got unexpected arguments {sorted(extra)}; accepts: {sorted(allowed) or 'none'}"
        )
    sched = Schedule(name=name, lambda0=float(lambda0), total_steps=total_steps, kwargs=tuple(sorted(kwargs.items())))
    sched(0)  # validate kwargs values (e.g. cycles > 0) once, up front
    return sched
