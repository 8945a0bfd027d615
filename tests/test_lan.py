"""LAN (lan.md §4, App. B, App. E): Q-value proxies, eq. 3 targets, LAN-mean, V's size, V's gradient, end to end."""
from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from concord.config import load_config

import concord.learners.q_learner as q_learner_module
from concord.controllers.basic_mac import BasicMAC
from concord.envs.checkers import CheckersEnv
from concord.modules.mixers.base import MixerContext
from concord.registry import LEARNERS, MIXERS

HIDDEN = 64


def _args(**over) -> SimpleNamespace:
    """lan.yaml's merged config (its components' declared keys) with a small hidden size."""
    a = load_config("lan", "matrix_game", [f"hidden_dim={HIDDEN}", "seed=1", "buffer_size=8"])
    a.update(over)
    return SimpleNamespace(**a)


def _value(n_agents: int, n_actions: int, obs: int, state: int, **over):
    info = {"n_agents": n_agents, "n_actions": n_actions, "obs_shape": obs, "state_shape": state}
    return MIXERS.get("lan_value")(info, _args(**over))


def _n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _ctx(b, t, n, a, obs, gen, hidden=None):
    return MixerContext(all_qs=torch.randn(b, t, n, a, generator=gen),
                        actions=torch.randint(0, a, (b, t, n), generator=gen),
                        avail_actions=torch.ones(b, t, n, a, dtype=torch.bool),
                        hidden=torch.randn(b, t, n, HIDDEN, generator=gen) if hidden is None else hidden,
                        obs=torch.randn(b, t, n, obs, generator=gen),
                        last_actions=torch.randint(-1, a, (b, t, n), generator=gen))


# --- eq. 1, 2, 6 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("advantage_mean", [False, True])
def test_greedy_action_of_the_proxy_is_the_greedy_advantage(advantage_mean):
    """eq. 2: argmax_u Q̃_a(s, τ, u) = argmax_u A_a(τ_a, u), whatever V(s, τ) is."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    mixer = _value(4, 6, 7, 9, advantage_mean=advantage_mean)
    ctx = _ctx(3, 5, 4, 6, 7, gen)
    states = torch.randn(3, 5, 9, generator=gen)
    proxies = torch.stack([mixer(ctx.all_qs[..., u], states, ctx) for u in range(6)], dim=-1)  # (B, T, N, A)
    assert proxies.shape == (3, 5, 4, 6)
    assert torch.equal(proxies.argmax(-1), ctx.all_qs.argmax(-1))
    v = mixer.values(states, ctx)  # (B, T, 1)
    assert v.abs().min() > 0  # the proxies really carry a (shared) value
    assert torch.allclose(proxies - ctx.all_qs, (proxies - ctx.all_qs)[..., :1].expand_as(proxies), atol=1e-6)


def test_lan_mean_centres_advantages_over_all_actions():
    """eq. 6: Q̃ of LAN-mean = V + A − mean over all |U_a| actions, unavailable ones included."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(2)
    plain = _value(3, 5, 4, 6)
    centred = _value(3, 5, 4, 6, advantage_mean=True)
    centred.load_state_dict(plain.state_dict())
    ctx = _ctx(2, 4, 3, 5, 4, gen)
    ctx.avail_actions[..., 3:] = False  # the mean still runs over all 5 actions
    states = torch.randn(2, 4, 6, generator=gen)
    chosen = ctx.all_qs.gather(-1, ctx.actions.unsqueeze(-1)).squeeze(-1)  # (B, T, N)
    diff = centred(chosen, states, ctx) - plain(chosen, states, ctx)
    assert torch.allclose(diff, -ctx.all_qs.mean(-1), atol=1e-6)
    # the centred advantages of each agent sum to zero over its actions
    all_centred = torch.stack([centred(ctx.all_qs[..., u], states, ctx) for u in range(5)], -1) \
        - plain.values(states, ctx).unsqueeze(-1)
    assert torch.allclose(all_centred.sum(-1), torch.zeros(2, 4, 3), atol=1e-5)


# --- V's size (App. B, Table 1) -----------------------------------------------------------------------------
def test_value_parameters_grow_only_with_input_sizes():
    small = _value(n_agents=2, n_actions=4, obs=10, state=12)
    large = _value(n_agents=6, n_actions=9, obs=30, state=40)
    d_obs, d_act, d_agents, d_state = 20, 5, 4, 28
    assert _n_params(large) - _n_params(small) == 128 * (d_obs + d_act + d_agents) + 128 * d_state


def test_value_parameter_count_on_5m_vs_6m_is_the_anchor():
    """SMAC 5m_vs_6m: obs 55, 12 actions, 5 agents, state 38 without last actions; lan.md Table 1 says 56k."""
    v = _value(n_agents=5, n_actions=12, obs=55, state=38)
    assert _n_params(v) == 55_553
    # embedding (64+55+12+5)·128+128, then (128+38)·128+128, 128·128+128, 128+1
    assert _n_params(v) == 136 * 128 + 128 + 166 * 128 + 128 + 128 * 128 + 128 + 129


# --- V's gradient into the GRUs (§4) ------------------------------------------------------------------------
@pytest.mark.parametrize("detach", [False, True])
def test_value_gradient_reaches_the_gru_unless_detached(detach):
    torch.manual_seed(0)
    info = {"n_agents": 3, "n_actions": 4, "obs_shape": 5, "state_shape": 6}
    args = _args(value_detach_hidden=detach)
    mac = BasicMAC(info, args, torch.device("cpu"))
    mixer = MIXERS.get("lan_value")(info, args)
    gen = torch.Generator().manual_seed(3)
    batch = {"obs": torch.randn(2, 4, 3, 5, generator=gen), "actions": torch.randint(0, 4, (2, 4, 3), generator=gen)}
    _, hidden = mac.forward_seq(batch)
    ctx = MixerContext(all_qs=torch.zeros(2, 4, 3, 4), actions=batch["actions"],
                       avail_actions=torch.ones(2, 4, 3, 4, dtype=torch.bool), hidden=hidden, obs=batch["obs"],
                       last_actions=mac.shifted_actions(batch["actions"]))
    mixer.values(torch.randn(2, 4, 6, generator=gen), ctx).pow(2).sum().backward()  # a loss on V alone
    gru = mac.agent.rnn.weight_hh_l0.grad
    assert mac.agent.fc2.weight.grad is None  # the advantage head is not in V's graph
    assert mixer.embed.weight.grad.abs().sum() > 0
    if detach:
        assert gru is None and mac.agent.fc1.weight.grad is None
    else:
        assert gru is not None and gru.abs().sum() > 0 and mac.agent.fc1.weight.grad.abs().sum() > 0


# --- eq. 3 through the learner ------------------------------------------------------------------------------
def _manual_value(m, hidden, obs, last, states):
    """V(s, τ) written out from the module's weights: Σ_a relu(W_e [h_a, o_a, u_a, a] + b_e), ++ s, MLP."""
    n, a = hidden.shape[-2], m.n_actions
    onehot = torch.where(last.unsqueeze(-1) >= 0, F.one_hot(last.clamp(min=0), a).float(), torch.zeros(()))
    ids = torch.eye(n).expand(*hidden.shape[:2], n, n)
    x = torch.cat([hidden, obs, onehot, ids], -1) @ m.embed.weight.T + m.embed.bias
    z = torch.cat([x.relu().sum(-2), states], -1)
    l1, l2, l3 = m.value[0], m.value[2], m.value[4]
    z = (z @ l1.weight.T + l1.bias).relu()
    z = (z @ l2.weight.T + l2.bias).relu()
    return (z @ l3.weight.T + l3.bias).squeeze(-1)  # (B, T)


@pytest.mark.parametrize("advantage_mean", [False, True])
def test_td_target_of_a_two_step_batch_matches_a_hand_computation(monkeypatch, advantage_mean):
    """y_a = r + γ(1 − d)[V_t(s', τ') + A_t,a(τ'_a, argmax over available u' of A_a(τ'_a, ·))] (eq. 3), with V_t fed
    the *target* agents' hidden states; episode 0 is truncated after two steps (bootstraps), episode 1 terminates."""
    torch.manual_seed(0)
    n, a, o, s = 2, 3, 4, 5
    info = {"n_agents": n, "n_actions": a, "obs_shape": o, "state_shape": s, "episode_limit": 1}
    args = _args(advantage_mean=advantage_mean, mixer="lan_value", env_args={"state_last_action": False})
    mac = BasicMAC(info, args, torch.device("cpu"))
    learner = LEARNERS.get("lan")(mac, info, args, torch.device("cpu"))
    with torch.no_grad():  # make the target networks differ from the online ones
        for p in list(learner.target_agent.parameters()) + list(learner.target_mixer.parameters()):
            p.add_(0.3 * torch.randn_like(p))
    gen = torch.Generator().manual_seed(4)
    avail = torch.ones(2, 3, n, a, dtype=torch.bool)
    avail[:, 1:, 0, 1] = False  # agent 0 may not take action 1 at t = 1, 2
    avail[:, 1:, 1, 0] = False
    batch = {"obs": torch.randn(2, 3, n, o, generator=gen), "state": torch.randn(2, 3, s, generator=gen),
             "actions": torch.tensor([[[0, 2], [2, 1], [0, 0]], [[1, 1], [0, 2], [0, 0]]]),
             "avail_actions": avail, "reward": torch.tensor([[1.0, -0.5, 0.0], [0.25, 2.0, 0.0]]),
             "filled": torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]]),
             "terminated": torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])}

    # by hand: unroll both agent networks, pick u' with the online A, evaluate it with the target networks
    with torch.no_grad():
        last = mac.shifted_actions(batch["actions"])  # (B, 3, n)
        inputs = torch.cat([batch["obs"], torch.where(last.unsqueeze(-1) >= 0, F.one_hot(last.clamp(min=0), a).float(),
                                                      torch.zeros(())), torch.eye(n).expand(2, 3, n, n)], -1)
        flat = inputs.permute(0, 2, 1, 3).reshape(2 * n, 3, -1)
        adv, h = (x.reshape(2, n, 3, -1).permute(0, 2, 1, 3) for x in mac.agent(flat, torch.zeros(2 * n, HIDDEN)))
        adv_t, h_t = (x.reshape(2, n, 3, -1).permute(0, 2, 1, 3)
                      for x in learner.target_agent(flat, torch.zeros(2 * n, HIDDEN)))
        assert not torch.allclose(h_t, h)
        u_next = adv[:, 1:].masked_fill(~avail[:, 1:], -1e9).argmax(-1)  # (B, 2, n) from the online A
        a_next = adv_t[:, 1:].gather(-1, u_next.unsqueeze(-1)).squeeze(-1)
        a_taken = adv[:, :-1].gather(-1, batch["actions"][:, :-1].unsqueeze(-1)).squeeze(-1)
        if advantage_mean:
            a_next = a_next - adv_t[:, 1:].mean(-1)
            a_taken = a_taken - adv[:, :-1].mean(-1)
        v_next = _manual_value(learner.target_mixer, h_t[:, 1:], batch["obs"][:, 1:], batch["actions"][:, :-1],
                               batch["state"][:, 1:])  # (B, 2)
        v_now = _manual_value(learner.mixer, h[:, :-1], batch["obs"][:, :-1], last[:, :-1], batch["state"][:, :-1])
        not_done = 1.0 - batch["terminated"][:, :-1]
        y = batch["reward"][:, :-1].unsqueeze(-1) + 0.99 * not_done.unsqueeze(-1) * (v_next.unsqueeze(-1) + a_next)
        q = v_now.unsqueeze(-1) + a_taken  # (B, 2, n) proxies of eq. 1
    assert u_next[:, :, 0].ne(1).all() and u_next[:, :, 1].ne(0).all()

    seen = {}
    real = q_learner_module.td_lambda_targets

    def spy(*xs, **kw):
        seen["targets"] = real(*xs, **kw)
        return seen["targets"]

    monkeypatch.setattr(q_learner_module, "td_lambda_targets", spy)
    stats = learner.train(batch, t_env=0, episode=2)
    assert seen["targets"].shape == (2, 2, n)  # one target per agent (K = n_agents)
    assert torch.allclose(seen["targets"], y, atol=1e-5)
    assert stats["td_loss"] == pytest.approx(((q - y) ** 2).mean().item(), rel=1e-5)


def test_lan_learner_names_its_value_network_and_needs_one():
    info = {"n_agents": 2, "n_actions": 3, "obs_shape": 4, "state_shape": 5, "episode_limit": 1}
    args = _args()
    learner = LEARNERS.get("lan")(BasicMAC(info, args, torch.device("cpu")), info, args, torch.device("cpu"))
    assert set(learner.networks()) == {"agent", "value"} and learner.networks()["value"] is learner.mixer
    from concord.errors import ConfigError
    with pytest.raises(ConfigError, match="mixer=lan_value"):
        LEARNERS.get("lan")(BasicMAC(info, args, torch.device("cpu")), info, _args(mixer=None), torch.device("cpu"))


# --- end to end through main.py ------------------------------------------------------------------------------
SHORT = ["use_tensorboard=False", "save_model=False", "log_interval=100000"]


def test_lan_trains_on_the_matrix_game(run_main):
    code, result, err = run_main("lan", "matrix_game", "t_max=300", "seed=1", *SHORT)
    assert code == 0, err
    assert result["t_env"] == 300 and "test_return_mean" in result
    assert "parameters: value LANValue = " in err


def test_lan_trains_on_smax_3m(run_main):
    if importlib.util.find_spec("jaxmarl") is None:
        pytest.skip("jaxmarl is not installed (SMAX)")
    code, result, err = run_main("lan", "smax", "env_args.map_name=3m", "t_max=600", "batch_size=4",
                                 "test_nepisode=2", "seed=1", *SHORT)
    assert code == 0, err
    assert result["t_env"] >= 600 and "test_battle_won_mean" in result
    # 3m: obs 75, 8 actions, 3 agents, state 72 -> (64+75+8+3)·128+128 + (128+72)·128+128 + 128·128+128 + 129
    assert "parameters: value LANValue = 61697" in err
    assert "td_loss" in err


def _random_policy_return(episodes: int = 300) -> float:
    rng = np.random.default_rng(0)
    env, total = CheckersEnv(seed=0), 0.0
    for _ in range(episodes):
        env.reset()
        done = False
        while not done:
            r, done, _ = env.step(rng.integers(0, 5, 2))
            total += r
    return total / episodes


def test_lan_on_checkers_beats_the_random_policy_fast(run_main):
    """A ~10 s Checkers run (higher lr, shorter schedules) ends with a greedy return above random's (≈ −2.4)."""
    code, result, err = run_main("lan", "checkers", "t_max=8000", "epsilon_anneal_time=4000", "lr=0.002",
                                 "target_update_interval=50", "batch_size=16", "test_nepisode=1",
                                 "test_interval=100000", "seed=1", *SHORT)
    assert code == 0, err
    random_return = _random_policy_return()
    assert -3.0 < random_return < -1.5
    assert result["test_return_mean"] > random_return + 5.0  # agent 1 eats at least one apple net of lemons


@pytest.mark.slow
def test_lan_on_checkers_beats_the_random_policy_with_paper_settings(run_main):
    """lan.yaml's own hyperparameters (App. B), 40k steps."""
    code, result, err = run_main("lan", "checkers", "t_max=40000", "test_nepisode=1", "test_interval=100000",
                                 "seed=1", *SHORT)
    assert code == 0, err
    assert result["test_return_mean"] > _random_policy_return() + 5.0


def test_lan_resumes_exactly_from_a_checkpoint(run_main):
    """V and its target copy are checkpointed with the agents: N steps + resume to 2N equals 2N straight."""
    from concord.utils.checkpoint import find_checkpoint, load_checkpoint
    from tests.test_resume import COMMON

    n = 120
    common = [*COMMON, f"t_max={2 * n}", f"save_model_interval={n}"]
    code, straight, err = run_main("lan", "chain_test", *common)
    assert code == 0, err
    code, resumed, err = run_main("lan", "chain_test", *common, f"checkpoint_path={straight['models_dir']}",
                                  f"load_step={n}")
    assert code == 0 and "resumed from" in err, err
    a = load_checkpoint(find_checkpoint(straight["models_dir"], 0))["learner"]
    b = load_checkpoint(find_checkpoint(resumed["models_dir"], 0))["learner"]
    for part in ("agent", "target_agent", "mixer", "target_mixer"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k} differs"
    assert a["counters"] == b["counters"] and a["counters"][0] > 0
    assert straight["test_return_mean"] == resumed["test_return_mean"]
