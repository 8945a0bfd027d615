"""Multi-access broadcast (dadc.md App. D.1): step rules, observations, seeding, batching, exact model, yaml."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest

from concord.envs.mabc import MABCEnv
from concord.errors import ConfigError
from tests.vecenv_checks import (
    check_batched_equals_single,
    check_seeding_and_rng_round_trip,
    check_yaml_declares_constructor_defaults,
)

YAML = Path(__file__).resolve().parents[1] / "config" / "envs" / "mabc.yaml"


def _env(buffers: tuple[int, int], channel: int, **kw: object) -> MABCEnv:
    env = MABCEnv(num_envs=1, seed=0, arrival_probs=[0.0, 0.0], **kw)  # no arrivals: buffers deterministic
    env.reset([0])
    env.buffers[0] = buffers
    env.channel[0] = channel
    return env


def test_both_transmitting_pay_twice_and_deliver_nothing() -> None:
    env = _env((1, 1), channel=0)  # idle channel
    res = env.step([0], [[1, 1]])
    assert res.reward[0] == pytest.approx(-0.8)  # -kappa (A1 + A2), no success: A1 xor A2 = 0
    np.testing.assert_array_equal(env.buffers[0], [1, 1])
    # both see their own buffer, the joint action (1, 1) and the channel of that slot (idle)
    np.testing.assert_array_equal(res.obs.obs[0], [[1, 1, 1, 1, 0], [1, 1, 1, 1, 0]])


@pytest.mark.parametrize(
    ("buffers", "channel", "action", "reward", "after"),
    [
        ((1, 1), 0, (1, 0), 0.6, (0, 1)),  # one transmits on an idle channel: -0.4 + 1, packet leaves
        ((1, 1), 0, (0, 1), 0.6, (1, 0)),
        ((1, 1), 1, (1, 0), -0.4, (1, 1)),  # busy channel: cost paid, packet stays
        ((1, 0), 0, (0, 0), 0.0, (1, 0)),
    ],
)
def test_step_rules(buffers: tuple[int, int], channel: int, action: tuple[int, int], reward: float,
                    after: tuple[int, int]) -> None:
    env = _env(buffers, channel)
    res = env.step([0], [action])
    assert res.reward[0] == pytest.approx(reward)
    np.testing.assert_array_equal(env.buffers[0], after)
    seen = [0, 0] if action == (0, 0) else [1 - channel, channel]
    np.testing.assert_array_equal(res.obs.obs[0, :, 1:], [[*action, *seen]] * 2)
    np.testing.assert_array_equal(res.obs.obs[0, :, 0], after)


def test_arrival_at_full_buffer_is_dropped_and_departure_makes_room() -> None:
    env = MABCEnv(num_envs=1, seed=0, arrival_probs=[1.0, 1.0])
    env.reset([0])
    env.buffers[0], env.channel[0] = (1, 1), 0
    env.step([0], [[1, 0]])
    np.testing.assert_array_equal(env.buffers[0], [1, 1])  # min(1 - 1 + 1, 1), min(1 + 1, 1)


@pytest.mark.parametrize("mode", ["mask", "noop"])
def test_transmit_with_empty_buffer(mode: str) -> None:
    env = _env((0, 1), channel=0, empty_transmit=mode)
    obs = env.reset([0])  # buffers (0, 0) after reset
    assert obs.avail_actions[0, :, 1].tolist() == ([False, False] if mode == "mask" else [True, True])
    env.buffers[0], env.channel[0] = (0, 1), 0
    res = env.step([0], [[1, 1]])  # device 1 has nothing: acts as "no transmit"
    assert res.reward[0] == pytest.approx(0.6)
    np.testing.assert_array_equal(env.buffers[0], [0, 0])
    np.testing.assert_array_equal(res.obs.obs[0, 0], [0, 0, 1, 1, 0])


def test_channel_and_arrival_statistics() -> None:
    env = MABCEnv(num_envs=500, seed=4)
    env.reset(range(500))
    env.channel[:250] = 0
    env.channel[250:] = 1
    env.step(range(500), np.zeros((500, 2), dtype=np.int64))
    stay_idle, stay_busy = (env.channel[:250] == 0).mean(), (env.channel[250:] == 1).mean()
    tol = 5 * np.sqrt(0.75 * 0.25 / 250)
    assert abs(stay_idle - 0.75) < tol and abs(stay_busy - 0.75) < tol
    p = env.buffers.mean(axis=0)  # buffers were empty: B' = W
    assert abs(p[0] - 0.3) < 5 * np.sqrt(0.21 / 500) and abs(p[1] - 0.6) < 5 * np.sqrt(0.24 / 500)


def test_truncation_and_discounted_return() -> None:
    env = MABCEnv(num_envs=1, seed=3, episode_limit=30, metric_gamma=0.9)
    obs = env.reset([0])
    rewards = []
    for t in range(30):
        res = env.step([0], obs.avail_actions[0, :, 1][None].astype(np.int64))  # transmit when holding a packet
        obs = res.obs
        rewards.append(float(res.reward[0]))
        assert not res.terminated[0] and res.truncated[0] == (t == 29)
    assert res.infos[0]["discounted_return"] == pytest.approx(sum(0.9**t * r for t, r in enumerate(rewards)), abs=1e-5)
    assert len(set(rewards)) > 1


def test_batched_subset_stepping_equals_single_envs() -> None:
    assert check_batched_equals_single(partial(MABCEnv, episode_limit=5), n_envs=3, seed=11, steps=40) > 0


def test_same_seed_same_trajectory_and_rng_state_round_trip() -> None:
    check_seeding_and_rng_round_trip(MABCEnv, steps=30)


def test_exact_model_matches_sampled_transitions_and_rewards() -> None:
    n_envs = 400
    env = MABCEnv(num_envs=n_envs, seed=7, empty_transmit="noop")
    model = env.tabular_model()
    assert model.T.shape == (8, 4, 8) and model.avail is None
    np.testing.assert_allclose(model.mu, [0.5, 0.5, 0, 0, 0, 0, 0, 0])
    env.reset(range(n_envs))
    counts = np.zeros_like(model.T)
    for a in np.random.default_rng(1).integers(0, 2, (100, n_envs, 2)):
        s = model.state_index(np.concatenate([env.buffers, env.channel[:, None]], axis=1))
        ai = model.action_index(a)
        res = env.step(range(n_envs), a)
        np.testing.assert_allclose(res.reward, model.R[s, ai], atol=1e-6)
        np.add.at(counts, (s, ai, model.state_index(np.concatenate([env.buffers, env.channel[:, None]], axis=1))), 1)
    visits = counts.sum(-1, keepdims=True)
    assert visits.min() > 100
    freq = counts / visits
    assert np.all(np.abs(freq - model.T) <= 5 * np.sqrt(model.T * (1 - model.T) / visits) + 1e-12)


def test_exact_model_hand_entries_and_mask() -> None:
    model = MABCEnv(num_envs=1, seed=0).tabular_model()
    s, a = model.state_index([1, 1, 0]), model.action_index([1, 1])
    assert (s, a) == (6, 3) and model.R[s, a] == pytest.approx(-0.8)
    # both transmit on idle: buffers stay full; S' = idle w.p. alpha0
    assert model.T[s, a, model.state_index([1, 1, 0])] == pytest.approx(0.75)
    s = model.state_index([1, 0, 0])  # device 1 sends alone on idle: B1' = W1 ~ Bern(0.3), B2' = W2 ~ Bern(0.6)
    assert model.T[s, model.action_index([1, 0]), model.state_index([0, 1, 1])] == pytest.approx(0.7 * 0.6 * 0.25)
    np.testing.assert_array_equal(model.avail[model.state_index([1, 0, 1])], [True, False, True, False])


def test_bad_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        MABCEnv(num_envs=1, empty_transmit="drop")
    with pytest.raises(ConfigError):
        MABCEnv(num_envs=1, arrival_probs=[0.3])


def test_yaml_declares_every_constructor_keyword_with_its_default() -> None:
    cfg = check_yaml_declares_constructor_defaults(YAML, MABCEnv)
    assert cfg["env"] == "mabc" and cfg["gamma"] == 0.9 == cfg["env_args"]["metric_gamma"]
