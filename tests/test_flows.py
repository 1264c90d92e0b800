"""Contract tests for the conditional MAF: densities against closed forms, inversion, shapes."""

import math

import pytest
import torch

from softq_ugan.flows import ConditionalMAF


def grid_mass(log_prob, lim=25.0, n=801):
    """∫ exp(log_prob) over [-lim, lim]² by the trapezoid-free midpoint rule."""
    xs = torch.linspace(-lim, lim, n, dtype=torch.float64)
    h = (xs[1] - xs[0]).item()
    gx, gy = torch.meshgrid(xs, xs, indexing="ij")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], -1)
    with torch.no_grad():
        return log_prob(pts).exp().sum().item() * h * h


@pytest.mark.parametrize("context_features", [0, 3])
def test_density_integrates_to_one(context_features):
    torch.manual_seed(0)
    maf = ConditionalMAF(2, context_features, num_blocks=3, hidden_features=16).double()
    c = torch.randn(1, context_features, dtype=torch.float64) if context_features else None
    mass = grid_mass(lambda x: maf.log_prob(x, None if c is None else c.expand(len(x), -1)))
    assert mass == pytest.approx(1.0, abs=0.01)


def test_log_det_matches_autograd_jacobian():
    torch.manual_seed(1)
    d, c = 3, 2
    maf = ConditionalMAF(d, c, num_blocks=2, hidden_features=8).double()
    x = torch.randn(d, dtype=torch.float64)
    ctx = torch.randn(1, c, dtype=torch.float64)
    transform = maf.flow._transform
    z, logdet = transform(x[None], context=ctx)
    jac = torch.autograd.functional.jacobian(lambda v: transform(v[None], context=ctx)[0][0], x)
    assert logdet.item() == pytest.approx(torch.linalg.slogdet(jac).logabsdet.item(), abs=1e-8)
    # log ν(x|c) = log N(z) + log|det ∂z/∂x| (VA eq. 11)
    expected = -0.5 * (z**2).sum() - 0.5 * d * math.log(2 * math.pi) + logdet
    assert maf.log_prob(x[None], ctx).item() == pytest.approx(expected.item(), abs=1e-8)


def test_sampling_inverts_density_evaluation():
    torch.manual_seed(2)
    maf = ConditionalMAF(2, 4, num_blocks=3, hidden_features=16).double()
    ctx = torch.randn(5, 4, dtype=torch.float64)
    x, lp = maf.rsample_and_log_prob(7, ctx)
    assert x.shape == (5, 7, 2) and lp.shape == (5, 7)
    assert torch.allclose(lp, maf.log_prob(x, ctx), atol=1e-8)
    z, _ = maf.flow._transform(x.reshape(-1, 2), context=ctx.repeat_interleave(7, 0))
    x_back, _ = maf.flow._transform.inverse(z, context=ctx.repeat_interleave(7, 0))
    assert torch.allclose(x_back, x.reshape(-1, 2), atol=1e-8)
    assert maf(ctx).sample(3).shape == (5, 3, 2)
    assert maf(ctx).log_prob(x).shape == (5, 7)


@pytest.mark.parametrize("context_features", [0, 4])
def test_own_passes_match_nflows_transform(context_features):
    """ConditionalMAF computes its passes itself (no per-module dispatch, context layer once per context): they
    must give nflows' transform's values, for trained-looking (perturbed) weights and d = 3."""
    torch.manual_seed(4)
    maf = ConditionalMAF(3, context_features, num_blocks=3, hidden_features=16).double()
    with torch.no_grad():
        for p in maf.parameters():
            p.add_(0.3 * torch.randn_like(p))
    ctx = torch.randn(5, context_features, dtype=torch.float64) if context_features else None
    rows = None if ctx is None else ctx.repeat_interleave(7, 0)
    x = torch.randn(5, 7, 3, dtype=torch.float64)
    z_ref, ld_ref = maf.flow._transform(x.reshape(-1, 3), context=rows)
    assert torch.allclose(maf.log_prob(x, ctx), maf.flow.log_prob(x.reshape(-1, 3), context=rows).reshape(5, 7))
    z, ld = maf._forward(x.reshape(-1, 3), ctx, repeats=7)
    assert torch.allclose(z, z_ref) and torch.allclose(ld, ld_ref)
    x_ref, ild_ref = maf.flow._transform.inverse(z_ref, context=rows)
    x_back, ild = maf._inverse(z_ref, ctx, repeats=7)
    assert torch.allclose(x_back, x_ref) and torch.allclose(ild, ild_ref) and torch.allclose(x_back, x.reshape(-1, 3))


def test_no_grad_passes_reuse_weights_only_while_the_parameters_are_unchanged():
    """Without grad mode the masked weights are formed once per parameter version: a pass after an optimizer step
    (the trainers' FlatAdam, which writes a buffer the parameters are views of), a load_state_dict or a dtype change
    must see the new weights (nflows' transform is the reference). rsample,
    which skips the log-density's terms, draws rsample_and_log_prob's samples."""
    torch.manual_seed(5)
    maf = ConditionalMAF(2, 3, num_blocks=3, hidden_features=16)
    ctx, x = torch.randn(4, 3), torch.randn(4, 6, 2)

    def reference(m, x, ctx):
        return m.flow.log_prob(x.reshape(-1, 2), context=ctx.repeat_interleave(6, 0)).reshape(4, 6)

    from softq_ugan.nets import adam

    opt = adam(maf.parameters(), 0.05)  # FlatAdam: it writes its buffer and bumps the parameters' versions
    for _ in range(3):
        with torch.no_grad():
            before = maf.log_prob(x, ctx)
            assert torch.allclose(before, reference(maf, x, ctx), atol=1e-5)
            assert torch.equal(maf.log_prob(x, ctx), before)  # the cached weights: same values
        opt.zero_grad()
        (-maf.log_prob(x, ctx).mean()).backward()
        opt.step()  # in-place parameter updates: the next no-grad pass must form new weights
        with torch.no_grad():
            assert not torch.allclose(maf.log_prob(x, ctx), before)
    other = ConditionalMAF(2, 3, num_blocks=3, hidden_features=16)
    with torch.no_grad():
        maf.load_state_dict(other.state_dict())
        assert torch.allclose(maf.log_prob(x, ctx), reference(other, x, ctx), atol=1e-5)
        maf.double()
        assert torch.allclose(maf.log_prob(x.double(), ctx.double()), reference(maf, x.double(), ctx.double()))
    torch.manual_seed(6)
    y = maf.rsample(5, ctx.double())
    torch.manual_seed(6)
    y_ref, log_p = maf.rsample_and_log_prob(5, ctx.double())
    assert torch.equal(y, y_ref) and torch.allclose(maf.log_prob(y, ctx.double()), log_p)


def test_rsample_has_gradients_and_blocks_are_distinct():
    maf = ConditionalMAF(2, 0, num_blocks=4, hidden_features=8)
    made = [m for m in maf.flow._transform._transforms if hasattr(m, "autoregressive_net")]
    assert len(made) == 4
    assert len({id(p) for m in made for p in m.parameters()}) == sum(len(list(m.parameters())) for m in made)
    x = maf.rsample(16)
    x.pow(2).sum().backward()
    assert all(p.grad is not None for p in made[0].parameters())


def test_bad_shapes_raise_clear_errors():
    maf = ConditionalMAF(2, 3)
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        maf.log_prob(torch.randn(4, 3), torch.randn(4, 3))
    with pytest.raises(ValueError, match="context of shape"):
        maf.log_prob(torch.randn(4, 2))
    with pytest.raises(ValueError, match="batch"):
        maf.log_prob(torch.randn(4, 5, 2), torch.randn(3, 3))
    with pytest.raises(ValueError, match="no context"):
        ConditionalMAF(2).sample(3, torch.randn(2, 3))


def test_mle_fits_a_conditional_gaussian():
    """ν(x|c) learns x | c ~ N(A c, 0.5² I): its NLL approaches the closed-form entropy."""
    torch.manual_seed(3)
    maf = ConditionalMAF(2, 2, num_blocks=2, hidden_features=32)
    opt = torch.optim.Adam(maf.parameters(), lr=3e-3)
    A = torch.tensor([[1.0, -0.5], [0.3, 2.0]])
    for _ in range(400):
        c = torch.randn(256, 2)
        x = c @ A.T + 0.5 * torch.randn(256, 2)
        loss = -maf.log_prob(x, c).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    c = torch.randn(4000, 2)
    x = c @ A.T + 0.5 * torch.randn(4000, 2)
    entropy = 2 * (0.5 * math.log(2 * math.pi * math.e) + math.log(0.5))  # H[N(0, 0.25 I₂)]
    with torch.no_grad():
        nll = -maf.log_prob(x, c).mean().item()
        mean = maf.sample(500, c[:3]).mean(1)
    assert nll == pytest.approx(entropy, abs=0.1)
    assert torch.allclose(mean, c[:3] @ A.T, atol=0.15)


def test_sobol_noise_samples_have_the_flows_law_and_exact_log_density():
    """rsample_and_log_prob(qmc=True): the log-densities are the flow's at the samples, and a mean over the
    samples agrees with one over many i.i.d. samples (each Sobol sample is a draw from ν)."""
    torch.manual_seed(3)
    maf = ConditionalMAF(2, 4, num_blocks=2, hidden_features=16).double()
    ctx = torch.randn(3, 4, dtype=torch.float64)
    with torch.no_grad():
        x, lp = maf.rsample_and_log_prob(16, ctx.repeat_interleave(500, 0), qmc=True)
        assert torch.allclose(lp, maf.log_prob(x, ctx.repeat_interleave(500, 0)), atol=1e-8)
        ref = maf.sample(20_000, ctx)
    f = lambda s: torch.sin(s[..., 0]) + s[..., 1] ** 2  # noqa: E731
    got = f(x).reshape(3, 500 * 16).mean(1)
    want, sem = f(ref).mean(1), f(ref).std(1) / math.sqrt(20_000)
    assert (got - want).abs().lt(5 * sem + 0.02).all(), (got, want)
