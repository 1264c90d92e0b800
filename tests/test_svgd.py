"""Amortized SVGD (SQL's sampler): the direction against a direct formula, and sampling known targets."""

import math

import pytest
import torch

from softq_ugan.metrics import evaluate_samples
from softq_ugan.svgd import SVGD, SVGDConfig, rbf_kernel, svgd_direction
from softq_ugan.targets import make_target


def test_direction_matches_the_svgd_formula():
    torch.manual_seed(0)
    xf, xu, score = torch.randn(5, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    d2 = torch.cdist(xf, xu) ** 2
    h = d2.flatten().median() / math.log(5)
    expected = torch.zeros(4, 3, dtype=torch.float64)
    for i in range(4):
        for j in range(5):
            k = torch.exp(-((xf[j] - xu[i]) ** 2).sum() / h)
            expected[i] += k * score[j] - 2 * (xf[j] - xu[i]) / h * k  # k ∇log u + ∇_{y_j} k
    expected /= 5
    assert torch.allclose(svgd_direction(xf, score, xu), expected, atol=1e-12)
    kappa, _ = rbf_kernel(xf.expand(2, 5, 3), xu.expand(2, 4, 3))  # batched over contexts
    assert kappa.shape == (2, 5, 4)


def test_amortized_svgd_samples_banana():
    torch.manual_seed(0)
    target = make_target("banana")
    svgd = SVGD(SVGDConfig(features=2, num_fixed=64, num_updated=64, lr=1e-3))
    for _ in range(1500):
        stats = svgd.update(target.log_prob)
    assert set(stats) >= {"generator_loss", "direction_norm"}
    m = evaluate_samples(svgd.sample(2000), target, seed=1)
    assert m["mmd2"] <= 0.01, m


def test_amortized_svgd_with_context():
    torch.manual_seed(0)

    def log_prob(x, c):
        return -0.5 * ((x - c.unsqueeze(1)) / 0.5).pow(2).sum(-1)

    svgd = SVGD(SVGDConfig(features=2, context_features=2, num_fixed=16, num_updated=16, lr=1e-3))
    for _ in range(1000):
        svgd.update(log_prob, torch.randn(32, 2))
    c = torch.randn(6, 2)
    x = svgd.sample(400, c)
    assert torch.allclose(x.mean(1), c, atol=0.2)
    assert torch.allclose(x.std(1), torch.full((6, 2), 0.5), atol=0.15)
