"""Sample-quality metrics for images without downloads (SPEC §7-§8, FG §3.2).

A small LeNet-style classifier is trained deterministically on a dataset's training split and
cached (``$SOFTQ_UGAN_CACHE``, default ``~/.cache/softq_ugan``). From its softmax and its
penultimate features:

* :func:`inception_score` -- ``exp E_x KL(p(y|x) ‖ p(y))`` (Salimans et al. 2016),
* :func:`mode_score` -- ``exp(E_x KL(p(y|x) ‖ p*(y)) − KL(p*(y) ‖ p(y)))`` (FG §3.2),
* :func:`frechet_distance` -- "FD (LeNet features)": Fréchet distance of Gaussians fitted to the
  features (not comparable with published Inception FIDs),
* :func:`kernel_inception_distance` -- KID: unbiased MMD² with the cubic polynomial kernel.

:class:`ImageScorer` bundles them against the real test split.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from softq_ugan.data.images import ImageDataset, dequantize

__all__ = [
    "LeNet",
    "cache_dir",
    "train_classifier",
    "get_classifier",
    "inception_score",
    "mode_score",
    "frechet_distance",
    "kernel_inception_distance",
    "ImageScorer",
]

_CLASSIFIER_VERSION = 1
_EPOCHS = {"digits": 30, "mnist5k": 12, "fashion": 3}
_MAX_TRAIN = 20000  # classifier training images at most (fashion: a fixed subset)


class LeNet(nn.Module):
    """conv(16)-pool-conv(32)-pool-fc(features)-fc(classes); ``features`` are the metric space."""

    def __init__(self, shape: tuple[int, int], num_classes: int = 10, features: int = 64) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.conv = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        flat = 32 * (shape[0] // 4) * (shape[1] // 4)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(flat, features), nn.ReLU())
        self.head = nn.Linear(features, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features of flat images ``(N, H*W)`` in [0, 1]."""
        return self.fc(self.conv((x.reshape(-1, 1, *self.shape) - 0.5) / 0.5))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def cache_dir() -> Path:
    """``$SOFTQ_UGAN_CACHE`` or ``~/.cache/softq_ugan``."""
    return Path(os.environ.get("SOFTQ_UGAN_CACHE", Path.home() / ".cache" / "softq_ugan"))


def train_classifier(data: ImageDataset, epochs: int | None = None, seed: int = 0) -> tuple[LeNet, float]:
    """Deterministic training on dequantized training images; returns ``(net, test accuracy)``."""
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = LeNet(data.shape, data.num_classes)
    x, y = data.train[:_MAX_TRAIN], data.train_labels[:_MAX_TRAIN]
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    epochs = _EPOCHS.get(data.name, 10) if epochs is None else epochs
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        xq = dequantize(x, data.levels, generator=g).float()  # fresh noise each epoch
        for i in range(0, len(x), 64):
            b = perm[i : i + 64]
            loss = F.cross_entropy(net(xq[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = (net(data.dequantized("test")).argmax(1) == data.test_labels).double().mean().item()
    return net, acc


def get_classifier(data: ImageDataset, seed: int = 0) -> tuple[LeNet, float]:
    """The cached classifier of ``data`` (trained and saved on first use); ``(net, test accuracy)``."""
    path = cache_dir() / f"lenet_{data.name}_{len(data.train)}_s{seed}_v{_CLASSIFIER_VERSION}.pt"
    if path.exists():
        state = torch.load(path, weights_only=True)
        net = LeNet(data.shape, data.num_classes)
        net.load_state_dict(state["net"])
        net.eval()
        return net, float(state["accuracy"])
    net, acc = train_classifier(data, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save({"net": net.state_dict(), "accuracy": acc}, tmp)
    os.replace(tmp, path)
    return net, acc


def _kl(p: Tensor, q: Tensor) -> Tensor:
    return (p * (torch.log(p.clamp_min(1e-12)) - torch.log(q.clamp_min(1e-12)))).sum(-1)


def inception_score(probs: Tensor) -> float:
    """exp(E_x KL(p(y|x) ‖ p(y))) from classifier softmax ``(N, K)`` (FG §3.2)."""
    probs = probs.double()
    return math.exp(_kl(probs, probs.mean(0, keepdim=True)).mean().item())


def mode_score(probs: Tensor, label_prior: Tensor) -> float:
    """exp(E_x KL(p(y|x) ‖ p*(y)) − KL(p*(y) ‖ p(y))), p* the training label distribution (FG §3.2)."""
    probs, prior = probs.double(), label_prior.double()
    return math.exp(_kl(probs, prior[None]).mean().item() - _kl(prior, probs.mean(0)).item())


def frechet_distance(f1: Tensor, f2: Tensor) -> float:
    """|μ1−μ2|² + tr(Σ1 + Σ2 − 2(Σ1^½ Σ2 Σ1^½)^½) of features ``(N, k)`` (Heusel et al. 2017)."""
    f1, f2 = f1.double(), f2.double()
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = torch.cov(f1.T), torch.cov(f2.T)
    e, v = torch.linalg.eigh(s1)
    r1 = (v * e.clamp_min(0).sqrt()) @ v.T  # Σ1^½
    cross = torch.linalg.eigvalsh(r1 @ s2 @ r1).clamp_min(0).sqrt().sum()
    return float(((mu1 - mu2) ** 2).sum() + torch.trace(s1) + torch.trace(s2) - 2 * cross)


def kernel_inception_distance(f1: Tensor, f2: Tensor) -> float:
    """Unbiased MMD² with k(a,b) = (aᵀb/k + 1)³ (Bińkowski et al. 2018)."""
    f1, f2 = f1.double(), f2.double()
    k = f1.shape[1]
    kxx, kyy, kxy = (f1 @ f1.T / k + 1) ** 3, (f2 @ f2.T / k + 1) ** 3, (f1 @ f2.T / k + 1) ** 3
    n, m = len(f1), len(f2)
    return float((kxx.sum() - kxx.diag().sum()) / (n * (n - 1)) + (kyy.sum() - kyy.diag().sum()) / (m * (m - 1))
                 - 2 * kxy.mean())


class ImageScorer:
    """Inception-style score, MODE score, FD and KID (LeNet features) of samples vs. a real split.

    Args:
        data: the dataset (its cached classifier is loaded or trained).
        reference: real split the FD/KID compare against (default ``test``).
    """

    def __init__(self, data: ImageDataset, reference: str = "test") -> None:
        self.data = data
        self.net, self.accuracy = get_classifier(data)
        counts = torch.bincount(data.train_labels, minlength=data.num_classes).double()
        self.label_prior = counts / counts.sum()
        feats = self._run(data.dequantized(reference, seed=1), scale=False)[1]
        self.feature_scale = feats.pow(2).mean().sqrt().clamp_min(1e-12)  # features in units of the real RMS
        self.ref_features = feats / self.feature_scale

    @torch.no_grad()
    def _run(self, x: Tensor, scale: bool = True) -> tuple[Tensor, Tensor]:
        x = torch.as_tensor(x).float().reshape(-1, self.data.dim)
        probs, feats = [], []
        for i in range(0, len(x), 1000):
            f = self.net.features(x[i : i + 1000])
            feats.append(f)
            probs.append(F.softmax(self.net.head(f), -1))
        feats = torch.cat(feats)
        return torch.cat(probs), feats / self.feature_scale if scale else feats

    def score(self, x: Tensor) -> dict[str, float]:
        """``inception``, ``mode``, ``fd`` and ``kid`` of flat samples ``(N, H*W)`` in [0, 1]."""
        x = torch.as_tensor(x)
        if x.ndim != 2 or x.shape[1] != self.data.dim:
            raise ValueError(f"ImageScorer: expected samples of shape (N, {self.data.dim}), got {tuple(x.shape)}")
        if not torch.isfinite(x).all():
            raise FloatingPointError("ImageScorer: samples contain NaN/inf")
        probs, feats = self._run(x)
        return {
            "inception": inception_score(probs),
            "mode": mode_score(probs, self.label_prior),
            "fd": frechet_distance(feats, self.ref_features),
            "kid": kernel_inception_distance(feats, self.ref_features),
        }
