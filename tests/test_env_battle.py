"""Battle[N] (VAST §5.1): rules on hand-built situations, seeding, batching, rng round trip."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest

from concord.envs.battle import ATTACK, BattleEnv
from concord.envs.gridworld import NOOP
from concord.errors import ConfigError
from concord.registry import ENVS
from tests.vecenv_checks import (
    check_batched_equals_single,
    check_seeding_and_rng_round_trip,
    check_yaml_declares_constructor_defaults,
)

CONFIG = Path(__file__).resolve().parents[1] / "config" / "envs"

FAR = (9, 9)  # a corner more than 3 cells from every learner used below


def make(**kw) -> BattleEnv:
    env = BattleEnv(num_envs=1, seed=0, n_agents=20, **kw)
    env.reset([0])
    return env


def place(env: BattleEnv, learners: list[tuple[tuple[int, int], float]], opponents: list[tuple[tuple[int, int], float]]) -> None:
    """Env 0 holds exactly these living learners / opponents (agents 0, 1, ...); the rest are dead."""
    env.hp[0] = 0.0
    env.opp_hp[0] = 0.0
    for i, (p, h) in enumerate(learners):
        env.pos[0, i], env.hp[0, i] = p, h
    for i, (p, h) in enumerate(opponents):
        env.opp_pos[0, i], env.opp_hp[0, i] = p, h


def act(env: BattleEnv, **by_agent: int) -> np.ndarray:
    a = np.full((1, env.n_agents), NOOP)
    for key, v in by_agent.items():
        a[0, int(key[1:])] = v
    return a


def test_attack_on_an_empty_cell_costs_a_tenth() -> None:
    env = make()
    place(env, [((5, 0), 3.0)], [(FAR, 3.0)])
    res = env.step([0], act(env, a0=ATTACK))
    assert res.reward[0] == pytest.approx(-0.1)
    assert env.opp_hp[0, 0] == 3.0


def test_hit_then_counterattack_and_regeneration_order() -> None:
    # learner hits (+1); the opponent regenerates, then hits back (-0.5) from the shared cell
    env = make()
    place(env, [((5, 5), 3.0)], [((5, 5), 3.0), ((0, 9), 3.0)])
    res = env.step([0], act(env, a0=ATTACK))
    assert res.reward[0] == pytest.approx(0.5)
    assert env.opp_hp[0, 0] == pytest.approx(2.01)
    assert env.hp[0, 0] == pytest.approx(2.0)
    assert not res.terminated[0]


@pytest.mark.parametrize("kill_reward, expected", [(0.0, 1.0), (1.0, 2.0)])
def test_kill(kill_reward: float, expected: float) -> None:
    env = make(kill_reward=kill_reward)
    place(env, [((5, 5), 3.0)], [((5, 5), 1.0), (FAR, 3.0)])
    res = env.step([0], act(env, a0=ATTACK))
    assert res.reward[0] == pytest.approx(expected)
    assert env.opp_hp[0, 0] == 0.0 and env.kills[0] == 1
    assert env.hp[0, 0] == 3.0  # a dead opponent does not strike back


def test_extra_attackers_on_a_cleared_cell_get_nothing() -> None:
    env = make()
    place(env, [((5, 5), 3.0)] * 3, [((5, 5), 1.0), (FAR, 3.0)])
    res = env.step([0], act(env, a0=ATTACK, a1=ATTACK, a2=ATTACK))
    assert res.reward[0] == pytest.approx(1.0)  # one hit and kill, no -0.1 for the other two


def test_hits_spread_over_living_opponents_on_the_cell() -> None:
    # 4 attacks on a cell holding opponents with 1 and 3 HP: the first dies, so all 4 hits land
    env = make()
    place(env, [((5, 5), 3.0)] * 4, [((5, 5), 1.0), ((5, 5), 3.0), (FAR, 3.0)])
    res = env.step([0], act(env, a0=ATTACK, a1=ATTACK, a2=ATTACK, a3=ATTACK))
    assert env.opp_hp[0, 0] == 0.0 and env.opp_hp[0, 1] == 0.0
    assert res.reward[0] == pytest.approx(4.0)


@pytest.mark.parametrize("death_penalty, expected", [(0.0, -0.5), (1.0, -1.5)])
def test_death_and_the_dead(death_penalty: float, expected: float) -> None:
    env = make(death_penalty=death_penalty)
    # 0.5 HP: +0.01 regeneration, then the hit (at exactly 1 HP the regeneration would save it)
    place(env, [((5, 5), 0.5), ((0, 0), 3.0)], [((5, 5), 3.0)])
    res = env.step([0], act(env))
    assert res.reward[0] == pytest.approx(expected)
    assert env.hp[0, 0] == 0.0 and env.deaths[0] == 1
    assert not (res.obs.obs[0, 0] != 0).any()  # dead: zero observation, only the no-op
    assert res.obs.avail_actions[0, 0].tolist() == [True] + [False] * 5
    assert res.obs.avail_actions[0, 1].all()
    # a dead learner's attack is ignored: no -0.1
    place(env, [((0, 0), 3.0)], [(FAR, 3.0)])
    env.hp[0, 1] = 0.0
    res = env.step([0], act(env, a1=ATTACK))
    assert res.reward[0] == 0.0


@pytest.mark.parametrize("regen", [0.01, 0.1])
def test_regeneration(regen: float) -> None:
    env = make(regen=regen)
    place(env, [((5, 0), 2.0), ((6, 0), 3.0), ((7, 0), 0.5)], [(FAR, 3.0)])
    env.hp[0, 3] = 0.0  # dead stays dead
    for _ in range(3):
        env.step([0], act(env))
    assert env.hp[0, 0] == pytest.approx(2.0 + 3 * regen)
    assert env.hp[0, 1] == 3.0
    assert env.hp[0, 2] == pytest.approx(0.5 + 3 * regen)
    assert env.hp[0, 3] == 0.0


def test_episode_ends_when_an_army_is_dead() -> None:
    env = make()
    place(env, [((5, 5), 3.0), ((1, 1), 2.0)], [((5, 5), 1.0)])
    env.deaths[0] = 3
    res = env.step([0], act(env, a0=ATTACK))
    assert res.terminated[0] and not res.truncated[0]
    assert res.infos[0] == {"kills": 1, "deaths": 3, "kills_minus_deaths": -2}


def test_truncation_at_the_episode_limit() -> None:
    env = make(episode_limit=3)
    place(env, [((5, 0), 3.0)], [(FAR, 3.0)])
    for _ in range(2):
        res = env.step([0], act(env))
        assert not res.truncated[0] and res.infos[0] == {}
    res = env.step([0], act(env))
    assert res.truncated[0] and not res.terminated[0]
    assert res.infos[0]["episode_limit"] is True and res.infos[0]["kills_minus_deaths"] == 0


def test_opponent_moves_toward_a_learner_in_sight() -> None:
    for seed in range(5):
        env = BattleEnv(num_envs=1, seed=seed, n_agents=20)
        env.reset([0])
        place(env, [((5, 3), 3.0)], [((5, 1), 3.0)])  # west half: no drift; the learner is east
        env.step([0], act(env))
        assert env.opp_pos[0, 0].tolist() == [5, 2]


@pytest.mark.parametrize("drift", [True, False])
def test_opponent_west_drift(drift: bool) -> None:
    cols = set()
    for seed in range(12):
        env = BattleEnv(num_envs=1, seed=seed, n_agents=20, opponent_west_drift=drift)
        env.reset([0])
        place(env, [((5, 0), 3.0)], [((5, 8), 3.0)])  # east half, nobody in sight
        env.step([0], act(env))
        cols.add(int(env.opp_pos[0, 0, 1]))
    assert (cols == {7}) == drift


def test_observation_window_at_a_corner() -> None:
    env = make()
    place(env, [((0, 0), 1.5), ((1, 2), 3.0)], [((0, 1), 1.5), ((0, 0), 0.0)])
    o = env._observe(np.array([0])).obs[0, 0].reshape(4, 7, 7)
    own, ally, enemy, oob = o
    assert own[3, 3] == pytest.approx(0.5) and np.count_nonzero(own) == 1
    assert ally[4, 5] == pytest.approx(1.0) and np.count_nonzero(ally) == 1
    assert enemy[3, 4] == pytest.approx(0.5) and np.count_nonzero(enemy) == 1
    expected_oob = np.zeros((7, 7))
    expected_oob[:3, :] = 1.0
    expected_oob[:, :3] = 1.0
    np.testing.assert_array_equal(oob, expected_oob)
    s = env._observe(np.array([0]))
    assert s.state.shape == (1, 200) and s.state[0, 0] == pytest.approx(0.5)  # learners' HP at (0, 0)
    assert s.extras["positions"][0, 1].tolist() == [1.0, 2.0]


def _env_1_sits_out_every_third_step(t: int, rng: np.random.Generator, n_envs: int) -> list[int]:
    return [0, 1, 2] if t % 3 else [0, 2]


def test_batched_equals_single_and_subsets_leave_others_untouched() -> None:
    ends = check_batched_equals_single(
        partial(BattleEnv, n_agents=20), n_envs=3, seed=10, steps=120, pick_ids=_env_1_sits_out_every_third_step,
        action_seed=1, untouched=lambda env, i: (env.pos[i], env.hp[i], env.opp_hp[i]),
    )
    assert ends >= 2  # the comparison went through episode ends and resets


def test_same_seed_same_trajectory_and_rng_state_round_trip() -> None:
    check_seeding_and_rng_round_trip(partial(BattleEnv, n_agents=20), steps=40, seed=3)


def test_battle80_shapes_and_registry() -> None:
    env = ENVS.get("battle")(num_envs=2, seed=0, n_agents=80)
    o = env.reset([0, 1])
    info = env.get_env_info()
    assert o.obs.shape == (2, 80, info["obs_shape"]) and o.state.shape == (2, info["state_shape"])
    assert info["state_shape"] == 2 * 18 * 18 and info["extras"] == {"positions": (80, 2)}
    assert o.extras["positions"].shape == (2, 80, 2)
    with pytest.raises(ConfigError):
        BattleEnv(num_envs=1, seed=0, n_agents=30)


def test_yaml_declares_every_constructor_key() -> None:
    assert check_yaml_declares_constructor_defaults(CONFIG / "battle.yaml", BattleEnv)["env"] == "battle"
