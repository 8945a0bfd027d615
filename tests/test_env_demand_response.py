"""Demand response (dadc.md App. D.2): cost, kernels, seeding, batching, mean-field model, yaml."""
from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from concord.envs.demand_response import FORCE_OFF, FORCE_ON, NATURAL, DemandResponseEnv
from concord.errors import ConfigError
from tests.vecenv_checks import (
    check_batched_equals_single,
    check_seeding_and_rng_round_trip,
    check_yaml_declares_constructor_defaults,
)

YAML = Path(__file__).resolve().parents[1] / "config" / "envs" / "demand_response.yaml"
KL_P0_ZETA = (1 / 3) * math.log((1 / 3) / 0.7) + (2 / 3) * math.log((2 / 3) / 0.3)  # 0.2850


def test_cost_at_t0_is_kl_p0_zeta_without_forcing() -> None:
    assert KL_P0_ZETA == pytest.approx(0.2850, abs=5e-5)
    env = DemandResponseEnv(num_envs=1, seed=0, n_agents=99)
    env.reset([0])
    env.devices[0] = np.arange(99) >= 33  # M_0 = [33, 66] / 99 = P0 exactly
    res = env.step([0], np.full((1, 99), NATURAL))
    assert -res.reward[0] == pytest.approx(KL_P0_ZETA, abs=1e-6)
    model = DemandResponseEnv(num_envs=1, seed=0).mean_field_model()  # n = 100, P0 = stationary of D
    np.testing.assert_allclose(model.p0, [1 / 3, 2 / 3])
    natural = np.array([[1.0, 0, 0], [1.0, 0, 0]])
    assert -model.reward(model.p0, natural) == pytest.approx(KL_P0_ZETA)


def test_cost_with_forcing_uses_the_mean_field_before_the_transition() -> None:
    env = DemandResponseEnv(num_envs=1, seed=0, n_agents=4)
    env.reset([0])
    env.devices[0] = [0, 0, 1, 1]
    res = env.step([0], [[NATURAL, FORCE_OFF, FORCE_ON, FORCE_ON]])
    kl = 0.5 * math.log(0.5 / 0.7) + 0.5 * math.log(0.5 / 0.3)
    assert -res.reward[0] == pytest.approx((0.0 + 0.1 + 0.2 + 0.2) / 4 + kl, abs=1e-6)
    env.devices[0] = 0  # M = [1, 0]: 0 log 0 = 0
    res = env.step([0], np.full((1, 4), NATURAL))
    assert -res.reward[0] == pytest.approx(math.log(1 / 0.7), abs=1e-6)


def test_device_kernels_eqs_10_to_12() -> None:
    # per (action, state) the probability of being ON next; forcing keeps eps = 0.2 of natural D
    expected = {(NATURAL, 0): 0.75, (NATURAL, 1): 0.625, (FORCE_OFF, 0): 0.15, (FORCE_OFF, 1): 0.125,
                (FORCE_ON, 0): 0.95, (FORCE_ON, 1): 0.925}
    n_envs, n = 40, 100
    env = DemandResponseEnv(num_envs=n_envs, seed=2, n_agents=n)
    for (a, s), p in expected.items():
        env.reset(range(n_envs))
        env.devices[:] = s
        env.step(range(n_envs), np.full((n_envs, n), a))
        assert abs(env.devices.mean() - p) < 5 * math.sqrt(p * (1 - p) / (n_envs * n)), (a, s)


def test_observation_and_state_carry_own_state_and_mean_field() -> None:
    env = DemandResponseEnv(num_envs=2, seed=0, n_agents=5)
    obs = env.reset([0, 1])
    m = env.devices.mean(axis=1)
    np.testing.assert_allclose(obs.obs[:, :, 0], env.devices)
    np.testing.assert_allclose(obs.obs[:, :, 1], np.repeat(m[:, None], 5, axis=1), rtol=1e-6)
    np.testing.assert_allclose(obs.state, np.concatenate([env.devices, m[:, None]], axis=1), rtol=1e-6)


def test_truncation_and_discounted_return() -> None:
    env = DemandResponseEnv(num_envs=1, seed=3, episode_limit=20)
    env.reset([0])
    acts = np.random.default_rng(0).integers(0, 3, (20, 1, 100))
    rewards = []
    for t, a in enumerate(acts):
        res = env.step([0], a)
        rewards.append(float(res.reward[0]))
        assert not res.terminated[0] and res.truncated[0] == (t == 19)
    assert res.infos[0]["discounted_return"] == pytest.approx(sum(0.9**t * r for t, r in enumerate(rewards)), abs=1e-5)


def test_batched_subset_stepping_equals_single_envs() -> None:
    make = partial(DemandResponseEnv, n_agents=10, episode_limit=5)
    assert check_batched_equals_single(make, n_envs=3, seed=11, steps=40) > 0


def test_same_seed_same_trajectory_and_rng_state_round_trip() -> None:
    check_seeding_and_rng_round_trip(DemandResponseEnv, steps=10)


def test_mean_field_model_matches_sampled_counts_and_rewards() -> None:
    n, n_envs, k0 = 20, 2000, 5
    pi = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # OFF devices are forced ON, ON devices follow D
    env = DemandResponseEnv(num_envs=n_envs, seed=5, n_agents=n)
    model = env.mean_field_model()
    kernel = model.count_transition(pi)  # (n+1, n+1)
    np.testing.assert_allclose(kernel.sum(axis=1), 1.0)
    m = np.stack([1 - np.arange(n + 1) / n, np.arange(n + 1) / n], axis=1)
    np.testing.assert_allclose(kernel @ np.arange(n + 1), n * model.expected_next(m, pi)[:, 1])
    env.reset(range(n_envs))
    env.devices[:] = np.arange(n) >= n - k0  # k0 devices ON in every env
    acts = np.where(env.devices == 1, NATURAL, FORCE_ON)
    res = env.step(range(n_envs), acts)
    np.testing.assert_allclose(res.reward, model.count_reward(pi)[k0], atol=1e-6)
    freq = np.bincount(env.devices.sum(axis=1), minlength=n + 1) / n_envs
    p = kernel[k0]
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n_envs) + 1e-12)


def test_initial_count_distribution() -> None:
    env = DemandResponseEnv(num_envs=2000, seed=6, n_agents=10)
    env.reset(range(2000))
    p = env.mean_field_model().initial_count()
    freq = np.bincount(env.devices.sum(axis=1), minlength=11) / 2000
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / 2000) + 1e-12)


def test_bad_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        DemandResponseEnv(num_envs=1, natural_dynamics=[[0.5, 0.6], [0.5, 0.5]])
    with pytest.raises(ConfigError):
        DemandResponseEnv(num_envs=1, target=[0.7, 0.2])


def test_yaml_declares_every_constructor_keyword_with_its_default() -> None:
    cfg = check_yaml_declares_constructor_defaults(YAML, DemandResponseEnv)
    assert cfg["env"] == "demand_response" and cfg["gamma"] == 0.9 == cfg["env_args"]["metric_gamma"]
