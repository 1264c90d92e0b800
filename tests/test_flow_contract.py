"""One contract over every flow (MAF, NICE, RealNVP) in float64: shapes, invertibility, log|det J|
against slogdet of the autograd Jacobian, and densities integrating to 1 in 2-D."""

import math

import pytest
import torch

from softq_ugan.flows import NICE, ConditionalMAF, RealNVP


def _randomize(flow, std=0.3, seed=0):
    """Couplings start at the identity; random parameters make the contract non-trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * std)
    return flow


class Adapter:
    """Uniform view: ``to_latent(x) -> (z, log|det ∂z/∂x|)``, ``from_latent(z) -> x``, ``log_prob``, ``rsample_and_log_prob``."""

    def __init__(self, name, d):
        if name == "maf":
            self.flow = ConditionalMAF(d, 0, num_blocks=3, hidden_features=8).double()
            t = self.flow.flow._transform
            self.to_latent = lambda x: t(x)
            self.from_latent = lambda z: t.inverse(z)[0]
        else:
            cls = {"nice": NICE, "realnvp": RealNVP}[name]
            self.flow = _randomize(cls(d, num_layers=4, hidden=(8, 8)).double())
            self.to_latent = self.flow.to_latent
            self.from_latent = self.flow
        self.log_prob = self.flow.log_prob
        self.rsample_and_log_prob = self.flow.rsample_and_log_prob


FLOW_NAMES = ["maf", "nice", "realnvp"]


@pytest.mark.parametrize("name", FLOW_NAMES)
def test_shapes_and_invertibility(name):
    torch.manual_seed(0)
    f = Adapter(name, 5)
    x, lp = f.rsample_and_log_prob(7)
    assert x.shape == (7, 5) and lp.shape == (7,) and x.dtype == torch.float64
    assert torch.allclose(lp, f.log_prob(x), atol=1e-8)  # sampling density = evaluated density
    z, _ = f.to_latent(x)
    assert torch.allclose(f.from_latent(z), x, atol=1e-8)
    lp.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in f.flow.parameters())


@pytest.mark.parametrize("name", FLOW_NAMES)
def test_logdet_matches_autograd_jacobian(name):
    torch.manual_seed(1)
    f = Adapter(name, 4)
    x = torch.randn(3, 4, dtype=torch.float64)
    _, logdet = f.to_latent(x)
    for i in range(3):
        jac = torch.autograd.functional.jacobian(lambda v: f.to_latent(v[None])[0][0], x[i])
        assert logdet[i].item() == pytest.approx(torch.linalg.slogdet(jac).logabsdet.item(), abs=1e-8)


@pytest.mark.parametrize("name", FLOW_NAMES)
def test_density_integrates_to_one_in_2d(name):
    torch.manual_seed(2)
    f = Adapter(name, 2)
    xs = torch.linspace(-25, 25, 801, dtype=torch.float64)
    h = (xs[1] - xs[0]).item()
    gx, gy = torch.meshgrid(xs, xs, indexing="ij")
    with torch.no_grad():
        mass = f.log_prob(torch.stack([gx.reshape(-1), gy.reshape(-1)], -1)).exp().sum().item() * h * h
    assert mass == pytest.approx(1.0, abs=0.01)


def test_priors_are_the_papers():
    nice, nvp = NICE(3, hidden=(4,)).double(), RealNVP(3, hidden=(4,)).double()
    z = torch.tensor([[0.3, -1.2, 2.0]], dtype=torch.float64)
    logistic = sum(-abs(v) - 2 * math.log1p(math.exp(-abs(v))) for v in z[0].tolist())
    assert nice.prior_log_prob(z).item() == pytest.approx(logistic, abs=1e-12)
    gauss = -0.5 * (z**2).sum().item() - 1.5 * math.log(2 * math.pi)
    assert nvp.prior_log_prob(z).item() == pytest.approx(gauss, abs=1e-12)
    with pytest.raises(ValueError, match="expected shape"):
        nice.log_prob(torch.zeros(2, 4, dtype=torch.float64))


@pytest.mark.parametrize("name,std", [("nice", math.pi / math.sqrt(3)), ("realnvp", 1.0)])
def test_data_dependent_init_standardizes_to_the_prior_scale(name, std):
    torch.manual_seed(3)
    flow = {"nice": NICE, "realnvp": RealNVP}[name](4, hidden=(8,)).double()
    x = torch.rand(500, 4, dtype=torch.float64) * torch.tensor([0.05, 1.0, 3.0, 0.2], dtype=torch.float64) + 2.0
    flow.initialize_from_data(x)
    z, _ = flow.to_latent(x)
    assert torch.allclose(z.std(0), torch.full((4,), std, dtype=torch.float64), rtol=1e-6)
    if name == "realnvp":
        assert torch.allclose(z.mean(0), torch.zeros(4, dtype=torch.float64), atol=1e-8)
