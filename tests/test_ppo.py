"""The ppo learner (MAPPO / IPPO): ratios, clipping, value normalisation, critic inputs, learning."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from concord.components.action_selectors import masked_log_softmax
from concord.config import load_config
from concord.envs.coordination_game import CoordinationGameEnv
from concord.learners.ppo import critic_inputs
from concord.registry import LEARNERS
from tests.conftest import build_parts

CHAIN = ["plugins=[tests.chain_env]", "seed=3"]


def _setup(alg: str = "mappo", *updates: str, n_envs: int = 4):
    args, runner, mac = build_parts(alg, "chain_test", *CHAIN, f"batch_size_run={n_envs}", *updates)
    learner = LEARNERS.get(args.learner)(mac, runner.env_info, args, torch.device("cpu"))
    return runner, mac, learner


def test_stored_log_probs_are_the_policy_so_the_first_ratio_is_one():
    runner, mac, learner = _setup("mappo")
    batch, _ = runner.run(mac, learner.scheme, t_env=0)
    data = batch.to_torch("cpu")
    with torch.no_grad():
        logits, _ = mac.forward_seq(data)
    log_pi = masked_log_softmax(logits[:, :-1], data["avail_actions"][:, :-1])
    log_p = log_pi.gather(-1, data["actions"][:, :-1].unsqueeze(-1)).squeeze(-1)  # (B, T-1, n)
    valid = data["filled"][:, :-1] > 0
    assert torch.allclose(log_p[valid], data["log_prob"][:, :-1][valid], atol=1e-5)
    assert (data["log_prob"][:, :-1][valid] < 0).all()  # a real distribution over the 3 (or 2) actions
    with torch.no_grad():
        prep = learner.prepare(data, 0)
    _, stats = learner.loss(data, prep, 0)
    assert stats["ratio_mean"] == pytest.approx(1.0, abs=1e-5) and stats["clip_fraction"] == 0.0
    assert stats["approx_kl"] == pytest.approx(0.0, abs=1e-6)


def test_clipping_removes_the_gradient_outside_the_trust_region():
    """ρ = e > 1 + ε with A > 0: min(ρA, (1 + ε)A) is the constant clipped term, so no actor gradient; with A < 0
    the unclipped ρA is the minimum and the gradient flows."""
    runner, mac, learner = _setup("mappo", "value_loss_coef=0.0", "entropy_coef=0.0")
    batch, _ = runner.run(mac, learner.scheme, t_env=0)
    data = batch.to_torch("cpu")
    with torch.no_grad():
        prep = learner.prepare(data, 0)
        logits, _ = mac.forward_seq(data)
        log_p = masked_log_softmax(logits, data["avail_actions"]).gather(-1, data["actions"].unsqueeze(-1)).squeeze(-1)
    data["log_prob"] = log_p - 1.0  # ρ = e everywhere
    for sign, expect_zero in ((1.0, True), (-1.0, False)):
        prep["advantages"] = sign * torch.ones_like(prep["advantages"])
        learner.optimiser.zero_grad()
        loss, stats = learner.loss(data, prep, 0)
        loss.backward()
        grad = sum(float(p.grad.abs().sum()) for p in mac.parameters() if p.grad is not None)
        assert stats["clip_fraction"] == 1.0
        assert (grad == 0.0) == expect_zero, (sign, grad)


@pytest.mark.parametrize("mode", ["running", "popart"])
def test_value_normalisation_round_trips_and_normalises_the_targets(mode):
    runner, mac, learner = _setup("mappo", f"value_norm={mode}")
    x = torch.randn(3, 5, 2) * 40 + 7
    batch, _ = runner.run(mac, learner.scheme, t_env=0)
    data = batch.to_torch("cpu")
    with torch.no_grad():
        prep = learner.prepare(data, 0)
    assert torch.allclose(learner.denormalise(learner.normalise(x)), x, atol=1e-4)
    valid = data["filled"][:, :-1] > 0
    # the chain env pays 1-2 per step: raw returns are several units, normalised ones are centred
    assert abs(float(prep["returns"][valid].mean())) < 1e-3


def test_critic_inputs_mappo_state_agent_specific_and_ippo():
    b = {"obs": torch.arange(2 * 1 * 3 * 2, dtype=torch.float32).view(2, 1, 3, 2),
         "state": torch.tensor([[[10.0, 11.0]], [[12.0, 13.0]]])}
    s = critic_inputs(b, "state", True, 3)  # (B, T, n, S + n)
    assert s.shape == (2, 1, 3, 5) and torch.equal(s[1, 0, 2], torch.tensor([12.0, 13.0, 0, 0, 1]))
    so = critic_inputs(b, "state_obs", False, 3)
    assert torch.equal(so[0, 0, 1], torch.tensor([10.0, 11.0, 2.0, 3.0]))
    o = critic_inputs(b, "obs", True, 3)
    assert torch.equal(o[1, 0, 0], torch.tensor([6.0, 7.0, 1, 0, 0]))


def test_ppo_refuses_a_deterministic_selector_before_any_work():
    from concord.errors import ConfigError

    with pytest.raises(ConfigError, match="config key 'action_selector' must be one of multinomial"):
        load_config("mappo", "chain_test", [*CHAIN, "action_selector=epsilon_greedy"])


def _random_return(n_agents: int, episodes: int = 200) -> float:
    env = CoordinationGameEnv(num_envs=episodes, seed=0, n_agents=n_agents)
    rng = np.random.default_rng(0)
    ids = np.arange(episodes)
    env.reset(ids)
    total = np.zeros(episodes)
    running = np.ones(episodes, dtype=bool)
    while running.any():
        live = ids[running]
        res = env.step(live, rng.integers(0, env.get_env_info()["n_actions"], (len(live), n_agents)))
        total[live] += res.reward
        running[live[res.terminated | res.truncated]] = False
    return float(total.mean())


@pytest.mark.parametrize("alg", ["mappo", "ippo"])
def test_mappo_and_ippo_beat_the_random_policy_on_the_coordination_game(run_main, alg):
    """N = 2, 20-step episodes; 4,000 env steps in a few seconds. Seeds 1 and 2 each beat random by a wide margin."""
    baseline = _random_return(2)
    for seed in (1, 2):
        code, result, err = run_main(alg, "coordination_game", "t_max=4000", "rollout_episodes=8",
                                     "runner=parallel", "batch_size_run=8", "test_nepisode=32", f"seed={seed}",
                                     "save_model=False", "use_tensorboard=False", "test_interval=100000")
        assert code == 0, err
        assert result["test_return_mean"] > baseline + 0.25 * (60.0 - baseline), (seed, result, baseline)


def test_non_shared_actors_have_their_own_parameters_and_outputs():
    runner, mac, learner = _setup("mappo", "agent_shared=False")
    nets = mac.agent.agents
    assert len(nets) == 2 and nets[0] is not nets[1]
    batch, _ = runner.run(mac, learner.scheme, t_env=0)
    data = batch.to_torch("cpu")
    with torch.no_grad():
        out, _ = mac.forward_seq(data)  # (B, T, 2, A)
        for p in nets[1].parameters():  # change agent 1's network only
            p.add_(1.0)
        out2, _ = mac.forward_seq(data)
    assert torch.equal(out[:, :, 0], out2[:, :, 0]) and not torch.equal(out[:, :, 1], out2[:, :, 1])
    before = [p.detach().clone() for p in nets[0].parameters()]
    learner.train(data, 0)
    assert any(not torch.equal(a, b) for a, b in zip(before, nets[0].parameters()))
