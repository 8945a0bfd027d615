"""The gymma adapter on lbforaging 2.0.0 and rware 2.0.0: shapes, time limits, seeding, action masks."""
from __future__ import annotations

import inspect
import os

import numpy as np
import pytest
import yaml

pytest.importorskip("gymnasium", reason="gymnasium is needed by the gymma adapter")

from concord.envs.base import step_single  # noqa: E402
from concord.envs.gymma import GymmaEnv  # noqa: E402
from concord.errors import ConfigError  # noqa: E402

LBF = "lbforaging:Foraging-8x8-2p-3f-v3"
RWARE = "rware:rware-tiny-2ag-v2"
YAML = os.path.join(os.path.dirname(__file__), "..", "config", "envs", "gymma.yaml")


def _needs(module: str) -> None:
    pytest.importorskip(module, reason=f"{module} is an optional env package (requirements.txt)")


def run_episode(env: GymmaEnv, rng: np.random.Generator, max_steps: int = 1000) -> dict[str, list]:
    """One episode with uniformly random available actions; checks shapes and masks at every step."""
    info = env.get_env_info()
    n, a = info["n_agents"], info["n_actions"]
    env.reset()
    out: dict[str, list] = {"obs": [env.get_obs().copy()], "reward": [], "end": None}
    for _ in range(max_steps):
        obs, state, avail = env.get_obs(), env.get_state(), env.get_avail_actions()
        assert obs.shape == (n, info["obs_shape"]) and obs.dtype == np.float32
        assert state.shape == (info["state_shape"],) and state.dtype == np.float32
        assert avail.shape == (n, a) and avail.dtype == bool and avail.any(axis=1).all()
        acts = np.array([rng.choice(np.flatnonzero(row)) for row in avail])
        reward, terminated, truncated, step_info = step_single(env, acts)
        out["obs"].append(env.get_obs().copy())
        out["reward"].append(reward)
        if terminated or truncated:
            out["end"] = (len(out["reward"]), terminated, truncated, step_info)
            return out
    raise AssertionError(f"episode did not end within {max_steps} steps")


def test_lbforaging_episode_shapes_and_state_is_obs_concat() -> None:
    _needs("lbforaging")
    env = GymmaEnv(seed=0, key=LBF, time_limit=50)
    info = env.get_env_info()
    assert (info["n_agents"], info["n_actions"], info["obs_shape"]) == (2, 6, 15)
    assert info["state_is_obs_concat"] and info["state_shape"] == 30
    ep = run_episode(env, np.random.default_rng(0))
    assert np.array_equal(env.get_state(), env.get_obs().reshape(-1))
    length, terminated, truncated, _ = ep["end"]
    assert length <= 50 and terminated != truncated


def test_lbforaging_time_limit_is_truncation_even_past_the_envs_own_limit() -> None:
    """lbforaging says terminated=True at its own max_episode_steps (50); with time_limit=60 the episode must
    run 60 steps and end as a time limit, not a terminal state."""
    _needs("lbforaging")
    env = GymmaEnv(seed=1, key=LBF, time_limit=60)
    env.reset()
    for t in range(1, 61):
        reward, terminated, truncated, info = step_single(env, np.zeros(2, dtype=np.int64))  # NONE: no food is ever taken
        assert reward == 0.0
        if t < 60:
            assert not (terminated or truncated) and info["episode_limit"] is False
    assert truncated and not terminated and info["episode_limit"] is True
    # SMAC convention on the raw step: the episode is over and episode_limit says why
    env.reset()
    for _ in range(59):
        env.step(np.zeros(2))
    assert env.step(np.zeros(2))[1] is True


def test_limit_kwarg_set_by_the_user_is_rejected() -> None:
    _needs("lbforaging")
    with pytest.raises(ConfigError, match="time_limit"):
        GymmaEnv(seed=0, key=LBF, env_kwargs={"max_episode_steps": 30})


def _crafted_lbf(use_action_masks: bool, reward_scalarisation: str = "sum", time_limit: int = 50) -> GymmaEnv:
    """5x5, one level-1 food at (2,2); player 0 at (2,1) next to it, player 1 in the corner (0,0)."""
    env = GymmaEnv(seed=0, key="lbforaging:Foraging-5x5-2p-1f-v3", time_limit=time_limit,
                   use_action_masks=use_action_masks, reward_scalarisation=reward_scalarisation)
    env.reset()
    u = env._env.unwrapped
    u.field[:] = 0
    u.field[2, 2] = 1
    u._food_spawned = 1
    for p, pos in zip(u.players, [(2, 1), (0, 0)]):
        p.position, p.level = pos, 1
    env.step(np.zeros(2))  # both NONE: the masks now describe the crafted state
    return env


def test_lbforaging_masks_follow_the_envs_valid_actions() -> None:
    _needs("lbforaging")
    env = _crafted_lbf(use_action_masks=True)
    none, north, south, west, east, load = range(6)
    avail = env.get_avail_actions()
    # player 0 at (2,1): food to the east blocks EAST, LOAD is possible
    assert avail[0].tolist() == [True, True, True, True, False, True]
    # player 1 at (0,0): no NORTH/WEST (border), no LOAD (no adjacent food)
    assert avail[1, [none, south, east]].all() and not avail[1, [north, west, load]].any()
    # unmasked: every action available
    assert _crafted_lbf(use_action_masks=False).get_avail_actions().all()


def test_lbforaging_food_cleared_is_terminal_not_episode_limit_and_scalarisation() -> None:
    _needs("lbforaging")
    # time_limit=2: the food is cleared on the last allowed step, which is still a terminal state
    for scalarisation, expected, time_limit in (("sum", 1.0, 50), ("mean", 0.5, 2)):
        env = _crafted_lbf(use_action_masks=True, reward_scalarisation=scalarisation, time_limit=time_limit)
        reward, terminated, truncated, info = step_single(env, np.array([5, 0]))  # player 0 LOADs the only food
        assert terminated and not truncated and info["episode_limit"] is False
        assert reward == pytest.approx(expected)  # normalised: player 0 gets 1, player 1 gets 0


def test_same_seed_same_trajectory_and_seed_matters() -> None:
    _needs("lbforaging")

    def two_episodes(seed: int) -> list[np.ndarray]:
        env, rng = GymmaEnv(seed=seed, key=LBF), np.random.default_rng(7)
        return [np.stack(run_episode(env, rng)["obs"]) for _ in range(2)]

    a, b, c = two_episodes(3), two_episodes(3), two_episodes(4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0][0], c[0][0])
    assert not np.array_equal(a[0][0], a[1][0])  # the second reset continues the env's np_random


def test_rng_state_round_trip_resumes_the_next_episode_exactly() -> None:
    _needs("lbforaging")
    env = GymmaEnv(seed=5, key=LBF)
    run_episode(env, np.random.default_rng(0))
    state = env.get_rng_state()
    expected = run_episode(env, np.random.default_rng(1))
    other = GymmaEnv(seed=99, key=LBF)  # never reset: the restored state must also skip the seeding reset
    other.set_rng_state(state)
    got = run_episode(other, np.random.default_rng(1))
    assert np.array_equal(np.stack(got["obs"]), np.stack(expected["obs"])) and got["reward"] == expected["reward"]
    fresh = run_episode(GymmaEnv(seed=99, key=LBF), np.random.default_rng(1))
    assert not np.array_equal(fresh["obs"][0], expected["obs"][0])


def test_rware_episode_truncates_at_time_limit_with_all_actions_available() -> None:
    _needs("rware")
    env = GymmaEnv(seed=0, key=RWARE, time_limit=20)
    info = env.get_env_info()
    assert (info["n_agents"], info["n_actions"], info["obs_shape"]) == (2, 5, 71) and info["state_is_obs_concat"]
    ep = run_episode(env, np.random.default_rng(0))
    assert ep["end"][:3] == (20, False, True) and ep["end"][3]["episode_limit"] is True
    assert env.get_avail_actions().all()  # rware 2.0.0 exposes no valid-action set


def test_rware_time_limit_above_its_own_max_steps() -> None:
    _needs("rware")
    env = GymmaEnv(seed=0, key=RWARE, time_limit=510)
    assert env._env.unwrapped.max_steps == 511  # the env's own (terminating) limit is moved past ours
    with pytest.raises(ConfigError, match="not a registered argument"):
        GymmaEnv(seed=0, key=RWARE, env_limit_kwarg="max_episode_steps")


def test_bad_inputs_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="reward_scalarisation"):
        GymmaEnv(seed=0, key=LBF, reward_scalarisation="max")
    with pytest.raises(ConfigError, match="could not be imported"):
        GymmaEnv(seed=0, key="no_such_module_xyz:Foo-v0")
    with pytest.raises(ConfigError, match="not a registered gymnasium id"):
        GymmaEnv(seed=0, key="gymnasium:NoSuchEnv-v0")


def test_yaml_declares_every_constructor_argument_with_its_default() -> None:
    with open(YAML) as f:
        cfg = yaml.safe_load(f)
    assert cfg["env"] == "gymma"
    params = {k: p.default for k, p in inspect.signature(GymmaEnv).parameters.items() if k != "seed"}
    declared = cfg["env_args"]
    assert set(declared) == set(params)
    assert {k: v for k, v in declared.items() if k != "env_kwargs"} == {k: v for k, v in params.items() if k != "env_kwargs"}


def test_registered_as_gymma() -> None:
    from concord.registry import ENVS

    assert ENVS.get("gymma") is GymmaEnv
