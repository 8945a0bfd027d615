"""The factorised actor-critic (VAST's regime, vast.md §5.2): mixing of local critics, targets, advantages."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from concord.components.action_selectors import masked_log_softmax
from concord.registry import LEARNERS
from tests.conftest import build_parts


def _setup(alg: str, *updates: str):
    args, runner, mac = build_parts(alg, "chain_test", "plugins=[tests.chain_env]", "seed=3", "batch_size_run=3",
                                    *updates)
    learner = LEARNERS.get(args.learner)(mac, runner.env_info, args, torch.device("cpu"))
    batch, _ = runner.run(mac, learner.scheme, t_env=0)
    return learner, batch.to_torch("cpu")


def test_q_tot_with_vdn_is_the_sum_of_the_local_critics():
    learner, data = _setup("qmix_ac", "mixer=vdn")
    qs, _, _, _ = learner.local(data)
    chosen = qs[:, :-1].gather(-1, data["actions"][:, :-1].unsqueeze(-1)).squeeze(-1)  # (B, T-1, n)
    from concord.modules.mixers.base import batch_context

    ctx = batch_context(data, slice(0, -1), qs[:, :-1], data["actions"][:, :-1], None,
                        learner.mac.shifted_actions(data["actions"])[:, :-1], data["filled"][:, :-1])
    q_tot = learner.mix(chosen, data["state"][:, :-1], ctx)
    assert q_tot.shape == chosen.shape[:2] + (1,)
    assert torch.allclose(q_tot[..., 0], chosen.sum(-1))


def test_monte_carlo_targets_and_local_advantage_by_hand():
    """λ = 1: G_t = Σ_c γ^c r_{t+c}, bootstrapping from Ψ(Σ_a π_i Q_i) only after the truncated last step; the
    actor's advantage is Q_i(τ_i, a_i) − Σ_a π_i(a|τ_i) Q_i(τ_i, a)."""
    learner, data = _setup("qmix_ac", "mixer=vdn", "gamma=0.5")
    with torch.no_grad():
        prep = learner.prepare(data, 0)
        qs, _, log_pi, expected = learner.local(data)
    r = data["reward"][0]
    length = int(data["filled"][0].sum())  # the chain env truncates every episode at its limit
    boot = expected[0, length].sum()  # VDN of the expected local values at the final state
    g = boot
    hand = []
    for t in range(length - 1, -1, -1):
        g = r[t] + 0.5 * g
        hand.append(g)
    assert torch.allclose(prep["targets"][0, :length, 0], torch.stack(hand[::-1]), atol=1e-5)
    pi = masked_log_softmax(learner.mac.forward_seq(data)[0], data["avail_actions"]).exp()
    manual = (pi * qs.masked_fill(~data["avail_actions"], 0)).sum(-1)
    assert torch.allclose(expected, manual, atol=1e-6)


@pytest.mark.parametrize("alg", ["vast_ac", "qmix_ac", "qtran_ac", "il_ac"])
def test_one_update_trains_actor_critic_and_mixer(alg):
    learner, data = _setup(alg, *(["vast_eta=0.5"] if alg == "vast_ac" else []))
    before = {k: [p.detach().clone() for p in m.parameters()] for k, m in learner.networks().items()}
    stats = learner.train(data, 0)
    assert np.isfinite([v for v in stats.values()]).all()
    for k, m in learner.networks().items():
        trained = [p for p in m.parameters() if p.requires_grad]
        changed = any(not torch.equal(a, b) for a, b in zip(before[k], m.parameters()))
        assert changed or not trained, f"{k} did not change"
    if alg == "vast_ac":  # the metagrad assignment trained on this learner's π_i and Q_i
        assert "vast_policy_loss" in stats
    if alg == "qtran_ac":
        assert "aux_qtran_opt" in stats


@pytest.mark.parametrize("mode", ["return", "q"])
def test_actor_advantage_by_hand(mode):
    """``return``: Â_i = G_t − Σ_a π_i Q_i (the authors' code); ``q``: Â_i = Q_i(τ_i, a_i) − Σ_a π_i Q_i."""
    learner, data = _setup("qmix_ac", "mixer=vdn", f"ac_advantage={mode}")
    with torch.no_grad():
        prep = learner.prepare(data, 0)
        _, stats = learner.loss(data, prep, 0)
        qs, _, _, expected = learner.local(data)
    mask = data["filled"][:, :-1].bool()  # (B, T-1)
    chosen = qs[:, :-1].gather(-1, data["actions"][:, :-1].unsqueeze(-1)).squeeze(-1)  # (B, T-1, n)
    own = prep["targets"][..., :1] if mode == "return" else chosen  # (B, T-1, 1 | n)
    hand = (own - expected[:, :-1]).abs()[mask].mean().item()
    assert stats["advantage_abs"] == pytest.approx(hand, rel=1e-5)


def test_vast_ac_learns_gaussian_squeeze_without_collapsing(run_main):
    """VAST's regime on a small GaussianSqueeze (N = 20, μ = 40, σ = 20: optimum 42.3 at x = 44.5) within a few
    hundred one-step episodes, with the authors' actor advantage G_t − Σπ_iQ_i (the Q_i-advantage drives every
    agent to action 0 on GaussianSqueeze[200])."""
    code, result, err = run_main("vast_ac", "gaussian_squeeze", "env_args.n_agents=20", "env_args.mu=40.0",
                                 "env_args.sigma=20.0", "t_max=2000", "test_interval=100000", "test_nepisode=10",
                                 "test_greedy=False", "vast_eta=0.25", "save_model=False", "use_tensorboard=False",
                                 "seed=1")
    assert code == 0, err
    assert result["test_system_performance_mean"] > 0.7 * 42.3, result  # random actions: GS(90) = 0.1
