"""The PettingZoo parallel-API adapter: mpe2 simple_spread, magent2 battle (small map), and a toy env for
deaths, masks and the fixed policy of uncontrolled agents."""
from __future__ import annotations

import inspect
import os

import numpy as np
import pytest
import yaml

pytest.importorskip("gymnasium", reason="gymnasium spaces are used by the pettingzoo adapter")

from gymnasium import spaces  # noqa: E402

from concord.envs.base import step_single  # noqa: E402
from concord.envs.pettingzoo_env import PettingZooEnv  # noqa: E402
from concord.errors import ConfigError  # noqa: E402

SPREAD = "mpe2.simple_spread_v3:parallel_env"
BATTLE = "magent2.environments.battle_v4:parallel_env"
YAML = os.path.join(os.path.dirname(__file__), "..", "config", "envs", "pettingzoo.yaml")


def _needs(module: str) -> None:
    pytest.importorskip(module, reason=f"{module} is an optional env package (requirements.txt)")


class ToyParallelEnv:
    """Deterministic parallel env: team ``a_0, a_1`` and opponent ``b_0``.

    ``a_1`` dies after step 2; ``a_0`` dies when it takes action 3; the env truncates everyone at
    ``max_cycles``. Masks: ``a_0`` never has action 2 (in its dict observation), ``b_0`` never has
    action 0 (in its info). Every joint action received is recorded.
    """

    possible_agents = ["a_0", "a_1", "b_0"]
    _box = spaces.Box(-10.0, 10.0, (2,), np.float32)

    def __init__(self, max_cycles: int = 6) -> None:
        self.max_cycles = max_cycles
        self.received: list[dict[str, int]] = []
        self.agents: list[str] = []

    def observation_space(self, agent: str) -> spaces.Space:
        if agent == "a_0":
            return spaces.Dict({"observation": self._box, "action_mask": spaces.MultiBinary(4)})
        return spaces.Box(-10.0, 10.0, (3,) if agent == "b_0" else (2,), np.float32)

    def action_space(self, agent: str) -> spaces.Space:
        return spaces.Discrete(3 if agent == "b_0" else 4)

    def _obs(self) -> tuple[dict, dict]:
        obs, infos = {}, {}
        for a in self.agents:
            o = np.full(3 if a == "b_0" else 2, self.t + 1 + self.possible_agents.index(a), np.float32)
            obs[a] = {"observation": o, "action_mask": np.array([1, 1, 0, 1], np.int8)} if a == "a_0" else o
            infos[a] = {"action_mask": np.array([0, 1, 1], np.int8)} if a == "b_0" else {}
        return obs, infos

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self.t, self.agents = 0, list(self.possible_agents)
        return self._obs()

    def step(self, actions: dict[str, int]) -> tuple[dict, dict, dict, dict, dict]:
        assert set(actions) == set(self.agents)
        self.received.append(dict(actions))
        self.t += 1
        rewards = {a: float(self.possible_agents.index(a) + 1) for a in self.agents}
        term = {a: (a == "a_1" and self.t >= 2) or (a == "a_0" and actions[a] == 3) for a in self.agents}
        trunc = {a: self.t >= self.max_cycles for a in self.agents}
        obs, infos = self._obs()
        self.agents = [a for a in self.agents if not (term[a] or trunc[a])]
        return obs, rewards, term, trunc, infos

    def close(self) -> None:
        pass


TOY = f"{__name__}:ToyParallelEnv"


def toy(**kw) -> PettingZooEnv:
    args = dict(key=TOY, env_kwargs={"max_cycles": 6}, time_limit=10, controlled_prefix="a_")
    args.update(kw)
    return PettingZooEnv(seed=0, **args)


def run_episode(env: PettingZooEnv, rng: np.random.Generator, max_steps: int = 2000) -> dict:
    """One episode of uniformly random available actions; checks shapes at every step."""
    info = env.get_env_info()
    n, a = info["n_agents"], info["n_actions"]
    env.reset()
    out: dict = {"obs": [env.get_obs().copy()], "reward": [], "end": None}
    for _ in range(max_steps):
        obs, state, avail = env.get_obs(), env.get_state(), env.get_avail_actions()
        assert obs.shape == (n, info["obs_shape"]) and obs.dtype == np.float32
        assert state.shape == (info["state_shape"],) and state.dtype == np.float32
        assert avail.shape == (n, a) and avail.dtype == bool and avail.any(axis=1).all()
        reward, terminated, truncated, step_info = step_single(env, [rng.choice(np.flatnonzero(r)) for r in avail])
        out["obs"].append(env.get_obs().copy())
        out["reward"].append(reward)
        if terminated or truncated:
            out["end"] = (len(out["reward"]), terminated, truncated, step_info)
            return out
    raise AssertionError(f"episode did not end within {max_steps} steps")


# --- toy env: semantics ---
def test_dead_agent_gets_zero_obs_and_only_the_noop() -> None:
    env = toy(noop_action=1)
    env.reset()
    assert env.get_env_info()["obs_shape"] == 2 and env.n_agents == 2  # b_0 (obs 3) is not controlled
    env.step(np.array([0, 0]))
    assert env.get_obs()[1].tolist() == [3.0, 3.0]
    env.step(np.array([0, 0]))  # a_1 dies after step 2
    assert not env.get_obs()[1].any() and env.get_avail_actions()[1].tolist() == [False, True, False, False]
    assert env.get_obs()[0].tolist() == [3.0, 3.0]


def test_masks_from_dict_observation_and_infos() -> None:
    env = toy()
    env.reset()
    assert env.get_avail_actions()[0].tolist() == [True, True, False, True]  # from a_0's dict observation
    assert env.get_avail_actions()[1].all()
    for _ in range(4):
        env.step(np.array([0, 1]))
    # the random fixed policy of b_0 honours the mask in its info (action 0 never available)
    assert {r["b_0"] for r in env._env.received} <= {1, 2}
    assert all("a_1" not in r for r in env._env.received[2:])  # dead agents are not asked to act


def test_noop_policy_and_reward_of_the_controlled_team() -> None:
    env = toy(uncontrolled_policy="noop", noop_action=2)
    env.reset()
    reward, *_ = step_single(env, np.array([0, 0]))
    assert reward == 1.0 + 2.0  # a_0 + a_1, not b_0
    assert env._env.received[0]["b_0"] == 2
    mean_env = toy(reward_scalarisation="mean")
    mean_env.reset()
    assert mean_env.step(np.array([0, 0]))[0] == 1.5


def test_team_killed_is_terminal_and_env_truncation_is_episode_limit() -> None:
    env = toy()
    env.reset()
    step_single(env, np.array([0, 0]))
    step_single(env, np.array([0, 0]))  # a_1 dead
    reward, terminated, truncated, info = step_single(env, np.array([3, 0]))  # a_0 dies: the team is gone
    assert terminated and not truncated and info["episode_limit"] is False
    env.reset()
    for t in range(1, 7):
        reward, terminated, truncated, info = step_single(env, np.array([0, 0]))
    assert (terminated, truncated, info["episode_limit"]) == (False, True, True)  # env's max_cycles 6
    assert env.get_obs()[0].tolist() == [7.0, 7.0]  # truncated, not dead: its last observation is kept
    short = toy(time_limit=4)
    short.reset()
    ends = [step_single(short, np.array([0, 0]))[1:3] for _ in range(4)]
    assert ends == [(False, False)] * 3 + [(False, True)]


def test_state_is_obs_concat_without_a_state_space() -> None:
    env = toy()
    env.reset()
    assert env.get_env_info()["state_is_obs_concat"]
    assert np.array_equal(env.get_state(), env.get_obs().reshape(-1))
    with pytest.raises(ConfigError, match="state_space"):
        toy(state_source="env")


def test_bad_inputs_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="module.path:callable"):
        PettingZooEnv(seed=0, key="mpe2.simple_spread_v3")
    with pytest.raises(ConfigError, match="matches none"):
        toy(controlled_prefix="zzz")
    with pytest.raises(ConfigError, match="noop_action"):
        toy(noop_action=3)  # b_0 has only 3 actions
    with pytest.raises(ConfigError, match="uncontrolled_policy"):
        toy(uncontrolled_policy="greedy")


# --- mpe2 simple_spread ---
def test_simple_spread_episode_state_and_truncation() -> None:
    _needs("mpe2")
    env = PettingZooEnv(seed=0, key=SPREAD, env_kwargs={"N": 3, "max_cycles": 25}, time_limit=25)
    info = env.get_env_info()
    assert (info["n_agents"], info["n_actions"], info["obs_shape"], info["state_shape"]) == (3, 5, 18, 54)
    assert not info["state_is_obs_concat"]
    ep = run_episode(env, np.random.default_rng(0))
    assert ep["end"][:3] == (25, False, True) and ep["end"][3]["episode_limit"] is True
    assert env.get_avail_actions().all() and env.get_obs().any()  # truncated agents keep their observation
    short = PettingZooEnv(seed=0, key=SPREAD, env_kwargs={"max_cycles": 25}, time_limit=10)
    assert run_episode(short, np.random.default_rng(0))["end"][:3] == (10, False, True)


def test_simple_spread_same_seed_same_trajectory() -> None:
    _needs("mpe2")

    def traj(seed: int) -> np.ndarray:
        env = PettingZooEnv(seed=seed, key=SPREAD, time_limit=8)
        rng = np.random.default_rng(1)
        return np.concatenate([np.stack(run_episode(env, rng)["obs"]) for _ in range(2)])

    a, b, c = traj(2), traj(2), traj(3)
    assert np.array_equal(a, b) and not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[0], a[9])  # second episode starts elsewhere


# --- magent2 battle on the smallest map ---
def battle(seed: int, **kw) -> PettingZooEnv:
    args = dict(key=BATTLE, env_kwargs={"map_size": 12, "max_cycles": 30}, time_limit=100,
                controlled_prefix="red_", noop_action=6)
    args.update(kw)
    return PettingZooEnv(seed=seed, **args)


def test_battle_small_map_episode() -> None:
    _needs("magent2")
    env = battle(0)
    info = env.get_env_info()
    # map_size 12: two agents a side; 13x13x5 views; 12x12x5 state
    assert (info["n_agents"], info["n_actions"], info["obs_shape"], info["state_shape"]) == (2, 21, 845, 720)
    assert env.controlled == ["red_0", "red_1"] and env.uncontrolled == ["blue_0", "blue_1"]
    ep = run_episode(env, np.random.default_rng(0))
    assert ep["end"][:3] == (30, False, True)  # battle's max_cycles is a truncation
    assert run_episode(battle(0, time_limit=12), np.random.default_rng(0))["end"][:3] == (12, False, True)


def test_battle_rng_state_round_trip_includes_the_random_opponent() -> None:
    _needs("magent2")
    env = battle(4, time_limit=15)
    run_episode(env, np.random.default_rng(0))
    state = env.get_rng_state()
    expected = run_episode(env, np.random.default_rng(1))
    other = battle(77, time_limit=15)
    other.set_rng_state(state)
    got = run_episode(other, np.random.default_rng(1))
    assert np.array_equal(np.stack(got["obs"]), np.stack(expected["obs"])) and got["reward"] == expected["reward"]
    # the blue agents' random actions come from the restored stream: another seed gives another game
    diff = run_episode(battle(77, time_limit=15), np.random.default_rng(1))
    assert not np.array_equal(np.stack(diff["obs"]), np.stack(expected["obs"]))


def test_yaml_declares_every_constructor_argument_with_its_default() -> None:
    with open(YAML) as f:
        cfg = yaml.safe_load(f)
    assert cfg["env"] == "pettingzoo"
    params = {k: p.default for k, p in inspect.signature(PettingZooEnv).parameters.items() if k != "seed"}
    assert cfg["env_args"] == params


def test_registered_as_pettingzoo() -> None:
    from concord.registry import ENVS

    assert ENVS.get("pettingzoo") is PettingZooEnv
