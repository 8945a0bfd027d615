"""Coordination game (bn_dag_policies.md §7.1, App. B.1): rules, seeding, batching, exact model, yaml."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest

from concord.envs.coordination_game import CoordinationGameEnv, reward_table
from concord.errors import ConfigError
from tests.vecenv_checks import (
    check_batched_equals_single,
    check_seeding_and_rng_round_trip,
    check_yaml_declares_constructor_defaults,
)

YAML = Path(__file__).resolve().parents[1] / "config" / "envs" / "coordination_game.yaml"

# r as a function of k = number of agents in state 1 (spec sheet §6, from App. B.1 Algorithm 1)
TABLES = {
    (2, "<="): [3, 0, 2], (2, "<"): [3, 0, 2],
    (3, "<="): [3, 0, 1, 2], (3, "<"): [3, 3, 2, 2],
    (5, "<="): [3, 3, 0, 1, 2, 2], (5, "<"): [3, 3, 0, 1, 2, 2],
}


@pytest.mark.parametrize(("n", "comparator"), list(TABLES))
def test_reward_tables_pinned_per_n(n: int, comparator: str) -> None:
    np.testing.assert_array_equal(reward_table(n, comparator), TABLES[n, comparator])
    # the env pays r(s_t) of the state *before* the transition, whatever the action
    env = CoordinationGameEnv(num_envs=n + 1, seed=0, n_agents=n, comparator=comparator)
    env.reset(range(n + 1))
    env.s[:] = np.arange(n)[None, :] < np.arange(n + 1)[:, None]  # row k has k agents in state 1
    res = env.step(range(n + 1), np.random.default_rng(1).integers(0, 2, (n + 1, n)))
    np.testing.assert_array_equal(res.reward, TABLES[n, comparator])


def test_transition_depends_only_on_own_action() -> None:
    # P(s'_i = 0 | a_i = 0) = 0.9 and P(s'_i = 0 | a_i = 1) = 0.1, whatever s
    env = CoordinationGameEnv(num_envs=400, seed=3, n_agents=2)
    env.reset(range(400))
    counts = np.zeros((2, 2, 2))  # (s_i, a_i, s'_i)
    acts = np.random.default_rng(0).integers(0, 2, (50, 400, 2))
    for a in acts:
        s = env.s.copy()
        env.step(range(400), a)
        np.add.at(counts, (s.ravel(), a.ravel(), env.s.ravel()), 1)
    p0 = counts[..., 0] / counts.sum(-1)  # (s_i, a_i) empirical P(s'_i = 0)
    n = counts.sum(-1)
    expected = np.array([[0.9, 0.1], [0.9, 0.1]])
    assert np.all(np.abs(p0 - expected) < 5 * np.sqrt(expected * (1 - expected) / n))


def test_observation_is_the_global_state_and_episode_is_truncated_at_20() -> None:
    env = CoordinationGameEnv(num_envs=2, seed=0, n_agents=3)
    obs = env.reset([0, 1])
    np.testing.assert_array_equal(obs.obs, np.repeat(env.s[:, None, :], 3, axis=1))
    np.testing.assert_array_equal(obs.state, env.s)
    for t in range(1, 21):
        res = env.step([0, 1], np.ones((2, 3), dtype=np.int64))
        assert not res.terminated.any()
        assert res.truncated.all() == (t == 20) and res.truncated.any() == (t == 20)


def test_initial_state_is_uniform() -> None:
    env = CoordinationGameEnv(num_envs=4000, seed=5, n_agents=2)
    env.reset(range(4000))
    counts = np.bincount(env.s[:, 0] * 2 + env.s[:, 1], minlength=4)
    assert np.all(np.abs(counts - 1000) < 5 * np.sqrt(4000 * 0.25 * 0.75))


def test_batched_subset_stepping_equals_single_envs() -> None:
    make = partial(CoordinationGameEnv, n_agents=3, episode_limit=4)
    assert check_batched_equals_single(make, n_envs=3, seed=11, steps=40) > 0  # through episode ends


def test_same_seed_same_trajectory_and_rng_state_round_trip() -> None:
    check_seeding_and_rng_round_trip(partial(CoordinationGameEnv, n_agents=5), steps=20)


@pytest.mark.parametrize("n", [2, 3])
def test_exact_model_matches_sampled_transitions_and_rewards(n: int) -> None:
    env = CoordinationGameEnv(num_envs=300, seed=9, n_agents=n)
    model = env.tabular_model()
    env.reset(range(300))
    counts = np.zeros_like(model.T)
    acts = np.random.default_rng(1).integers(0, 2, (60, 300, n))
    for a in acts:
        s = model.state_index(env.s)
        ai = model.action_index(a)
        res = env.step(range(300), a)
        np.testing.assert_array_equal(res.reward, model.R[s, ai])
        np.add.at(counts, (s, ai, model.state_index(env.s)), 1)
    visits = counts.sum(-1, keepdims=True)
    assert visits.min() > 200
    freq = counts / visits
    assert np.all(np.abs(freq - model.T) <= 5 * np.sqrt(model.T * (1 - model.T) / visits) + 1e-12)


def test_exact_model_index_order_and_n5_entries() -> None:
    model = CoordinationGameEnv(num_envs=1, seed=0, n_agents=5).tabular_model()
    assert model.T.shape == (32, 32, 32) and model.R.shape == (32, 32)
    np.testing.assert_allclose(model.mu, 1 / 32)
    assert model.state_index([1, 0, 0, 0, 0]) == 16  # agent 0 is the most significant bit
    all0, all1 = model.action_index([0] * 5), model.action_index([1] * 5)
    assert model.T[7, all0, 0] == pytest.approx(0.9**5) and model.T[7, all1, 0] == pytest.approx(0.1**5)
    s = model.state_index([1, 1, 0, 0, 1])  # T[s, a, s'] = prod_i P(s'_i | a_i)
    assert model.T[3, model.action_index([1, 0, 0, 1, 1]), s] == pytest.approx(0.9 * 0.1 * 0.9 * 0.1 * 0.9)
    k = model.state_of(np.arange(32)).sum(-1)
    np.testing.assert_array_equal(model.R[:, 5], np.array(TABLES[5, "<="])[k])


def test_bad_comparator_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        CoordinationGameEnv(num_envs=1, comparator="<<")


def test_yaml_declares_every_constructor_keyword_with_its_default() -> None:
    cfg = check_yaml_declares_constructor_defaults(YAML, CoordinationGameEnv)
    assert cfg["env"] == "coordination_game" and cfg["gamma"] == 0.95
