"""DIALS local-form domains: GS = composition of the local dynamics, hand-built rules, batching, seeding, yamls."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from concord.dials.ials import IALSVecEnv
from concord.envs.dials_traffic import DialsTrafficEnv
from concord.envs.dials_warehouse import MOVE, SHELF, DialsWarehouseEnv, heuristic_actions
from concord.envs.local_form import take
from concord.errors import ConfigError
from tests.vecenv_checks import (
    check_batched_equals_single,
    check_seeding_and_rng_round_trip,
    check_yaml_declares_constructor_defaults,
)

CONFIG = Path(__file__).resolve().parents[1] / "config" / "envs"
ENVS = {"traffic": (DialsTrafficEnv, {"episode_limit": 40}), "warehouse": (DialsWarehouseEnv, {"episode_limit": 30})}


@pytest.mark.parametrize("domain", list(ENVS))
def test_batched_equals_single_seeding_and_yaml(domain):
    cls, kw = ENVS[domain]
    make = lambda n, seed: cls(num_envs=n, seed=seed, **kw)  # noqa: E731
    assert check_batched_equals_single(make, 3, seed=4, steps=90) > 0
    check_seeding_and_rng_round_trip(make, steps=50)
    check_yaml_declares_constructor_defaults(CONFIG / f"dials_{domain}.yaml", cls)


@pytest.mark.parametrize("domain", list(ENVS))
@pytest.mark.parametrize("n_agents", [4, 25])
def test_local_steps_region_by_region_equal_the_global_step(domain, n_agents):
    """Every learning region stepped alone by the local model, from its extracted local state with the GS's u_i
    (and, in the warehouse, the GS's spawn draws for its cells), gives the GS's next local state, reward, obs."""
    cls, kw = ENVS[domain]
    env = cls(num_envs=2, seed=7, n_agents=n_agents, **kw)
    env.reset([0, 1])
    rng = np.random.default_rng(0)
    moved = 0
    for _ in range(kw["episode_limit"] - 1):
        before = env.local_states([0, 1])
        acts = rng.integers(0, env.n_actions, (2, n_agents))
        res = env.step([0, 1], acts)
        after = env.local_states([0, 1])
        u = res.obs.extras["influence"].astype(np.int64)  # (2, N, M)
        for i in range(n_agents):
            noise = env.last_noise[:, env.learning[i]] if domain == "warehouse" else np.zeros((2, 0))
            y, r, o = env.local.step(take(before, (slice(None), i)), acts[:, i], u[:, i], noise)
            for key in y:
                np.testing.assert_array_equal(y[key], after[key][:, i], err_msg=f"{key} of region {i}")
            np.testing.assert_array_equal(r, res.obs.extras["agent_reward"][:, i])
            np.testing.assert_array_equal(o, res.obs.obs[:, i])
        np.testing.assert_allclose(res.reward, res.obs.extras["agent_reward"].mean(1), rtol=1e-6)
        moved += int(u.any())
    assert moved  # influence sources were active


class Replay:
    """A predictor that puts all its mass on given classes (the GS's recorded u)."""

    def __init__(self, n_classes):
        self.n_classes, self.u = n_classes, None

    def reset(self, env_ids):
        pass

    def probs(self, dset, env_ids):
        return np.eye(self.n_classes)[self.u]  # (1, M, C)


def test_an_ials_fed_the_gs_influence_reproduces_its_region():
    """GS and IALS differ only in where u_i comes from: with u_i replayed from the GS, an IALS is that region."""
    env = DialsTrafficEnv(num_envs=1, seed=3, n_agents=4, episode_limit=300)
    first = env.reset([0])
    pred = Replay(2)
    ials = IALSVecEnv(env.local, pred, 1, seed=0, agent=1)
    np.testing.assert_array_equal(ials.reset([0]).obs[0, 0], first.obs[0, 1])
    rng = np.random.default_rng(1)
    total = 0.0
    for t in range(300):
        acts = (rng.random((1, 4)) < 0.1).astype(np.int64)
        res = env.step([0], acts)
        pred.u = res.obs.extras["influence"][:, 1].astype(np.int64)
        local = ials.step([0], acts[:, 1:2])
        np.testing.assert_array_equal(local.obs.obs[0, 0], res.obs.obs[0, 1])
        assert local.reward[0] == res.obs.extras["agent_reward"][0, 1]
        total += local.reward[0]
    assert local.truncated[0] and total > 0


def _traffic(n_agents=4):
    env = DialsTrafficEnv(num_envs=1, seed=0, n_agents=n_agents, inflow_prob=0.0)
    env.reset([0])
    return env


def test_traffic_light_yellow_lasts_three_steps_and_ignores_actions():
    env = _traffic()
    light = lambda: env._env_obs(np.array([0]), np.zeros((1, 4, 8)), np.zeros((1, 4))).obs[0, 0, 36:]  # noqa: E731
    assert light().tolist() == [0, 0, 0, 1]  # NS green at reset
    env.step([0], np.array([[1, 0, 0, 0]]))
    for _ in range(2):
        assert light().tolist() == [0, 0, 1, 0]  # NS yellow
        env.step([0], np.array([[1, 1, 1, 1]]))  # ignored while yellow
    assert light().tolist() == [0, 0, 1, 0]
    env.step([0], np.array([[1, 0, 0, 0]]))  # ignored on the step the new green starts
    assert light().tolist() == [1, 0, 0, 0]  # EW green
    env.step([0], np.array([[1, 0, 0, 0]]))
    assert light().tolist() == [0, 1, 0, 0]  # EW yellow


def test_traffic_vehicle_crosses_on_green_into_the_next_region_and_spillback_blocks():
    env = _traffic()
    W = 0
    env.x["occ"][0, 0, W, 9] = True  # an eastbound car entering region 0 (south-west) from the west
    keep = np.zeros((1, 4), np.int64)
    for _ in range(9):
        env.step([0], keep)
    assert env.x["occ"][0, 0, W, 0]  # at the stop line after 9 free moves
    env.step([0], keep)
    assert env.x["occ"][0, 0, W, 0] and env.x["v"][0, 0, W, 0] == 0  # NS green: it waits
    env.x["axis"][0, 0] = 1  # EW green at region 0
    env.x["occ"][0, 1, W, 9] = True  # region 1's entry cell is occupied: spillback
    env.x["occ"][0, 1, W, 8] = True
    res = env.step([0], keep)
    assert env.x["occ"][0, 0, W, 0] and res.obs.extras["influence"][0, 0, 4 + W] == 1  # blocked downstream
    assert res.obs.extras["influence"][0, 1, W] == 1  # region 1 saw the arrival attempt
    env.x["occ"][0, 1, W] = False
    env.step([0], keep)
    assert not env.x["occ"][0, 0, W, 0] and env.x["occ"][0, 1, W, 9]  # crossed into region 1's W lane


def test_traffic_boundary_backlog_waits_for_a_free_entry_cell():
    env = DialsTrafficEnv(num_envs=1, seed=0, n_agents=4, inflow_prob=1.0, spillback_influence=False)
    env.reset([0])
    for _ in range(3):
        env.step([0], np.zeros((1, 4), np.int64))
    # every step each entry draws a car; one enters every other step (cell 9 is occupied on the others)
    assert env.backlog[0][env.entry].min() >= 1
    assert env.local.n_sources == 4
    with pytest.raises(ConfigError, match="perfect square"):
        DialsTrafficEnv(n_agents=8)


def test_warehouse_layout_moves_and_heuristic():
    env = DialsWarehouseEnv(num_envs=1, seed=0, n_agents=4)
    assert env.robots_per_side == 4 and env.n_shelves == 120 and env.learning.tolist() == [5, 6, 9, 10]
    assert (MOVE[0 * 5 + 1] == [1, 6, 1, 1]).all()  # shelf (0,1): only DOWN into the interior succeeds
    assert (MOVE[12] == [7, 17, 11, 13]).all()  # the centre moves freely
    x = {"pos": np.array([12, 12, 6]), "item": np.zeros((3, 12), bool), "wait": np.zeros((3, 12), np.int64)}
    x["item"][0, 7], x["wait"][0, 7] = True, 5  # (1, 4): right shelf
    x["item"][0, 0], x["wait"][0, 0] = True, 9  # (0, 1): older, top shelf
    x["item"][2, 0], x["wait"][2, 0] = True, 1  # region 2's robot is at (1, 1), below (0, 1)
    acts = heuristic_actions(x, np.array([0.0, 0.99, 0.0]))
    assert acts[0] == 0  # towards the oldest item (0, 1): UP to (1, 2) is the first shortest step tried
    assert acts[1] == 3  # no item: random (0.99 -> 3)
    assert acts[2] == 0  # UP onto the item
    assert SHELF[7] == (1, 4)


def test_warehouse_shared_shelf_is_one_item_for_both_regions():
    env = DialsWarehouseEnv(num_envs=1, seed=0, n_agents=4, item_prob=0.0)
    env.reset([0])
    env.item[0] = False
    g = env.shelf_index[5, 7]  # region 5's (1, 4) is region 6's (1, 0)
    assert g == env.shelf_index[6, 6]
    env.item[0, g] = True
    env.pos[0, 5] = 2 * 5 + 3  # robot 5 at (2, 3): RIGHT is (2, 4), not the item's cell
    env.pos[0, 6] = 1 * 5 + 1  # robot 6 at (1, 1): LEFT reaches (1, 0), the shared item
    res = env.step([0], np.array([[3, 2, 0, 0]]))
    assert res.obs.extras["agent_reward"][0, 1] == 1.0 and not env.item[0, g]
    assert res.obs.extras["influence"][0, 0, 0] == 0  # region 5 sees its right neighbour on its (1, 4)
    assert res.obs.extras["influence"][0, 1, 2] == 1  # region 6 sees its left neighbour on its (2, 0)
    assert res.obs.extras["influence"][0, 0, 1] == 3  # the robot below region 5 is not on the shared edge
