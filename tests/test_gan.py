"""Tests for softq_ugan.gan: paired losses, lambda_t schedules, DAE score and surrogate."""

import math
import pickle

import pytest
import torch
import torch.nn.functional as F

from softq_ugan.gan import (
    DAE,
    GAN_LOSSES,
    LAMBDA_MIN,
    SCHEDULES,
    DAEScore,
    DAEScoreConfig,
    dae_loss,
    dae_score,
    get_gan_loss,
    gradient_penalty,
    jsd_generator_loss,
    linear,
    logistic_critic_loss,
    make_schedule,
    rkl_generator_loss,
    score_surrogate,
    wgan_critic_loss,
    wgan_generator_loss,
)

# ----------------------------------------------------------------------------- losses


def test_logistic_critic_loss_known_values():
    zero = torch.zeros(7)
    assert logistic_critic_loss(zero, zero).item() == pytest.approx(2 * math.log(2), abs=1e-6)
    confident = logistic_critic_loss(torch.full((5,), 20.0), torch.full((5,), -20.0))
    assert confident.item() == pytest.approx(0.0, abs=1e-8)
    wrong = logistic_critic_loss(torch.full((5,), -20.0), torch.full((5,), 20.0))
    assert wrong.item() == pytest.approx(40.0, rel=1e-6)


def test_logistic_critic_exact_log_ratio_beats_perturbed():
    torch.manual_seed(0)
    xp, xq = torch.randn(20000), torch.randn(20000) + 1.0

    def log_ratio(x):  # log N(x;0,1)/N(x;1,1)
        return 0.5 - x

    best = logistic_critic_loss(log_ratio(xp), log_ratio(xq))
    for da, db in [(0.3, 0.0), (-0.3, 0.0), (0.0, 0.3), (0.0, -0.3)]:
        other = logistic_critic_loss((1 + da) * log_ratio(xp) + db, (1 + da) * log_ratio(xq) + db)
        assert best < other


def test_logistic_critic_learns_log_density_ratio():
    torch.manual_seed(0)
    xp, xq = torch.randn(4096, 1), torch.randn(4096, 1) + 1.0
    critic = torch.nn.Linear(1, 1)
    opt = torch.optim.Adam(critic.parameters(), lr=0.05)
    for _ in range(300):
        loss = logistic_critic_loss(critic(xp), critic(xq))
        opt.zero_grad()
        loss.backward()
        opt.step()
    pts = torch.tensor([[-1.0], [0.0], [0.5], [1.0], [2.0]])
    with torch.no_grad():
        learned = critic(pts).squeeze(-1)
    exact = 0.5 - pts.squeeze(-1)  # log p/q for p = N(0,1), q = N(1,1)
    assert torch.all((learned - exact).abs() < 0.15), (learned, exact)


def test_generator_losses_known_values():
    z = torch.zeros(4)
    assert jsd_generator_loss(z).item() == pytest.approx(math.log(2), abs=1e-6)
    assert jsd_generator_loss(torch.full((3,), 20.0)).item() == pytest.approx(0.0, abs=1e-8)
    logits = torch.tensor([1.0, -3.0, 0.5])
    assert jsd_generator_loss(logits).item() == pytest.approx(F.softplus(-logits).mean().item(), abs=1e-7)
    assert rkl_generator_loss(logits).item() == pytest.approx(0.5, abs=1e-6)
    assert rkl_generator_loss(z).item() == 0.0


def test_wgan_losses():
    real = torch.tensor([1.0, 3.0])
    fake = torch.tensor([-1.0, 0.0, 1.0])
    assert wgan_critic_loss(real, fake).item() == pytest.approx(0.0 - 2.0)
    assert wgan_generator_loss(fake).item() == pytest.approx(0.0)
    assert wgan_generator_loss(real).item() == pytest.approx(-2.0)


def test_gradient_penalty_linear_critic_vectors():
    torch.manual_seed(0)
    real, fake = torch.randn(16, 3), torch.randn(16, 3)
    w_unit = torch.tensor([0.6, 0.0, 0.8])
    assert gradient_penalty(lambda x: x @ w_unit, real, fake).item() == pytest.approx(0.0, abs=1e-5)

    w = torch.tensor([1.0, 2.0, -2.0], requires_grad=True)  # ||w|| = 3
    gp = gradient_penalty(lambda x: x @ w, real, fake, weight=10.0)
    assert gp.item() == pytest.approx(10.0 * (3.0 - 1.0) ** 2, abs=1e-5)
    # create_graph=True: the penalty is differentiable w.r.t. the critic's parameters
    (g,) = torch.autograd.grad(gp, w)
    expected = 10.0 * 2 * (3.0 - 1.0) * w.detach() / 3.0
    assert torch.allclose(g, expected, atol=1e-4)


def test_gradient_penalty_images_and_context():
    torch.manual_seed(0)
    real, fake = torch.randn(8, 1, 4, 4), torch.randn(8, 1, 4, 4)
    w = torch.randn(1, 4, 4)
    norm = w.norm().item()

    def critic(x):
        return (x * w).flatten(1).sum(1)

    gp = gradient_penalty(critic, real, fake, weight=2.0)
    assert gp.item() == pytest.approx(2.0 * (norm - 1.0) ** 2, abs=1e-5)

    ctx = torch.randn(8, 5)
    gp_ctx = gradient_penalty(lambda x, c: critic(x) + c.sum(-1), real, fake, context=ctx, weight=2.0)
    assert gp_ctx.item() == pytest.approx(2.0 * (norm - 1.0) ** 2, abs=1e-5)

    with pytest.raises(ValueError, match="same shape"):
        gradient_penalty(critic, real, fake[:4])


def test_gan_loss_registry():
    assert set(GAN_LOSSES) == {"jsd", "rkl", "wgan-gp"}
    assert get_gan_loss("jsd").critic_loss is logistic_critic_loss
    assert get_gan_loss("rkl").critic_loss is logistic_critic_loss
    assert get_gan_loss("rkl").generator_loss is rkl_generator_loss
    assert get_gan_loss("wgan-gp").needs_gradient_penalty
    assert not get_gan_loss("jsd").needs_gradient_penalty
    with pytest.raises(ValueError, match=r"unknown GAN loss 'kl'; choose one of: jsd, rkl, wgan-gp"):
        get_gan_loss("kl")


# ----------------------------------------------------------------------------- schedules

T = 1000
DECAYING = ["pma", "nma", "exp", "oa", "geo"]


@pytest.mark.parametrize("name", DECAYING)
def test_decaying_schedules_reach_zero_at_T(name):
    for lam0 in (0.5, -0.5, 3.0):
        s = make_schedule(name, lam0, T)
        for t in (T, T + 1, 2 * T):
            assert s(t) == 0.0, (name, lam0, t)


def test_schedule_start_values():
    assert make_schedule("pma", 0.5, T)(0) == pytest.approx(0.5)
    assert make_schedule("pma", -0.5, T)(0) == pytest.approx(0.5)
    assert make_schedule("nma", 0.5, T)(0) == pytest.approx(-0.5)
    assert make_schedule("nma", 3.0, T)(0) == pytest.approx(-0.99)  # clamped
    assert make_schedule("nma", 0.99, T)(0) == pytest.approx(-0.99)
    assert make_schedule("exp", 2.0, T)(0) == pytest.approx(2.0)
    assert make_schedule("exp", -0.3, T)(0) == pytest.approx(-0.3)
    assert make_schedule("oa", 1.5, T)(0) == pytest.approx(1.5)
    assert make_schedule("static", 0.7, T)(123) == pytest.approx(0.7)
    assert make_schedule("none", 0.7, T)(0) == 0.0
    assert make_schedule("pma", 1.0, T)(T // 2) == pytest.approx(0.5)
    assert make_schedule("exp", 1.0, T)(T - 1) == pytest.approx(math.exp(-5 * (T - 1) / T))
    assert make_schedule("exp", 1.0, T, kappa=0.01)(100) == pytest.approx(math.exp(-1.0))


def test_oscillatory_sign_changes_and_envelope():
    lam0 = 2.0
    s = make_schedule("oa", lam0, T)
    vals = [s(t) for t in range(T)]
    nonzero = [v for v in vals if v != 0.0]
    changes = sum(1 for a, b in zip(nonzero, nonzero[1:]) if (a > 0) != (b > 0))
    assert changes == 10
    for t, v in enumerate(vals):
        assert abs(v) <= linear(t, T, lam0) + 1e-12


def test_schedules_clamped_below():
    for name in SCHEDULES:
        s = make_schedule(name, -5.0, T)
        floor = -1 + 1e-3 if name == "geo" else LAMBDA_MIN  # geo's own floor: beta_min = 1e-3 > 0
        assert min(s(t) for t in range(0, T + 10, 7)) >= floor - 1e-12


def test_geometric_tempering_holds_then_rises_log_linearly():
    s = make_schedule("geo", -1.0, T, beta_min=1e-4)
    assert s(0) == pytest.approx(1e-4 - 1) and s(T // 4 - 1) == pytest.approx(1e-4 - 1)
    assert s(T // 2) + 1 == pytest.approx(1e-2)  # halfway in log beta between 1e-4 and 1
    betas = [s(t) + 1 for t in range(T)]
    assert all(b1 >= b0 for b0, b1 in zip(betas, betas[1:]))
    assert s(3 * T // 4) == 0.0


def test_schedules_pickle():
    for name in SCHEDULES:
        kw = {"cycles": 3} if name == "oa" else {}
        s = make_schedule(name, 0.8, 500, **kw)
        s2 = pickle.loads(pickle.dumps(s))
        assert s2 == s
        assert [s2(t) for t in range(0, 600, 13)] == [s(t) for t in range(0, 600, 13)]


def test_schedule_bad_input():
    with pytest.raises(ValueError, match=r"unknown schedule 'cosine'; choose one of: exp, geo, nma, none, oa, oa-linear, pma, static"):
        make_schedule("cosine", 1.0, T)
    with pytest.raises(ValueError, match="total_steps"):
        make_schedule("pma", 1.0, 0)
    with pytest.raises(ValueError, match="unexpected"):
        make_schedule("pma", 1.0, T, kappa=0.1)


# ----------------------------------------------------------------------------- DAE score


def test_dae_starts_as_identity_and_loss_shapes():
    dae = DAE(3, hidden_features=16)
    x = torch.randn(2, 5, 3)
    assert torch.equal(dae(x), x)
    assert torch.equal(dae_score(dae, x, 0.1), torch.zeros_like(x))
    noise = torch.randn_like(x)
    # identity phi: ||x - (x + sigma xi)||^2 = sigma^2 ||xi||^2
    expected = (0.01 * noise.pow(2).sum(-1)).mean()
    assert dae_loss(dae, x, 0.1, noise=noise).item() == pytest.approx(expected.item(), rel=1e-5)


def test_dae_score_matches_gaussian_score():
    torch.manual_seed(0)
    m, s, sigma = torch.tensor([1.0, -1.0]), 0.7, 0.1
    est = DAEScore(DAEScoreConfig(features=2, sigma=sigma, hidden_features=64, lr=3e-3))
    for i in range(600):
        if i == 300:  # lower the step size to average out the noisy eq. 10 regression target
            for g in est.optimizer.param_groups:
                g["lr"] = 3e-4
        out = est.update(m + s * torch.randn(1024, 2))
    assert set(out) == {"dae_loss"} and math.isfinite(out["dae_loss"])
    x = m + s * torch.randn(2000, 2)
    score = est.score(x)
    assert not score.requires_grad
    smoothed = -(x - m) / (s**2 + sigma**2)  # score of N(m, s^2) * N(0, sigma^2)
    cos = F.cosine_similarity(score, smoothed, dim=-1).mean().item()
    rel = ((score - smoothed).norm() / smoothed.norm()).item()
    assert cos > 0.95 and rel < 0.3, (cos, rel)


def test_score_surrogate_gradient_is_chain_rule_and_stops_at_score():
    torch.manual_seed(0)
    z = torch.randn(6, 3)
    theta = torch.randn(2, 3, requires_grad=True)
    x = z @ theta.T  # tiny linear generator G(z; theta), x in R^2
    src = torch.randn(6, 2, requires_grad=True)
    score = -x + 2.0 * src  # depends on theta and on src: neither may receive gradient via S
    r = score_surrogate(x, score)
    assert r.shape == (6,)
    r.sum().backward()
    # d/dtheta sum_n x_n^T S_n = sum_n S_n z_n^T = (dG/dtheta)^T S
    expected = score.detach().T @ z
    assert torch.allclose(theta.grad, expected, atol=1e-6)
    assert src.grad is None
    with pytest.raises(ValueError, match="shape"):
        score_surrogate(x, score[:, :1])


def test_config_validation():
    with pytest.raises(ValueError, match="sigma"):
        DAEScoreConfig(features=2, sigma=0.0)
    with pytest.raises(ValueError, match="sigma"):
        dae_loss(DAE(2), torch.zeros(3, 2), sigma=-1.0)


def test_adam_helper_is_fused_and_takes_the_adam_step():
    """nets.adam (every trainer's optimizer): the fused kernel on CPU, and the update of torch's plain Adam."""
    from softq_ugan.nets import adam

    torch.manual_seed(0)
    a, b = torch.nn.Linear(5, 3), torch.nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    start = a.weight.detach().clone()
    fast, plain = adam(a.parameters(), 1e-2), torch.optim.Adam(b.parameters(), lr=1e-2)
    assert fast.defaults["fused"]
    x = torch.randn(16, 5)
    for opt, net in ((fast, a), (plain, b)):
        for step in range(5):
            opt.zero_grad()
            net(x).pow(2).sum().backward()
            if step == 0 and net is a:
                g = a.weight.grad.clone()
            opt.step()
            if step == 0 and net is a:  # Adam's first step: −lr · g / (|g| + eps), about lr per coordinate
                assert torch.allclose(a.weight - start, -1e-2 * g / (g.abs() + 1e-8), atol=1e-6)
    assert torch.allclose(a.weight, b.weight, atol=1e-6) and torch.allclose(a.bias, b.bias, atol=1e-6)


def test_flat_adam_takes_torch_adams_steps_and_keeps_its_checkpoint_format():
    """nets.FlatAdam (what nets.adam builds): every parameter a view of one buffer, one fused kernel per step. It must
    give torch's fused Adam's parameters through gradients set to None, a joint step with an ascending group and a
    clip, and a parameter storage replaced mid-run (.double().float()); its state dict is torch Adam's, both ways."""
    import copy

    from softq_ugan.nets import MLP, FlatAdam, adam, joint_step

    torch.manual_seed(0)
    a = MLP(5, 3, (16, 16))
    b = copy.deepcopy(a)
    fa, tb = adam(a.parameters(), 1e-2), torch.optim.Adam(b.parameters(), lr=1e-2, fused=True)
    assert isinstance(fa, FlatAdam) and len(fa.param_groups[0]["params"]) == 1
    assert a[0].weight.untyped_storage().data_ptr() == a[2].bias.untyped_storage().data_ptr()  # one buffer
    for t in range(30):
        x = torch.randn(8, 5)
        for net, opt in ((a, fa), (b, tb)):
            if t == 10:
                net.zero_grad()  # gradients to None: FlatAdam reads the new ones back into its buffer
            opt.zero_grad()
            loss = net(x).pow(2).mean()
            if t % 3 == 0:  # nets.joint_step: backward into the parameters, clip to norm 0.5, step
                joint_step(loss, [(opt, list(net.parameters()), 1.0)], 0.5)
            else:
                loss.backward()
                opt.step()
        if t == 15:
            a.double().float()  # new storage for every parameter: the next call re-flattens, moments kept
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6, rtol=0)
    calls = []
    fa.register_step_post_hook(lambda opt, args, kwargs: calls.append(1))  # torch's step hooks still run
    version = a[0].weight._version
    fa.step()  # writes the buffer; the parameters' version counters move as for an in-place update
    tb.step()
    assert a[0].weight._version > version and calls == [1]
    sa, sb = fa.state_dict(), tb.state_dict()
    assert sa["param_groups"][0]["params"] == sb["param_groups"][0]["params"] == list(range(6))
    for i in sb["state"]:
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.allclose(sa["state"][i][key], sb["state"][i][key], atol=1e-6, rtol=0)
    c, d = copy.deepcopy(b), copy.deepcopy(b)
    fc, td = adam(c.parameters(), 1e-2), torch.optim.Adam(d.parameters(), lr=1e-2, fused=True)
    fc.load_state_dict(sb)  # torch's checkpoint into FlatAdam
    td.load_state_dict(sa)  # and FlatAdam's into torch's
    for _ in range(5):
        x = torch.randn(8, 5)
        for net, opt in ((b, tb), (c, fc), (d, td)):
            opt.zero_grad()
            net(x).pow(2).mean().backward()
            opt.step()
    for p, q, r in zip(b.parameters(), c.parameters(), d.parameters()):
        assert torch.allclose(p, q, atol=1e-6, rtol=0) and torch.allclose(p, r, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="parameters per group"):
        fc.load_state_dict(torch.optim.Adam(torch.nn.Linear(2, 2).parameters()).state_dict())
    mixed = [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))]
    assert not isinstance(adam(mixed, 1e-3), FlatAdam)  # mixed dtypes: torch's own Adam
