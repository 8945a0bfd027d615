"""Aloha (bn_dag_policies.md §7.1): collisions, arrivals, the documented options, seeding, batching, yaml."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest

from concord.envs.aloha import AlohaEnv, grid_adjacency
from concord.errors import ConfigError
from tests.vecenv_checks import (
    Policy,
    check_batched_equals_single,
    check_seeding_and_rng_round_trip,
    check_yaml_declares_constructor_defaults,
)

YAML = Path(__file__).resolve().parents[1] / "config" / "envs" / "aloha.yaml"


def _send(*islands: int) -> np.ndarray:
    a = np.zeros((1, 10), dtype=np.int64)
    a[0, list(islands)] = 1
    return a


def _env(**kw: object) -> AlohaEnv:
    env = AlohaEnv(num_envs=1, seed=0, arrival_prob=0.0, **kw)  # no arrivals: deterministic
    env.reset([0])
    return env


def test_grid_is_2x5_with_4_neighbours() -> None:
    adj = grid_adjacency(2, 5)
    assert adj.sum() == 2 * 13 and (adj == adj.T).all() and not adj.diagonal().any()
    assert adj[0, 1] and adj[0, 5] and adj[3, 8] and not adj[4, 5] and not adj[0, 6]


@pytest.mark.parametrize(
    ("senders", "reward", "delivered"),
    [
        ((0, 2), 0.2, (0, 2)),  # not neighbours: both delivered
        ((4, 5), 0.2, (4, 5)),  # row ends, not neighbours (the reference code's spurious edge is gone)
        ((0, 1), -20.0, ()),  # horizontal neighbours collide: -10 per colliding sender
        ((0, 5), -20.0, ()),  # vertical neighbours collide
        ((0, 1, 2), -30.0, ()),
        ((0, 1, 3), -19.9, (3,)),  # 0 and 1 collide, 3 gets through
    ],
)
def test_collision_rule(senders: tuple[int, ...], reward: float, delivered: tuple[int, ...]) -> None:
    env = _env()
    res = env.step([0], _send(*senders))
    assert res.reward[0] == pytest.approx(reward)
    expected = np.ones(10, dtype=np.int64)
    expected[list(delivered)] = 0  # a delivered message leaves the backlog; a collided one stays
    np.testing.assert_array_equal(env.backlog[0], expected)


def test_collision_penalty_per_event_counts_neighbour_pairs() -> None:
    env = _env(collision_penalty_per="event")
    assert env.step([0], _send(0, 1, 2)).reward[0] == pytest.approx(-20.0)  # pairs (0,1), (1,2)
    assert env.step([0], _send(0, 1, 5, 6)).reward[0] == pytest.approx(-40.0)  # a square has 4 edges


@pytest.mark.parametrize(("mode", "reward"), [("collide", -10.0), ("noop", 0.1), ("mask", 0.1)])
def test_send_with_empty_backlog(mode: str, reward: float) -> None:
    env = _env(empty_send=mode)
    env.backlog[0, 1] = 0
    res = env.step([0], _send(0, 1))  # island 1 has nothing to send, but its carrier jams island 0 in "collide"
    assert res.reward[0] == pytest.approx(reward)
    assert env.backlog[0, 0] == (1 if mode == "collide" else 0)
    send_ok = res.obs.avail_actions[0, :, 1]
    np.testing.assert_array_equal(send_ok, env.backlog[0] > 0 if mode == "mask" else np.ones(10, dtype=bool))
    assert res.obs.avail_actions[0, :, 0].all()


def test_arrivals_come_after_transmission_and_backlog_is_capped() -> None:
    env = AlohaEnv(num_envs=1, seed=0, arrival_prob=1.0, initial_backlog=0)
    env.reset([0])
    res = env.step([0], _send(0))  # nothing to send yet: the message arriving this step is not sent
    assert res.reward[0] == 0.0
    np.testing.assert_array_equal(env.backlog[0], 1)
    env.backlog[0, 3] = 5
    res = env.step([0], _send(0))
    assert res.reward[0] == pytest.approx(0.1)
    assert env.backlog[0, 0] == 1 and env.backlog[0, 3] == 5 and env.backlog[0, 9] == 2
    np.testing.assert_array_equal(res.obs.obs[0, :, 0], env.backlog[0])
    np.testing.assert_array_equal(res.obs.state[0], env.backlog[0])


def test_arrival_rate() -> None:
    env = AlohaEnv(num_envs=200, seed=1, initial_backlog=0, max_backlog=100)
    env.reset(range(200))
    for _ in range(10):
        env.step(range(200), np.zeros((200, 10), dtype=np.int64))
    n = 200 * 10
    assert abs(env.backlog.mean() - 10 * 0.6) < 5 * np.sqrt(10 * 0.6 * 0.4 / n)


def test_episode_truncated_at_25_with_counts_in_info() -> None:
    env = AlohaEnv(num_envs=1, seed=2)
    env.reset([0])
    total, ok = 0.0, 0
    for t in range(1, 26):
        res = env.step([0], _send(0, 1) if t == 1 else _send(7))
        total += float(res.reward[0])
        assert not res.terminated[0] and res.truncated[0] == (t == 25)
    assert res.infos[0]["collisions"] == 2
    assert total == pytest.approx(-20 + 0.1 * res.infos[0]["transmitted"], abs=1e-4)
    assert 15 <= res.infos[0]["transmitted"] <= 24


def _sending(p: float) -> Policy:
    """A policy in which each island sends with probability ``p``."""
    return lambda rng, avail: (rng.random(avail.shape[:2]) < p).astype(np.int64)


def test_batched_subset_stepping_equals_single_envs() -> None:
    make = partial(AlohaEnv, episode_limit=5, empty_send="mask")
    assert check_batched_equals_single(make, n_envs=3, seed=11, steps=40, policy=_sending(0.3)) > 0


def test_same_seed_same_trajectory_and_rng_state_round_trip() -> None:
    check_seeding_and_rng_round_trip(AlohaEnv, steps=25, policy=_sending(0.2))


def test_bad_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        AlohaEnv(num_envs=1, empty_send="drop")
    with pytest.raises(ConfigError):
        AlohaEnv(num_envs=1, initial_backlog=6, max_backlog=5)


def test_yaml_declares_every_constructor_keyword_with_its_default() -> None:
    assert check_yaml_declares_constructor_defaults(YAML, AlohaEnv)["env"] == "aloha"
