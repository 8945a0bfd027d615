"""The maths of DADC's TRPO and NAF back ends (concord.learners.dadc_backends): conjugate gradient solves an SPD
system, a TRPO step satisfies the KL constraint and improves the surrogate, NAF's Q is maximised at μ where it
equals V, and NAF's Q-learning finds the maximiser of a one-step (γ = 0) quadratic reward."""
from __future__ import annotations

import torch

from concord.learners.dadc import DADCLearner
from concord.learners.dadc_backends.trpo import conjugate_gradient
from tests.conftest import build_parts


def _learner(alg: str, env: str, *updates: str) -> DADCLearner:
    args, runner, mac = build_parts(alg, env, *updates)
    return DADCLearner(mac, runner.env_info, args, torch.device("cpu"))


def test_conjugate_gradient_solves_a_known_spd_system():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(6, 6, generator=g, dtype=torch.float64)
    a = m @ m.T + 0.1 * torch.eye(6, dtype=torch.float64)  # SPD
    b = torch.randn(6, generator=g, dtype=torch.float64)
    x = conjugate_gradient(lambda v: a @ v, b, iters=6, tol=0.0)  # exact after n = 6 steps up to rounding
    assert torch.allclose(x, torch.linalg.solve(a, b), atol=1e-6)
    few = conjugate_gradient(lambda v: a @ v, b, iters=2, tol=0.0)
    assert not torch.allclose(few, torch.linalg.solve(a, b), atol=1e-3)  # and it is not a trivial identity


def _policy_data(learner: DADCLearner, n: int = 400):
    """X (n, d), θ sampled from ψ(·|X), and advantages that reward the first component / the first option."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, learner.net.x_dim, generator=g)
    with torch.no_grad():
        out = learner.net.policy(x)
        if learner.net.discrete:
            choice = torch.multinomial(out.exp(), 1, generator=g)[:, 0]
            theta = torch.nn.functional.one_hot(choice, out.shape[-1]).float()
        else:
            theta = out + learner.net.log_std.exp() * torch.randn(out.shape, generator=g)
    adv = theta[:, 0] - theta[:, 0].mean()
    return x, theta, (adv - adv.mean()) / adv.std()


def _trpo_step_checks(learner: DADCLearner):
    be, max_kl = learner.backend, learner.args.dadc_trpo_max_kl
    x, theta, adv = _policy_data(learner)
    with torch.no_grad():
        before = learner.net.policy(x).clone()
    stats = be.policy_step(x, theta, adv)
    assert stats["trpo_backtracks"] >= 0  # a step was accepted
    assert 0.0 < stats["trpo_kl"] <= max_kl * (1 + 1e-6)
    assert stats["trpo_surrogate_gain"] > 0
    assert stats["trpo_kl"] > 0.1 * max_kl  # it used the trust region rather than a negligible step
    with torch.no_grad():
        after = learner.net.policy(x)
    return before, after


def test_a_trpo_step_keeps_the_kl_constraint_and_improves_the_surrogate_gaussian():
    learner = _learner("dadc_dr", "demand_response", "dadc_backend=trpo")
    before, after = _trpo_step_checks(learner)
    assert (after[:, 0] - before[:, 0]).mean() > 0  # the mean of the rewarded component moved up


def test_a_trpo_step_keeps_the_kl_constraint_and_improves_the_surrogate_categorical():
    learner = _learner("dadc", "mabc", "dadc_backend=trpo")
    before, after = _trpo_step_checks(learner)
    assert (after[:, 0].exp() - before[:, 0].exp()).mean() > 0  # the rewarded option became more likely


def test_naf_q_is_maximised_at_mu_where_it_equals_v():
    naf = _learner("dadc_dr", "demand_response", "dadc_backend=naf").net.naf
    x = torch.rand(50, 1)
    with torch.no_grad():
        v, mu, low = naf(x)  # (50,), (50, 6), (50, 6, 6)
        assert torch.allclose(naf.q(x, mu), v, atol=1e-6)
        a = mu + torch.randn(50, 6)
        assert (naf.q(x, a) < v).all()
        assert torch.equal(low, torch.tril(low)) and (torch.diagonal(low, dim1=-2, dim2=-1) > 0).all()
        assert mu.abs().max() <= naf.bound
    # the Hessian of Q in a is −P = −L Lᵀ
    xi, ai = x[:1], torch.randn(6)
    hess = torch.autograd.functional.hessian(lambda a_: naf.q(xi, a_[None])[0], ai)
    low0 = naf(xi)[2][0]
    assert torch.allclose(hess, -(low0 @ low0.T), atol=1e-5)


def test_naf_q_learning_finds_the_maximiser_of_a_one_step_quadratic_reward():
    learner = _learner("dadc_dr", "demand_response", "dadc_backend=naf", "gamma=0.0", "dadc_naf_gradient_steps=150")
    g = torch.Generator().manual_seed(3)
    best = torch.tensor([1.0, -1.0, 0.5, 0.0, 2.0, -0.5])
    b, t = 10, 21
    for _ in range(5):
        theta = (torch.rand(b, t, 6, generator=g) * 2 - 1) * 3  # uniform in [-3, 3]^6
        cb = {"z": torch.rand(b, t, 1, generator=g), "theta": theta, "log_prob": torch.zeros(b, t),
              "reward": -((theta - best) ** 2).sum(-1), "filled": torch.ones(b, t), "terminated": torch.zeros(b, t)}
        learner.train_common(cb)
    with torch.no_grad():
        mu = learner.net.policy(torch.rand(20, 1, generator=g))  # (20, 6)
    assert (mu - best).abs().max() < 0.3, mu.mean(0)


def test_naf_on_mabc_draws_options_from_the_softmax_of_its_action():
    learner = _learner("dadc", "mabc", "dadc_backend=naf", "batch_size_run=1")
    mac = learner.mac
    with torch.no_grad():
        head = mac.agent.naf
        head.mu.weight.zero_()
        head.mu.bias.copy_(torch.tensor([0.5, -0.3, 0.1]))  # μ = 5 tanh(bias): logits (2.31, -1.46, 0.50)
    mac.init_hidden(4000)
    thetas, _ = mac.prescribe(torch.zeros(4000, 4), torch.arange(4000).numpy(), test_mode=True)  # a = μ
    freq = thetas.mean(0)
    target = torch.softmax(5 * torch.tanh(torch.tensor([0.5, -0.3, 0.1])), -1)
    assert torch.allclose(freq, target, atol=0.03), (freq, target)
    assert torch.equal(mac.last_action, 5 * torch.tanh(torch.tensor([0.5, -0.3, 0.1])).expand(4000, 3))
