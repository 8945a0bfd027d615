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
