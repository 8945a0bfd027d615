"""Warehouse[N] (VAST §5.1): rules on hand-built situations, starts, views, seeding, batching."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest

from concord.envs.gridworld import EAST, NOOP, SOUTH, WEST
from concord.envs.warehouse import DROPOFF, WarehouseEnv
from concord.errors import ConfigError
from concord.registry import ENVS
from tests.vecenv_checks import (
    check_batched_equals_single,
    check_seeding_and_rng_round_trip,
    check_yaml_declares_constructor_defaults,
)

CONFIG = Path(__file__).resolve().parents[1] / "config" / "envs"

# Warehouse[4] map (row 0 on top):   # W #  /  . 1 .  /  3 # 4  /  . 2 .  /  # W #
STEP_COST = 4 * 0.01  # the time penalty of 4 robots


def make(seed: int = 0, **kw) -> WarehouseEnv:
    env = WarehouseEnv(num_envs=1, seed=seed, n_agents=4, **kw)
    env.reset([0])
    return env


def place(env: WarehouseEnv, positions: list[tuple[int, int]], need=None, returning=None) -> None:
    env.pos[0] = positions
    if need is not None:
        env.need[0] = need
    if returning is not None:
        env.returning[0] = returning


def act(*a: int) -> np.ndarray:
    return np.array([a])


PARKED = [(4, 1), (3, 0)]  # robots 2 and 3 out of the way


def test_delivery() -> None:
    env = make()
    place(env, [(1, 1), (1, 0)] + PARKED, need=[[1, 1, 1, 2]] + [[5, 0, 0, 0]] * 3, returning=[False] * 4)
    res = env.step([0], act(DROPOFF, NOOP, NOOP, NOOP))
    assert res.reward[0] == pytest.approx(1.0 - STEP_COST)
    assert env.need[0, 0].tolist() == [0, 1, 1, 2] and not env.returning[0, 0]
    res = env.step([0], act(DROPOFF, DROPOFF, NOOP, NOOP))  # kind 1 no longer needed; (1, 0) is floor
    assert res.reward[0] == pytest.approx(-STEP_COST)
    assert env.need[0, 0].tolist() == [0, 1, 1, 2]


def test_last_item_then_order_completion_and_metric() -> None:
    env = make(episode_limit=4)
    place(env, [(3, 1), (1, 0)] + PARKED, need=[[0, 1, 0, 0]] + [[5, 0, 0, 0]] * 3, returning=[False] * 4)
    res = env.step([0], act(DROPOFF, NOOP, NOOP, NOOP))  # the last item, at drop-off 2
    assert res.reward[0] == pytest.approx(1.0 - STEP_COST)
    assert env.returning[0, 0] and env.need[0, 0].sum() == 0
    res = env.step([0], act(SOUTH, NOOP, NOOP, NOOP))  # to the work station at (4, 1)? occupied
    assert res.reward[0] == pytest.approx(-0.5 - STEP_COST)
    env.pos[0, 2] = (1, 2)  # free the bottom work station
    env.step([0], act(SOUTH, NOOP, NOOP, NOOP))
    assert env.pos[0, 0].tolist() == [4, 1]
    res = env.step([0], act(DROPOFF, NOOP, NOOP, NOOP))  # order complete: +1 and a new order
    assert res.reward[0] == pytest.approx(1.0 - STEP_COST)
    assert not env.returning[0, 0] and env.need[0, 0].sum() == 5
    assert res.truncated[0] and not res.terminated[0]
    assert res.infos[0] == {"completed_orders": 1, "delivered_items": 1, "episode_limit": True}


def test_dropoff_at_a_station_before_all_items_does_nothing() -> None:
    env = make()
    place(env, [(0, 1), (1, 0)] + PARKED, need=[[1, 0, 0, 0]] * 4, returning=[False] * 4)
    res = env.step([0], act(DROPOFF, NOOP, NOOP, NOOP))
    assert res.reward[0] == pytest.approx(-STEP_COST) and env.need[0, 0].tolist() == [1, 0, 0, 0]


def test_collision_obstacle_and_border() -> None:
    env = make()
    place(env, [(1, 0), (1, 1)] + PARKED)
    res = env.step([0], act(EAST, NOOP, NOOP, NOOP))  # into robot 1
    assert res.reward[0] == pytest.approx(-0.5 - STEP_COST)
    assert env.pos[0, 0].tolist() == [1, 0]
    res = env.step([0], act(WEST, SOUTH, NOOP, NOOP))  # off the map; into the obstacle at (2, 1)
    assert res.reward[0] == pytest.approx(-STEP_COST)
    assert env.pos[0, :2].tolist() == [[1, 0], [1, 1]]


def test_robots_cannot_swap_through_each_other() -> None:
    for seed in range(4):
        env = make(seed)
        place(env, [(1, 0), (1, 1)] + PARKED)
        res = env.step([0], act(EAST, WEST, NOOP, NOOP))
        assert res.reward[0] == pytest.approx(-1.0 - STEP_COST)
        assert env.pos[0, :2].tolist() == [[1, 0], [1, 1]]


def test_sequential_random_order() -> None:
    # robot 0 follows robot 1 east: it gets in only when robot 1 happened to move first
    outcomes = set()
    for seed in range(20):
        env = make(seed)
        place(env, [(1, 0), (1, 1)] + PARKED)
        res = env.step([0], act(EAST, EAST, NOOP, NOOP))
        assert env.pos[0, 1].tolist() == [1, 2]
        followed = env.pos[0, 0].tolist() == [1, 1]
        assert res.reward[0] == pytest.approx(-STEP_COST if followed else -0.5 - STEP_COST)
        outcomes.add(followed)
    assert outcomes == {True, False}


def test_time_penalty_once_per_step() -> None:
    env = make(time_penalty_per_agent=False)
    res = env.step([0], act(NOOP, NOOP, NOOP, NOOP))
    assert res.reward[0] == pytest.approx(-0.01)


@pytest.mark.parametrize("n_agents, n_stations", [(4, 2), (8, 4), (16, 12)])
def test_starts_are_distinct_and_fill_the_work_stations(n_agents: int, n_stations: int) -> None:
    env = WarehouseEnv(num_envs=4, seed=1, n_agents=n_agents)
    env.reset(range(4))
    firsts = set()
    for e in range(4):
        p = env.pos[e]
        assert len({tuple(x) for x in p}) == n_agents
        assert env.walkable[p[:, 0], p[:, 1]].all()
        assert env.station[p[:, 0], p[:, 1]].sum() == n_stations
        assert (env.need[e].sum(-1) == 5).all() and not env.returning[e].any()
        firsts.add(tuple(p[0]))
    assert len(firsts) > 1  # random


def test_observation_window_at_the_border() -> None:
    env = make()
    place(env, [(0, 1), (1, 0)] + PARKED, need=[[2, 0, 1, 0]] * 4, returning=[False] * 4)
    obs = env._observe(np.array([0])).obs[0, 0].reshape(5, 5, 5)
    me = np.zeros((5, 5))
    me[2, 2] = 1
    np.testing.assert_array_equal(obs[0], me)
    np.testing.assert_array_equal(
        obs[1],
        [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 0, 1, 1], [1, 0, 0, 0, 1], [1, 0, 1, 0, 1]],
    )
    others = np.zeros((5, 5))
    others[3, 1] = 1  # robot 1 at (1, 0); robots 2, 3 are out of view
    np.testing.assert_array_equal(obs[2], others)
    targets = np.zeros((5, 5))
    targets[3, 2] = 2  # two items for drop-off 1 at (1, 1)
    targets[4, 1] = 1  # one for drop-off 3 at (2, 0); drop-off 4 is not needed
    np.testing.assert_array_equal(obs[3], targets)
    station = np.zeros((5, 5))
    station[2, 2] = 1
    np.testing.assert_array_equal(obs[4], station)
    env.need[0, 0] = 0
    env.returning[0, 0] = True
    obs = env._observe(np.array([0])).obs[0, 0].reshape(5, 5, 5)
    np.testing.assert_array_equal(obs[3], station)
    assert not obs[4].any()


def _env_1_sits_out_every_third_step(t: int, rng: np.random.Generator, n_envs: int) -> list[int]:
    return [0, 1, 2] if t % 3 else [2, 0]  # and the order flips


def test_batched_equals_single_and_subsets_leave_others_untouched() -> None:
    ends = check_batched_equals_single(
        partial(WarehouseEnv, n_agents=16, episode_limit=15), n_envs=3, seed=20, steps=50,
        pick_ids=_env_1_sits_out_every_third_step, action_seed=2, untouched=lambda env, i: (env.pos[i], env.need[i]),
    )
    assert ends >= 3


@pytest.mark.parametrize("n_agents, seed", [(8, 3), (4, 7)])
def test_same_seed_same_trajectory_and_rng_state_round_trip(n_agents: int, seed: int) -> None:
    check_seeding_and_rng_round_trip(partial(WarehouseEnv, n_agents=n_agents), steps=60, seed=seed)


def test_shapes_registry_and_bad_n() -> None:
    env = ENVS.get("warehouse")(num_envs=2, seed=0, n_agents=16)
    o = env.reset([0, 1])
    info = env.get_env_info()
    assert o.obs.shape == (2, 16, info["obs_shape"]) == (2, 16, 125)
    assert o.state.shape == (2, info["state_shape"]) and info["extras"] == {"positions": (16, 2)}
    assert (env.height, env.width) == (9, 13)
    with pytest.raises(ConfigError):
        WarehouseEnv(num_envs=1, seed=0, n_agents=5)


def test_yaml_declares_every_constructor_key() -> None:
    assert check_yaml_declares_constructor_defaults(CONFIG / "warehouse.yaml", WarehouseEnv)["env"] == "warehouse"
