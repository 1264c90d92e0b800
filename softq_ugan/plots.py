"""Density, sample and curve figures for the 2-D toy targets (matplotlib, Agg backend)."""

from __future__ import annotations

import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

__all__ = ["plot_samples", "plot_snapshots", "plot_curves"]

_GRID = 200  # density grid resolution per axis
_DPI = 110
_LOG_RANGE = 40.0  # mixtures: show log-density in [max - 40, max]


def _check_target(fn: str, target) -> None:
    if getattr(target, "dim", None) != 2:
        raise ValueError(f"{fn}: only 2-D targets can be plotted, got dim={getattr(target, 'dim', None)}")


def _points(fn: str, x, max_points: int) -> np.ndarray:
    """Finite rows of x (N, 2) as numpy, at most ``max_points`` (first rows)."""
    x = torch.as_tensor(x).detach()
    if x.ndim != 2 or x.shape[1] != 2:
        raise ValueError(f"{fn}: expected samples of shape (N, 2), got {tuple(x.shape)}")
    x = x[torch.isfinite(x).all(-1)][:max_points]
    return x.to(torch.float64).cpu().numpy()


def _density_grid(target):
    """(X, Y, Z) on a 200x200 grid over target.bounds; Z = u(x), or clipped log u for mixtures."""
    (a0, b0), (a1, b1) = target.bounds
    gx = torch.linspace(a0, b0, _GRID, dtype=torch.float64)
    gy = torch.linspace(a1, b1, _GRID, dtype=torch.float64)
    X, Y = torch.meshgrid(gx, gy, indexing="xy")
    with torch.no_grad():
        lp = target.log_prob(torch.stack([X, Y], dim=-1))
    lp = torch.nan_to_num(lp, nan=-math.inf)
    if getattr(target, "mode_std", None) is not None:
        # narrow mixtures: exp(log u) would be invisible between grid points
        top = float(lp.max())
        z = lp.clamp(min=top - _LOG_RANGE)
    else:
        z = torch.exp(lp - lp.max())  # u(x) up to a constant
    return X.numpy(), Y.numpy(), z.numpy()


def _draw(ax, target, grid, pts: np.ndarray, title: str | None, s: float) -> None:
    X, Y, Z = grid
    ax.contourf(X, Y, Z, levels=30, cmap="viridis")
    if pts.shape[0] > 0:
        ax.scatter(pts[:, 0], pts[:, 1], s=s, c="tab:red", alpha=0.6, linewidths=0)
    (a0, b0), (a1, b1) = target.bounds
    ax.set_xlim(a0, b0)
    ax.set_ylim(a1, b1)
    ax.set_aspect("equal", adjustable="box")
    if title:
        ax.set_title(title, fontsize=9)


def _save(fig, path) -> str:
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    try:
        fig.savefig(path, dpi=_DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def plot_samples(target, x, path, title: str | None = None, max_points: int = 2000) -> str:
    """Density of ``target`` over its bounds with samples x (N, 2) on top; saves a PNG."""
    _check_target("plot_samples", target)
    pts = _points("plot_samples", x, max_points)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    _draw(ax, target, _density_grid(target), pts, title or target.name, s=3.0)
    return _save(fig, path)


def plot_snapshots(target, snapshots, path, ncols: int = 5, max_points: int = 2000) -> str:
    """Grid of panels "step N", one per ``(step, x)`` in ``snapshots``; saves a PNG."""
    _check_target("plot_snapshots", target)
    if len(snapshots) == 0:
        raise ValueError("plot_snapshots: snapshots is empty")
    if ncols < 1:
        raise ValueError(f"plot_snapshots: ncols must be >= 1, got {ncols}")
    ncols = min(ncols, len(snapshots))
    nrows = math.ceil(len(snapshots) / ncols)
    grid = _density_grid(target)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.6 * nrows), squeeze=False)
    for ax in axes.flat[len(snapshots):]:
        ax.axis("off")
    for ax, (step, x) in zip(axes.flat, snapshots):
        _draw(ax, target, grid, _points("plot_snapshots", x, max_points), f"step {int(step)}", s=1.5)
        ax.tick_params(labelsize=6)
    fig.tight_layout()
    return _save(fig, path)


def plot_sample_grid(rows, path, max_points: int = 1000) -> str:
    """Panels in rows: ``rows`` is a list of rows, each a list of ``(target, x, title)``; saves a PNG."""
    rows = [r for r in rows if r]
    if not rows:
        raise ValueError("plot_sample_grid: nothing to plot")
    ncols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(2.6 * ncols, 2.6 * len(rows)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, row in enumerate(rows):
        grid = None
        for j, (target, x, title) in enumerate(row):
            _check_target("plot_sample_grid", target)
            grid = grid if grid is not None else _density_grid(target)
            axes[i, j].axis("on")
            _draw(axes[i, j], target, grid, _points("plot_sample_grid", x, max_points), title, s=1.5)
            axes[i, j].tick_params(labelsize=6)
    fig.tight_layout()
    return _save(fig, path)


def plot_curves(history: dict, path, keys=None) -> str:
    """One subplot per key of ``history`` (name -> [(step, value), ...]); saves a PNG.

    The y axis is logarithmic where all values are > 0 and span more than two decades.
    """
    keys = list(history) if keys is None else list(keys)
    missing = [k for k in keys if k not in history]
    if missing:
        raise ValueError(f"plot_curves: keys not in history: {missing}")
    if not keys:
        raise ValueError("plot_curves: nothing to plot")
    ncols = min(3, len(keys))
    nrows = math.ceil(len(keys) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.6 * nrows), squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.axis("off")
    for ax, k in zip(axes.flat, keys):
        pairs = [(float(s), float(v)) for s, v in history[k]]
        if pairs:
            steps, vals = map(np.asarray, zip(*pairs))
            ax.plot(steps, vals, lw=1.2)
            fin = vals[np.isfinite(vals)]
            if fin.size and (fin > 0).all() and fin.max() / fin.min() > 100.0:
                ax.set_yscale("log")
        ax.set_title(str(k), fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)
