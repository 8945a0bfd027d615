"""VAST (vast.md): Theorem 1, K = 1 is VDN, partitions, spatial clustering, eq. 6's gradient, training runs."""
from __future__ import annotations

import copy
import itertools
import json
import math
import os
from types import SimpleNamespace

import pytest

from tests.conftest import require
import torch

from concord.components.episode_buffer import EpisodeBatch, build_scheme
from concord.config import load_config, to_namespace
from concord.errors import ConfigError
from concord.learners.q_learner import QLearner
from concord.modules.mixers.base import MixerContext
from concord.components.action_selectors import EpsilonGreedySelector
from concord.modules.mixers.base import LocalPolicy
from concord.modules.mixers.vast import VASTMixer, discounted_returns
from concord.modules.mixers.vast_assignment import kmeans_assignment, sample_assignment
from concord.registry import MACS
from concord.utils.checkpoint import find_checkpoint, load_checkpoint

RESUME = ["plugins=[tests.chain_env]", "env=test_chain", "env_args.limit=4", "env_args.terminate_at=0",
          "env_args.crash_at=0", "env_args.crash_exit=False", "env_args.crash_file=''", "batch_size=4",
          "test_interval=40", "test_nepisode=2", "log_interval=24", "epsilon_anneal_time=100",
          "target_update_interval=3", "use_tensorboard=False", "seed=5", "vast_eta=1.0"]
FAST = ["batch_size=4", "test_nepisode=2", "save_model=False", "use_tensorboard=False", "seed=3"]


def _args(**kw) -> SimpleNamespace:
    base = dict(vast_eta=0.5, vast_assignment="random", vast_mixer="vdn", vast_centroids=0, vast_agent_id=True,
                vast_lr=1e-3, vast_grad_norm_clip=1.0, mixing_embed_dim=8, hypernet_layers=2, hypernet_embed=16,
                qtran_inputs="values", qtran_values_embed=16, qtran_lambda_opt=1.0, qtran_lambda_nopt=1.0,
                gamma=0.9, env_args={"state_last_action": False})
    base.update(kw)
    return SimpleNamespace(**base)


def _info(n=4, a=3, s=5, o=2, positions=False) -> dict:
    return {"n_agents": n, "n_actions": a, "state_shape": s, "obs_shape": o,
            "extras": {"positions": (n, 2)} if positions else {}}


def _ctx(all_qs, actions, obs=None, is_target=False, extras=None) -> MixerContext:
    avail = torch.ones_like(all_qs, dtype=torch.bool)
    greedy = all_qs.max(-1).values
    return MixerContext(all_qs=all_qs, actions=actions, avail_actions=avail, greedy_qs=greedy, obs=obs,
                        extras=extras or {}, is_target=is_target)


@pytest.mark.parametrize("inner", ["vdn", "qmix"])
def test_greedy_local_actions_maximise_q_tot_for_any_assignment(inner):
    """Theorem 1: with an IGM Ψ, argmax of Q_tot over all joint actions = the agents' greedy actions."""
    torch.manual_seed(0)
    n, a, s = 4, 3, 5
    mixer = VASTMixer(_info(n, a, s), _args(vast_mixer=inner, vast_eta=0.75))  # K = 3
    joint = torch.tensor(list(itertools.product(range(a), repeat=n)))  # (81, n)
    for trial in range(20):
        qs = torch.randn(1, 1, n, a) * 3  # (1, 1, N, A)
        state = torch.randn(1, 1, s)
        groups = mixer.assign(state, None, {}, fresh=True)  # (1, 1, N): a random assignment
        if trial % 4 == 0:
            groups = torch.tensor([[[0, 0, 0, 0]]])  # two empty sub-teams
        all_qs = qs.expand(len(joint), 1, n, a)
        chosen = all_qs.gather(-1, joint.view(-1, 1, n, 1)).squeeze(-1)  # (81, 1, N)
        ctx = _ctx(all_qs, joint.view(-1, 1, n))
        with torch.no_grad():
            q_tot = mixer.mix(chosen, state.expand(len(joint), 1, s), groups.expand(len(joint), 1, n), ctx)
        best = joint[q_tot.view(-1).argmax()]
        assert torch.equal(best, qs[0, 0].argmax(-1)), (trial, groups)


def test_one_subteam_with_vdn_is_vdn_numerically(run_main):
    """K = ⌈ηN⌉ = 1 with Ψ = VDN: the same mixer output, and the same training run as plain VDN."""
    torch.manual_seed(1)
    mixer = VASTMixer(_info(5), _args(vast_eta=0.2, vast_assignment="fixed"))
    qs = torch.randn(3, 4, 5, 3)
    actions = torch.randint(0, 3, (3, 4, 5))
    chosen = qs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    out = mixer(chosen, torch.randn(3, 4, 5), _ctx(qs, actions))
    assert mixer.n_subteams == 1 and torch.allclose(out, chosen.sum(-1, keepdim=True), rtol=0.0, atol=1e-6)
    runs = {}
    for alg, extra in (("vdn", []), ("vast", ["vast_mixer=vdn", "vast_assignment=fixed", "vast_eta=0.5"])):
        code, result, err = run_main(alg, "matrix_game", "t_max=200", "batch_size_run=8", "batch_size=8",
                                     "test_interval=64", "use_tensorboard=False", "save_model=False", "seed=7",
                                     *extra)
        assert code == 0, err
        with open(os.path.join(result["results_dir"], "metrics.json")) as f:
            runs[alg] = json.load(f)
    for key in ("loss", "q_taken_mean", "test_return_mean"):
        assert runs["vdn"][key]["values"] == runs["vast"][key]["values"], key


@pytest.mark.parametrize("strategy", ["random", "fixed", "spatial", "metagrad"])
def test_assignments_partition_the_agents_every_step(strategy):
    torch.manual_seed(2)
    n, k = 7, 4
    mixer = VASTMixer(_info(n, positions=True), _args(vast_assignment=strategy, vast_eta=4 / 7))
    assert mixer.n_subteams == k
    b, t = 6, 5
    qs = torch.randn(b, t, n)
    extras = {"positions": torch.randn(b, t, n, 2)}
    groups = mixer.assign(torch.randn(b, t, 5), torch.randn(b, t, n, 2), extras, fresh=True)
    assert groups.shape == (b, t, n) and groups.dtype == torch.int64
    assert groups.min() >= 0 and groups.max() < k
    member = torch.nn.functional.one_hot(groups, k)  # (B, T, N, K): each agent in exactly one sub-team
    assert torch.equal(member.sum(-1), torch.ones(b, t, n, dtype=torch.int64))
    assert torch.equal(member.sum((-1, -2)), torch.full((b, t), n))
    sub = mixer._sum(qs, groups)  # the sub-team values add up to the team's (eq. 4 over a partition)
    assert torch.allclose(sub.sum(-1), qs.sum(-1), atol=1e-5)
    if strategy == "fixed":
        assert torch.equal(groups[0, 0], torch.arange(n) % k)
    if strategy == "spatial":
        assert groups.max() < math.ceil(k / 2)  # ⌈K/2⌉ centroids


def test_random_assignment_is_uniform_and_metagrad_samples_its_policy():
    torch.manual_seed(3)
    mixer = VASTMixer(_info(4), _args(vast_eta=1.0))  # random, K = 4
    groups = mixer.assign(torch.zeros(50, 40, 5), None, {}, fresh=True)
    freq = torch.bincount(groups.flatten(), minlength=4).float() / groups.numel()
    assert torch.allclose(freq, torch.full((4,), 0.25), atol=0.02)
    assert (groups[:, 1:] != groups[:, :-1]).any()  # redrawn at every step
    p = torch.tensor([0.1, 0.6, 0.0, 0.3])
    u = torch.rand(200_000)
    freq = torch.bincount(sample_assignment(p.log().expand(200_000, 4), u), minlength=4).float() / 200_000
    assert torch.allclose(freq, p, atol=0.005) and freq[2] == 0


@pytest.mark.parametrize("strategy", ["random", "metagrad"])
def test_online_and_target_mixing_see_the_same_subteams(strategy):
    """The Q-learner mixes steps 0..T-2 online and 1..T-1 as targets: step t must get the same sub-teams."""
    torch.manual_seed(4)
    n, t = 6, 7
    online = VASTMixer(_info(n), _args(vast_assignment=strategy, vast_mixer="il", vast_eta=0.5))  # K = 3
    target = copy.deepcopy(online)
    if strategy == "metagrad":  # a stale target copy of the policy must not change the sub-teams
        with torch.no_grad():
            for p in target.assigner.parameters():
                p.add_(torch.randn_like(p))
    qs, states, obs = torch.randn(3, t, n, 2), torch.randn(3, t, 5), torch.randn(3, t, n, 2)
    acts = torch.zeros(3, t, n, dtype=torch.long)
    chosen = qs[..., 0]
    out = online(chosen[:, :-1], states[:, :-1], _ctx(qs[:, :-1], acts[:, :-1], obs[:, :-1]))  # (B, T-1, K)
    tgt = target(chosen[:, 1:], states[:, 1:], _ctx(qs[:, 1:], acts[:, 1:], obs[:, 1:], is_target=True))
    assert torch.equal(out[:, 1:], tgt[:, :-1])
    again = online(chosen[:, :-1], states[:, :-1], _ctx(qs[:, :-1], acts[:, :-1], obs[:, :-1]))
    assert not torch.equal(out, again)  # a new online call draws new sub-teams


def test_spatial_puts_nearby_agents_together():
    """Three well-separated pairs of agents, K = 6 -> ⌈K/2⌉ = 3 centroids: one sub-team per pair."""
    pos = torch.tensor([[0.0, 0.0], [9.0, 9.1], [0.2, 0.1], [-9.0, 9.0], [9.2, 9.0], [-9.1, 8.8]])
    order = [[1, 4], [0, 2], [3, 5]]
    groups = kmeans_assignment(pos.view(1, 1, 6, 2), 3)[0, 0]
    for a, b in order:
        assert groups[a] == groups[b]
    assert len({int(groups[a]) for a, _ in order}) == 3
    mixer = VASTMixer(_info(6, positions=True), _args(vast_assignment="spatial", vast_eta=1.0))
    assert mixer.n_centroids == 3
    layouts = torch.stack([pos, torch.zeros(6, 2)]).view(2, 1, 6, 2)  # the second: everyone at one spot
    got = mixer.assign(torch.zeros(2, 1, 5), None, {"positions": layouts})
    assert torch.equal(got[0, 0], groups) and torch.equal(got[1, 0], torch.zeros(6, dtype=torch.long))


def test_spatial_without_positions_and_qplex_are_one_line_errors(run_main):
    with pytest.raises(ConfigError, match="positions"):
        VASTMixer(_info(4), _args(vast_assignment="spatial"))
    code, _, err = run_main("vast", "matrix_game", "vast_assignment=spatial")
    assert code == 2 and [ln for ln in err.splitlines() if ln.startswith("error:")] == [
        "error: vast_assignment 'spatial' needs agent positions, but this env declares no 'positions' extras "
        "(battle, warehouse, po_spread, smax and sc2 do)"]
    code, _, err = run_main("vast", "matrix_game", "vast_mixer=qplex")
    assert code == 2 and "error: config key 'vast_mixer' must be one of il, vdn, qmix, qtran" in err


def _metagrad_case():
    torch.manual_seed(5)
    mixer = VASTMixer(_info(2, s=3, o=2), _args(vast_assignment="metagrad", vast_eta=1.0, vast_grad_norm_clip=1e9))
    for g in mixer.optimiser.param_groups:
        g["lr"] = 0.0  # keep the parameters: the gradient is what is checked
    states, obs = torch.randn(1, 3, 3), torch.randn(1, 3, 2, 2)
    mask = torch.tensor([[1.0, 1.0, 0.0]])  # the last step is padding
    return mixer, states, obs, mask


def _hand_gradient(mixer, states, obs, adv, mask, groups):
    """∂/∂(head) of −mean Â log π(k): ∂/∂logits = −Â (onehot(k) − π) / M, chained through the head."""
    with torch.no_grad():
        h = mixer.assigner.features(states, obs)  # (1, T, N, 128)
        pi = torch.softmax(mixer.assigner.head(h), -1)  # (1, T, N, K)
        m = mask.unsqueeze(-1).expand_as(adv)
        dlogits = -(adv * m).unsqueeze(-1) * (torch.nn.functional.one_hot(groups, 2) - pi) / m.sum()
        return dlogits.sum((0, 1, 2)), torch.einsum("btnk,btnh->kh", dlogits, h)


def test_metagrad_gradient_is_the_reinforce_gradient_of_eq6():
    mixer, states, obs, mask = _metagrad_case()
    adv = torch.tensor([[[1.5, -0.5], [2.0, 0.25], [7.0, 7.0]]])
    stats = mixer.assignment_step(states, obs, adv, mask)
    g_bias, g_weight = _hand_gradient(mixer, states, obs, adv, mask, mixer.last_assignment)
    assert torch.allclose(mixer.assigner.head.bias.grad, g_bias, atol=1e-6)
    assert torch.allclose(mixer.assigner.head.weight.grad, g_weight, atol=1e-6)
    assert stats["vast_advantage_mean"] == pytest.approx((1.5 - 0.5 + 2.0 + 0.25) / 4)
    assert 0.0 < stats["vast_assignment_entropy"] <= math.log(2) + 1e-6
    assert all(p.grad is None for p in mixer.inner.parameters())


def test_rollout_update_uses_returns_minus_expected_local_value():
    """Â = R_t − Σ_a π_i(a|τ_i) Q_i(τ_i, a) with π_i ε-greedy over the available actions."""
    mixer, states, obs, mask = _metagrad_case()
    info = dict(_info(2, a=3, s=3, o=2), episode_limit=2)
    batch = EpisodeBatch(build_scheme(info, compact_obs=False), 1, 3)
    batch.data["state"][:] = states.numpy()
    batch.data["obs"][:] = obs.numpy()
    batch.data["filled"][0, :2] = True
    batch.data["reward"][0, :2] = [1.0, 2.0]
    batch.data["avail_actions"][:] = True
    batch.data["avail_actions"][0, :, 1, 2] = False  # agent 1 cannot take action 2
    qs = torch.tensor([[1.0, 3.0, 0.0], [2.0, -1.0, 9.0]]).expand(1, 3, 2, 3)
    selector = EpsilonGreedySelector(SimpleNamespace(epsilon_start=0.2, epsilon_finish=0.2, epsilon_anneal_time=1,
                                                     test_epsilon=0.0))
    avail = torch.from_numpy(batch.data["avail_actions"])
    pi = selector.probs(qs, avail, t_env=0)
    torch.manual_seed(6)
    mixer.rollout_update(batch.to_torch("cpu", trim=False), 0, lambda: LocalPolicy(qs=qs, pi=pi))
    # R = [1 + 0.9 * 2, 2]; agent 0: 0.8*3 + 0.2*(1+3+0)/3; agent 1 (action 2 unavailable): 0.8*2 + 0.2*(2-1)/2
    baseline = torch.tensor([0.8 * 3 + 0.2 * 4 / 3, 0.8 * 2 + 0.2 * 1 / 2])
    adv = torch.stack([2.8 - baseline, 2.0 - baseline, torch.zeros(2)]).unsqueeze(0)
    assert mixer.last_assignment.shape == (1, 2, 2)  # the final observation (t = 2) is no action step
    g_bias, _ = _hand_gradient(mixer, states[:, :2], obs[:, :2], adv[:, :2], mask[:, :2], mixer.last_assignment)
    assert torch.allclose(mixer.assigner.head.bias.grad, g_bias, atol=1e-6)
    assert torch.allclose(pi.sum(-1), torch.ones(1, 3, 2)) and pi[0, 0, 1, 2] == 0
    returns = discounted_returns(torch.tensor([[1.0, 2.0, 5.0]]), mask, 0.9)
    assert torch.allclose(returns, torch.tensor([[2.8, 2.0, 0.0]]))


def test_policy_is_outside_the_td_optimiser_and_its_optimiser_state_is_checkpointed():
    mixer, states, obs, mask = _metagrad_case()
    policy = {id(p) for p in mixer.assigner.parameters()}
    assert policy and not policy & {id(p) for p in mixer.td_parameters()}
    config = load_config("vast", "matrix_game", ["vast_eta=1.0"])
    args = to_namespace(config)
    env_info = {"n_agents": 2, "n_actions": 3, "state_shape": 1, "obs_shape": 1, "episode_limit": 1, "extras": {}}
    learner = QLearner(MACS.get("basic_mac")(env_info, args, torch.device("cpu")), env_info, args, torch.device("cpu"))
    in_optimiser = {id(p) for g in learner.optimiser.param_groups for p in g["params"]}
    assert not in_optimiser & {id(p) for p in learner.mixer.assigner.parameters()}
    assert {id(p) for p in learner.mixer.inner.parameters()} <= in_optimiser
    mixer.assignment_step(states, obs, torch.randn(1, 3, 2), mask)
    fresh = VASTMixer(_info(2, s=3, o=2), _args(vast_assignment="metagrad", vast_eta=1.0))
    fresh.load_state_dict(mixer.state_dict())  # what the learner's checkpoint holds
    a, b = mixer.optimiser.state_dict()["state"], fresh.optimiser.state_dict()["state"]
    assert a and a.keys() == b.keys() and all(torch.equal(a[i]["exp_avg_sq"], b[i]["exp_avg_sq"]) for i in a)
    assert copy.deepcopy(mixer).state_dict()["_extra_state"] == {}  # the target copy carries no optimiser


def test_resume_is_identical_to_an_uninterrupted_run(run_main):
    n = 120
    common = [*RESUME, f"t_max={2 * n}", f"save_model_interval={n}"]
    code, straight, err = run_main("vast", "chain_test", *common)
    assert code == 0, err
    code, resumed, err = run_main("vast", "chain_test", *common, f"checkpoint_path={straight['models_dir']}",
                                  f"load_step={n}")
    assert code == 0, err
    a = load_checkpoint(find_checkpoint(straight["models_dir"], 0))["learner"]
    b = load_checkpoint(find_checkpoint(resumed["models_dir"], 0))["learner"]
    for k in a["mixer"]:
        if k != "_extra_state":
            assert torch.equal(a["mixer"][k], b["mixer"][k]), k
    sa, sb = a["mixer"]["_extra_state"]["optimiser"]["state"], b["mixer"]["_extra_state"]["optimiser"]["state"]
    assert all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)
    metrics = []
    for r in (straight, resumed):
        with open(os.path.join(r["results_dir"], "metrics.json")) as f:
            metrics.append(json.load(f))
    for key in ("loss", "vast_policy_loss", "test_return_mean"):
        assert metrics[0][key]["values"][-2:] == metrics[1][key]["values"][-2:], key


def test_dead_agents_and_padding_give_finite_values():
    """Padded steps (no action available: greedy values −inf) and empty sub-teams stay finite in every Ψ."""
    torch.manual_seed(7)
    for inner in ("il", "vdn", "qmix", "qtran"):
        mixer = VASTMixer(_info(4), _args(vast_mixer=inner, vast_eta=1.0, vast_assignment="random"))
        qs = torch.randn(2, 3, 4, 3, requires_grad=True)
        acts = torch.zeros(2, 3, 4, dtype=torch.long)
        ctx = _ctx(qs, acts, torch.randn(2, 3, 4, 2))
        ctx.greedy_qs = ctx.greedy_qs.clone()
        ctx.greedy_qs[1, 2] = -float("inf")  # a padded step
        ctx.mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
        chosen = qs[..., 0]
        out = mixer(chosen, torch.randn(2, 3, 5), ctx)
        aux = mixer.auxiliary_losses(ctx, states=torch.randn(2, 3, 5), targets=torch.zeros_like(out), q_taken=out)
        loss = out.sum() + sum(aux.values(), torch.zeros(()))
        loss.backward()
        assert torch.isfinite(out).all() and torch.isfinite(qs.grad).all(), inner


@pytest.mark.parametrize("strategy,inner", [("random", "qtran"), ("fixed", "qmix"), ("spatial", "il"),
                                            ("metagrad", "vdn"), ("metagrad", "qtran")])
def test_vast_trains_through_main_on_po_spread(run_main, strategy, inner):
    code, result, err = run_main("vast", "po_spread", "t_max=250", "vast_eta=1.0", f"vast_assignment={strategy}",
                                 f"vast_mixer={inner}", *FAST)
    assert code == 0, err
    assert result["t_env"] >= 250 and math.isfinite(result["test_return_mean"])
    assert "vast_subteams_active" in err and "loss" in err


@pytest.mark.parametrize("strategy,inner", [(x, "qtran") for x in ("random", "fixed", "spatial", "metagrad")]
                         + [("metagrad", m) for m in ("il", "vdn", "qmix")])
def test_vast_trains_on_smax_3m(run_main, strategy, inner):
    require("jaxmarl")
    code, result, err = run_main("vast", "smax", "env_args.map_name=3m", "runner=parallel", "batch_size_run=4",
                                 "t_max=300", "vast_eta=0.5", f"vast_assignment={strategy}", f"vast_mixer={inner}",
                                 *FAST)
    assert code == 0, err
    assert result["t_env"] >= 300 and 0.0 <= result["test_battle_won_mean"] <= 1.0
    assert "vast_subteams_active" in err
    assert ("vast_policy_loss" in err) == (strategy == "metagrad")
    assert ("aux_qtran_opt" in err) == (inner == "qtran")
