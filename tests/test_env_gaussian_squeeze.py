"""GaussianSqueeze[N] (vast.md §5.1): the reward formula, its optimum, batching and the yaml."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from concord.envs.gaussian_squeeze import GaussianSqueezeEnv, squeeze_value
from concord.errors import ConfigError
from tests.vecenv_checks import check_yaml_declares_constructor_defaults

YAML = Path(__file__).resolve().parents[1] / "config" / "envs" / "gaussian_squeeze.yaml"


def _profile(n_agents: int, total: int) -> np.ndarray:
    """A joint action (n_agents,) with actions in 0..9 summing to ``total``."""
    a = np.zeros(n_agents, dtype=np.int64)
    full, rest = divmod(total, 9)
    a[:full] = 9
    if rest:
        a[full] = rest
    return a


def test_reward_uses_sigma_squared_not_two_sigma_squared() -> None:
    env = GaussianSqueezeEnv(num_envs=3, seed=0, n_agents=200)
    env.reset([0, 1, 2])
    acts = np.stack([_profile(200, 0), _profile(200, 400), _profile(200, 600)])
    res = env.step([0, 1, 2], acts)
    # x = 0 -> 0; x = mu -> mu; x = mu + sigma -> (mu + sigma) / e (with 2 sigma^2 it would be / sqrt(e))
    np.testing.assert_allclose(res.reward, [0.0, 400.0, 600.0 / math.e], rtol=1e-6)
    assert [i["system_performance"] for i in res.infos] == pytest.approx([0.0, 400.0, 600.0 / math.e])
    assert [i["allocation"] for i in res.infos] == [0, 400, 600]


@pytest.mark.parametrize("n_agents", [200, 800])
def test_optimum_matches_brute_force_scan(n_agents: int) -> None:
    env = GaussianSqueezeEnv(num_envs=1, seed=0, n_agents=n_agents)
    xs = np.arange(9 * n_agents + 1)
    values = squeeze_value(xs, 400.0, 200.0)
    x_best, v_best = env.optimum()
    assert x_best == int(xs[np.argmax(values)]) == 445
    assert v_best == pytest.approx(values.max()) and v_best == pytest.approx(423.03, abs=0.005)
    env.reset([0])
    res = env.step([0], _profile(n_agents, 445)[None])
    assert res.reward[0] == pytest.approx(v_best, rel=1e-6)
    assert res.infos[0]["system_performance"] == pytest.approx(v_best)


def test_optimum_clipped_to_feasible_range_for_small_n() -> None:
    env = GaussianSqueezeEnv(num_envs=1, seed=0, n_agents=20)  # 9 N = 180 < 445
    xs = np.arange(181)
    assert env.optimum() == (180, pytest.approx(squeeze_value(xs, 400.0, 200.0).max()))


def test_single_step_episode_terminates_and_batch_rows_are_independent() -> None:
    n = 800
    batch = GaussianSqueezeEnv(num_envs=4, seed=0, n_agents=n)
    obs = batch.reset(range(4))
    assert obs.obs.shape == (4, n, 1) and obs.state.shape == (4, 1) and obs.avail_actions.all()
    acts = np.random.default_rng(0).integers(0, 2, (2, n))  # x near mu, GS far from 0
    res = batch.step([3, 1], acts)
    assert res.terminated.all() and not res.truncated.any()
    single = [GaussianSqueezeEnv(num_envs=1, seed=0, n_agents=n).step([0], a[None]).reward[0] for a in acts]
    np.testing.assert_array_equal(res.reward, single)
    np.testing.assert_allclose(res.reward, squeeze_value(acts.sum(1), 400.0, 200.0), rtol=1e-6)


def test_agent_id_observation() -> None:
    env = GaussianSqueezeEnv(num_envs=2, seed=0, n_agents=5, obs_type="agent_id")
    obs = env.reset([0, 1]).obs
    assert env.get_env_info()["obs_shape"] == 5
    np.testing.assert_array_equal(obs, np.stack([np.eye(5)] * 2))


def test_bad_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        GaussianSqueezeEnv(num_envs=1, obs_type="pixels")
    with pytest.raises(ConfigError):
        GaussianSqueezeEnv(num_envs=1, sigma=0.0)


def test_yaml_declares_every_constructor_keyword_with_its_default() -> None:
    assert check_yaml_declares_constructor_defaults(YAML, GaussianSqueezeEnv)["env"] == "gaussian_squeeze"
