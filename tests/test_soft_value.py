"""Soft value estimators against closed forms (SPEC §5)."""

import math

import pytest
import torch

from softq_ugan.soft_value import soft_value, tanh_log_det, tanh_log_proposal, uniform_log_proposal


def test_tanh_log_det_matches_naive_and_is_stable():
    y = torch.linspace(-5, 5, 101, dtype=torch.float64).reshape(-1, 1)
    assert torch.allclose(tanh_log_det(y), torch.log(1 - torch.tanh(y) ** 2).sum(-1), atol=1e-10)
    big = torch.tensor([[30.0, -40.0]])
    assert torch.isfinite(tanh_log_det(big)).all()
    assert tanh_log_det(big).item() == pytest.approx(2 * (math.log(2) - 30) + 2 * (math.log(2) - 40), abs=1e-4)


def test_uniform_soft_value_is_exact_for_constant_q():
    q = torch.full((3, 7), 2.5)
    v, log_w = soft_value(q, uniform_log_proposal(2), temperature=0.5)
    # V = τ log ∫_{(-1,1)^2} exp(Q/τ) da = Q + τ·2·log 2
    assert torch.allclose(v, torch.full((3,), 2.5 + 0.5 * 2 * math.log(2)))
    assert log_w.shape == (3, 7)


def test_uniform_and_tanh_proposals_agree_with_quadrature():
    """1-D Q(a) = −4(a − 0.3)²: both importance-sampling estimates converge to τ log ∫ exp(Q/τ) da."""
    torch.manual_seed(0)
    tau = 0.5
    a = torch.linspace(-1, 1, 200001, dtype=torch.float64)
    exact = tau * math.log(torch.trapezoid(torch.exp(-4 * (a - 0.3) ** 2 / tau), a).item())
    M = 200_000
    a_u = torch.rand(1, M, dtype=torch.float64) * 2 - 1
    v_u, _ = soft_value(-4 * (a_u - 0.3) ** 2, uniform_log_proposal(1), tau)
    # proposal y ~ N(0.3, 0.5²) in pre-squash space, a = tanh(y)
    y = 0.3 + 0.5 * torch.randn(1, M, 1, dtype=torch.float64)
    log_nu = -0.5 * ((y - 0.3) / 0.5) ** 2 - math.log(0.5 * math.sqrt(2 * math.pi))
    a_b = torch.tanh(y)[..., 0]
    v_b, log_w = soft_value(-4 * (a_b - 0.3) ** 2, tanh_log_proposal(log_nu[..., 0], y), tau)
    assert v_u.item() == pytest.approx(exact, abs=5e-3)
    assert v_b.item() == pytest.approx(exact, abs=5e-3)


def test_sobol_points_are_uniform_and_each_row_is_stratified():
    from softq_ugan.qmc import sobol_normal, sobol_uniform

    torch.manual_seed(0)
    u = sobol_uniform(4000, 16, 3, dtype=torch.float64)
    assert u.shape == (4000, 16, 3) and (u > 0).all() and (u < 1).all()
    # each row: exactly one point per interval [j/16, (j+1)/16) in every coordinate
    cells = (u * 16).floor().long().sort(dim=1).values
    assert (cells == torch.arange(16).reshape(1, 16, 1)).all()
    # each point on its own is uniform: the first point of each row over 10 bins (χ² with 9 d.o.f., p ≈ 1e-4 at 33)
    counts = torch.bincount((u[:, 0, 0] * 10).floor().long(), minlength=10).double()
    assert ((counts - 400) ** 2 / 400).sum() < 33
    z = sobol_normal(4000, 4, 2)
    assert z.dtype == torch.float32 and abs(z.mean().item()) < 0.05 and abs(z.std().item() - 1) < 0.05
    with pytest.raises(ValueError, match="must be >= 1"):
        sobol_uniform(3, 0, 2)


def test_sobol_particles_keep_the_soft_values_mean_and_cut_its_spread():
    """1-D Q(a) = −4(a − 0.3)², τ = 0.5, M = 16 uniform particles: E[exp(V/τ)] (the mean importance weight) is
    the closed-form ∫ exp(Q/τ) da with i.i.d. and with Sobol particles alike; the Sobol estimate varies far less."""
    from softq_ugan.qmc import sobol_uniform

    torch.manual_seed(1)
    tau, R, M = 0.5, 4000, 16
    exact = math.sqrt(math.pi * tau / 4) / 2 * (math.erf(0.7 * math.sqrt(4 / tau)) + math.erf(1.3 * math.sqrt(4 / tau)))
    spreads = {}
    for name, u in (("mc", torch.rand(R, M, dtype=torch.float64)),
                    ("qmc", sobol_uniform(R, M, 1, dtype=torch.float64)[..., 0])):
        a = 2 * u - 1
        v, _ = soft_value(-4 * (a - 0.3) ** 2, uniform_log_proposal(1), tau)
        w = torch.exp(v / tau)  # mean weight of each estimate, unbiased for ∫ exp(Q/τ) da
        assert abs(w.mean().item() - exact) < 4 * w.std().item() / math.sqrt(R) + 1e-12, name
        spreads[name] = v.std().item()
    assert spreads["qmc"] < 0.3 * spreads["mc"], spreads


def test_forward_kl_on_its_own_particles_fits_a_flow_to_an_unnormalized_target():
    """A MAF trained only by forward_kl_proposal_loss on its own particles, weighted by an unnormalized 2-D Gaussian
    N((0.5, −0.3), diag(0.3², 0.6²)), takes its mean and scales, and its importance weights become nearly even."""
    from softq_ugan.flows import ConditionalMAF
    from softq_ugan.metrics import ess
    from softq_ugan.soft_value import forward_kl_proposal_loss

    torch.manual_seed(0)
    mean, std = torch.tensor([0.5, -0.3]), torch.tensor([0.3, 0.6])
    flow = ConditionalMAF(2, 0, num_blocks=2, hidden_features=32)
    opt = torch.optim.Adam(flow.parameters(), lr=3e-3)

    def log_weights(y, log_q):  # log target (unnormalized) − log q
        return -0.5 * (((y - mean) / std) ** 2).sum(-1) + 7.0 - log_q

    for _ in range(600):
        with torch.no_grad():
            y, log_q = flow.rsample_and_log_prob(256)
        loss = forward_kl_proposal_loss(log_weights(y, log_q).unsqueeze(0), flow.log_prob(y).unsqueeze(0))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        y, log_q = flow.rsample_and_log_prob(20_000)
    assert torch.allclose(y.mean(0), mean, atol=0.05) and torch.allclose(y.std(0), std, atol=0.05)
    assert ess(log_weights(y, log_q)).item() > 0.9
