"""BN-DAG (bn_dag_policies.md): DAG sampling, parent-conditioned sampling, stored-DAG log-probabilities, the
density regulariser and its annealing, the exact tabular BN policy gradient, and end-to-end runs."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from concord.components.action_selectors import masked_log_softmax
from concord.components.bn_tabular import (
    BNStructure,
    bn_policy_gradient,
    evaluate,
    joint_policy,
    local_policies,
    nash_gap,
    optimal_value,
)
from concord.components.density_anneal import DensityAnneal
from concord.components.episode_buffer import build_scheme
from concord.envs.coordination_game import CoordinationGameEnv
from concord.modules.dag import DAGLearner, fixed_dag, is_acyclic, sinkhorn
from tests.conftest import build_parts, require

SMALL = ["batch_size_run=4", "rollout_episodes=4", "test_nepisode=4", "use_tensorboard=False"]


def _parts(env: str, *updates: str):
    return build_parts("bn_dag", env, "seed=1", *updates)


def _rollout(args, runner, mac, t_env: int = 0, test_mode: bool = False):
    scheme = build_scheme(runner.env_info, False, mac.batch_fields())
    batch, _ = runner.run(mac, scheme, t_env, test_mode)
    return batch.to_torch("cpu")


# --- the DAG learner --------------------------------------------------------------------------------------
@pytest.mark.parametrize("perm_net", ["mlp", "deepset", "identity"])
def test_sampled_dags_are_acyclic_and_their_permutations_are_permutation_matrices(perm_net):
    torch.manual_seed(0)
    np.random.seed(0)
    n = 6
    learner = DAGLearner(n, 3, 16, "deepset" if perm_net == "mlp" else "mlp", perm_net, tau=1.0, sinkhorn_iters=30)
    obs = torch.randn(300, n, 3)
    s = learner.sample(obs, noise=True)
    edges, order = s["dag_edges"], s["dag_order"]
    assert edges.shape == (300, n, n) and set(np.unique(edges)) <= {0.0, 1.0}
    assert all(is_acyclic(g) for g in edges)
    assert all(sorted(o) == list(range(n)) for o in order)  # Π is a permutation matrix
    if perm_net == "identity":
        assert (order == np.arange(n)).all()
    else:
        assert len({tuple(o) for o in order}) > 10  # context- and noise-dependent orders
    pi = np.eye(n)[order]  # (k, N, N)
    assert np.allclose(pi.sum(1), 1) and np.allclose(pi.sum(2), 1)
    u = pi @ edges @ pi.transpose(0, 2, 1)  # back to positions: strictly upper triangular
    assert np.allclose(np.tril(u), 0)
    assert 0.2 < edges.sum() / (300 * n * (n - 1) / 2) < 0.8  # random logits: about half the possible edges
    # the straight-through rebuild has exactly the stored value and gradients to both nets
    t = {k: torch.from_numpy(v) for k, v in s.items()}
    g = learner.straight_through(obs, t["dag_edges"], t["dag_order"], t["dag_edge_noise"], t["dag_perm_noise"])
    assert torch.equal(g, t["dag_edges"])
    (g * torch.randn_like(g)).sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in learner.edge_net.parameters())
    if perm_net != "identity":
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in learner.perm_net.parameters())
    # Sinkhorn gives a doubly stochastic matrix
    ds = sinkhorn(torch.randn(4, n, n), 50)
    assert torch.allclose(ds.sum(-1), torch.ones(4, n), atol=1e-4) and torch.allclose(ds.sum(-2), torch.ones(4, n), atol=1e-4)


def test_fixed_dags_follow_the_papers_definitions():
    assert fixed_dag("line", 4).tolist() == [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]]
    assert fixed_dag("fully", 3).tolist() == [[0, 1, 1], [0, 0, 1], [0, 0, 0]]
    assert not fixed_dag("uncorrelated", 3).any()
    assert not is_acyclic(np.array([[0, 1], [1, 0]]))


# --- sampling in topological order ------------------------------------------------------------------------
@pytest.mark.parametrize("dag", ["learned", "line", "fully"])
def test_a_childs_input_holds_its_parents_sampled_actions_and_zeros_elsewhere(dag):
    _, runner, mac = _parts("aloha", f"bn_dag={dag}", "bn_parent_obs=True", "env_args.grid_shape=[1,4]")
    env = runner.vec_env
    n, a, d = mac.n_agents, mac.n_actions, runner.env_info["obs_shape"]
    d0 = mac.agent_input_dim(runner.env_info) - n * a - n * d
    calls = []
    step = mac._step_rows

    def spy(x, h, agents):
        calls.append((x.clone(), agents.copy()))
        return step(x, h, agents)

    mac._step_rows = spy
    mac.init_hidden(1)
    obs = env.reset(np.arange(1))
    n_children = 0
    for _ in range(30):
        calls.clear()
        actions, out = mac.select_actions(obs, np.full((1, n), -1), np.arange(1), t_env=0)
        edges = out["dag_edges"][0] if dag == "learned" else fixed_dag(dag, n)
        seen: set[int] = set()
        for x, agents in calls:
            if len(seen) == n:
                break  # the KL pass with the empty DAG follows the sampling passes
            for row, i in zip(x, agents):
                assert i not in seen
                seen.add(int(i))
                par = edges[:, i]  # (N,)
                slots = row[d0:d0 + n * a].view(n, a).numpy()
                assert np.array_equal(slots, par[:, None] * np.eye(a)[actions[0]])
                oslots = row[d0 + n * a:].view(n, d).numpy()
                assert np.allclose(oslots, par[:, None] * obs.obs[0])
                n_children += int(par.any())
        assert seen == set(range(n))
        obs = env.step(np.arange(1), actions).obs
    assert n_children > 0


def test_with_the_empty_dag_the_joint_log_prob_is_the_sum_of_independent_log_probs():
    args, runner, mac = _parts("coordination_game", "env_args.n_agents=4", "batch_size_run=3")
    with mac.decentralised():
        data = _rollout(args, runner, mac)
    assert not data["dag_edges"].any()
    valid = data["filled"][:, :-1] > 0
    # each agent alone on its own input (empty parent slots), all agents in one batched pass
    base = mac.build_inputs(data["obs"], mac.shifted_actions(data["actions"]))  # (B, T, N, d0)
    x = torch.cat([base, torch.zeros(*base.shape[:-1], mac.input_dim - base.shape[-1])], -1)
    with torch.no_grad():
        logits, _ = mac.agent(x.flatten(0, 2).unsqueeze(1), mac.agent.init_hidden(x[..., 0].numel()))
    lp = masked_log_softmax(logits.view(*base.shape[:-1], -1), data["avail_actions"])
    indep = lp.gather(-1, data["actions"].unsqueeze(-1)).squeeze(-1)[:, :-1]  # (B, T-1, N)
    stored = data["log_prob"][:, :-1]
    assert torch.allclose(stored.sum(-1)[valid], indep.sum(-1)[valid], atol=1e-5)
    # and with an empty DAG an agent's log-prob does not depend on the others' actions
    args, runner, mac = _parts("coordination_game", "env_args.n_agents=4", "bn_dag=uncorrelated", "batch_size_run=3")
    data = _rollout(args, runner, mac)
    flipped = dict(data, actions=data["actions"].clone())
    flipped["actions"][..., 1:] = 1 - flipped["actions"][..., 1:]
    with torch.no_grad():
        l1, _ = mac.forward_seq(data)
        l2, _ = mac.forward_seq(flipped)
    assert torch.equal(l1[..., 0, :], l2[..., 0, :])


@pytest.mark.parametrize("env,updates", [
    ("coordination_game", ["env_args.n_agents=5", "bn_edge_net=deepset"]),
    ("coordination_game", ["env_args.n_agents=3", "agent=rnn", "obs_last_action=True"]),
    ("aloha", ["bn_parent_obs=True", "bn_perm_net=identity"]),
    ("coordination_game", ["env_args.n_agents=4", "bn_dag=fully"]),
    ("coordination_game", ["env_args.n_agents=3", "agent_shared=False", "bn_perm_net=deepset"]),
])
def test_log_probs_recomputed_under_the_stored_dag_equal_those_at_sampling(env, updates):
    args, runner, mac = _parts(env, *updates)
    data = _rollout(args, runner, mac)
    logits, _ = mac.forward_seq(data)  # (B, T, N, A)
    log_p = masked_log_softmax(logits[:, :-1], data["avail_actions"][:, :-1])
    log_p = log_p.gather(-1, data["actions"][:, :-1].unsqueeze(-1)).squeeze(-1)  # (B, T-1, N)
    valid = data["filled"][:, :-1] > 0
    assert torch.allclose(log_p[valid], data["log_prob"][:, :-1][valid], atol=1e-5)
    if mac.dag_learner is not None:
        assert data["dag_edges"][:, :-1][valid].sum() > 0
        # the parents' actions matter: with the DAG dropped the recomputed log-probs change
        no_dag = dict(data, dag_edges=torch.zeros_like(data["dag_edges"]))
        with torch.no_grad():
            l0, _ = mac.forward_seq(no_dag)
        assert not torch.allclose(l0[:, :-1][valid], logits.detach()[:, :-1][valid])
        # the joint log-prob's gradient reaches the DAG nets through the straight-through DAG
        log_p[valid].sum().backward()
        assert sum(float(p.grad.abs().sum()) for p in mac.dag_learner.parameters() if p.grad is not None) > 0


# --- the density regulariser -----------------------------------------------------------------------------
def test_annealing_schedule_follows_section_7_4_4():
    s = DensityAnneal("anneal", 1000, 0.4, 0.7, 0.8, eta0=1.0, alpha0=0.1, alpha1=1.0, eta_steps=40, alpha_steps=40)
    assert s(0) == (0.1, 1.0) and s(399) == (0.1, 1.0)
    etas = [s(t)[1] for t in range(400, 700)]
    assert etas[0] == 1.0 and len(set(etas)) == 40 and all(x >= y for x, y in itertools.pairwise(etas))
    assert s(699)[1] == pytest.approx(1 / 40) and s(700) == (0.1, 0.0)
    alphas = [s(t)[0] for t in range(700, 800)]
    assert len(set(alphas)) == 40 and s(800) == (1.0, 0.0) and s(10**6) == (1.0, 0.0)
    assert DensityAnneal("none", 1000, 0.4, 0.7, 0.8, 1.0, 0.1, 1.0, 40, 40)(900)[0] == 0.0


def test_density_regulariser_is_alpha_times_the_distance_to_eta_and_pulls_density():
    args, runner, mac = _parts("coordination_game", "env_args.n_agents=4", "t_max=1000")
    data = _rollout(args, runner, mac)
    valid = data["filled"][:, :-1]
    rho = float((data["dag_edges"][:, :-1].sum((-1, -2)) * 2 / 12 * valid).sum() / valid.sum())
    for t_env, (alpha, eta) in ((0, (0.1, 1.0)), (750, (0.55, 0.0)), (900, (1.0, 0.0))):
        assert mac.anneal(t_env) == pytest.approx((alpha, eta), abs=0.03)
        terms = mac.policy_losses(data, t_env)
        a, e = mac.anneal(t_env)
        assert terms["density_reg"].item() == pytest.approx(a * abs(rho - e), rel=1e-5)
    # gradient descent on the regulariser with η = 0 lowers the edge logits, hence the density
    opt = torch.optim.Adam(mac.dag_learner.parameters(), lr=0.05)
    for _ in range(30):
        opt.zero_grad()
        mac.policy_losses(data, 900)["density_reg"].backward()
        opt.step()
    after = _rollout(args, runner, mac)
    v2 = after["filled"][:, :-1]
    rho2 = float((after["dag_edges"][:, :-1].sum((-1, -2)) * 2 / 12 * v2).sum() / v2.sum())
    assert rho2 < rho - 0.2
    assert mac.policy_losses(data, 0) and _parts("coordination_game", "bn_dag=fully")[2].policy_losses(data, 0) == {}


def test_rollout_stats_log_density_and_kl_to_the_empty_dag():
    args, runner, mac = _parts("coordination_game", "env_args.n_agents=3", "bn_dag=fully")
    _rollout(args, runner, mac)
    s = mac.stats()
    assert s["dag_density"] == pytest.approx(1.0) and s["bn_kl_empty"] > 0
    args, runner, mac = _parts("coordination_game", "env_args.n_agents=3", "bn_dag=uncorrelated")
    _rollout(args, runner, mac)
    s = mac.stats()
    assert s["dag_density"] == 0.0 and s["bn_kl_empty"] == 0.0


# --- the exact tabular BN policy gradient (Lemma 5.1) ------------------------------------------------------
@pytest.mark.parametrize("dag", ["uncorrelated", "line", "fully"])
def test_tabular_bn_gradient_matches_finite_differences(dag):
    model = CoordinationGameEnv(1, 0, n_agents=2).tabular_model()
    bn = BNStructure.of(model, fixed_dag(dag, 2))
    theta = bn.init_params(model.n_states, np.random.default_rng(3))
    grads, _ = bn_policy_gradient(model, bn, theta, 0.95)
    h = 1e-6
    for i in range(2):
        for idx in np.ndindex(theta[i].shape):
            plus = [t.copy() for t in theta]
            minus = [t.copy() for t in theta]
            plus[i][idx] += h
            minus[i][idx] -= h
            fd = (bn_policy_gradient(model, bn, plus, 0.95)[1] - bn_policy_gradient(model, bn, minus, 0.95)[1]) / (2 * h)
            assert grads[i][idx] == pytest.approx(fd, abs=1e-6)
    assert theta[1].shape == (4, 1 if dag == "uncorrelated" else 2, 2)


def test_tabular_poa_and_nash_gap():
    model = CoordinationGameEnv(1, 0, n_agents=2).tabular_model()
    j_star = optimal_value(model, 0.95)
    bn = BNStructure.of(model, fixed_dag("uncorrelated", 2))
    # "always action 0" is optimal (all agents in state 0 pays 3): PoA 1, and a Nash policy
    theta = [np.stack([np.zeros((4, 1)), -50 * np.ones((4, 1))], -1) for _ in range(2)]
    v, _, _ = evaluate(model, joint_policy(local_policies(theta), bn), 0.95)
    assert float(model.mu @ v) / j_star == pytest.approx(1.0, abs=1e-9)
    assert nash_gap(model, bn, theta, 0.95) == pytest.approx(0.0, abs=1e-9)
    # a uniform policy is far from Nash: one agent alone can gain
    uniform = [np.zeros((4, 1, 2)) for _ in range(2)]
    assert nash_gap(model, bn, uniform, 0.95) > 1.0
    # gradient ascent raises the value
    rng = np.random.default_rng(0)
    theta = bn.init_params(4, rng)
    v0 = bn_policy_gradient(model, bn, theta, 0.95)[1]
    for _ in range(50):
        g, _ = bn_policy_gradient(model, bn, theta, 0.95)
        theta = [t + 0.01 * gi for t, gi in zip(theta, g)]
    assert bn_policy_gradient(model, bn, theta, 0.95)[1] > v0


# --- end to end -----------------------------------------------------------------------------------------
DAG_OPTIONS = ["learned", "uncorrelated", "line", "fully"]


@pytest.mark.parametrize("dag", DAG_OPTIONS)
def test_bn_dag_trains_end_to_end_on_the_coordination_game(run_main, dag):
    code, result, err = run_main("bn_dag", "coordination_game", "t_max=400", f"bn_dag={dag}", "env_args.n_agents=3",
                                 "bn_edge_net=deepset", *SMALL)
    assert code == 0, err
    assert result["t_env"] >= 400 and "test_decentralised_return_mean" in result
    assert result["test_decentralisation_gap"] == pytest.approx(
        result["test_return_mean"] - result["test_decentralised_return_mean"])
    assert "dag_density" in err and "policy_loss" in err
    assert ("aux_density_reg" in err) == (dag == "learned")


@pytest.mark.parametrize("dag", DAG_OPTIONS)
def test_bn_dag_trains_end_to_end_on_aloha(run_main, dag):
    code, result, err = run_main("bn_dag", "aloha", "t_max=200", f"bn_dag={dag}", "bn_parent_obs=True",
                                 "bn_regulariser=none", *SMALL)
    assert code == 0, err
    assert result["t_env"] >= 200 and "test_decentralised_collisions_mean" in result


@pytest.mark.slow  # jaxmarl's import and the first jit take ~45 s
@pytest.mark.parametrize("dag", DAG_OPTIONS)
def test_bn_dag_trains_end_to_end_on_smax_3m(run_main, dag):
    require("jaxmarl")
    code, result, err = run_main("bn_dag", "smax", "env_args.map_name=3m", "t_max=200", f"bn_dag={dag}",
                                 "bn_perm_net=identity", *SMALL)
    assert code == 0, err
    assert result["t_env"] >= 200 and 0.0 <= result["test_decentralised_battle_won_mean"] <= 1.0


def test_decentralised_test_trainer_needs_a_controller_with_decentralised_execution(run_main):
    code, _, err = run_main("mappo", "coordination_game", "t_max=100", "trainer=decentralised_test")
    assert code != 0 and "decentralised execution" in err
