"""Gymnasium multi-agent envs with tuple spaces (lbforaging, rware, ...) as one Concord ``MultiAgentEnv``.

The pymarl/epymarl ``gymma`` convention (Papoudakis et al. 2021, "Benchmarking Multi-Agent Deep
Reinforcement Learning Algorithms in Cooperative Tasks", Sec. 4): ``key="module:EnvId"`` imports
``module`` (which registers its ids with gymnasium) and makes ``EnvId``; the observation and action
spaces are ``Tuple``s with one entry per agent; per-agent rewards are reduced to one team reward.

Two things of the wrapped envs this adapter corrects or exposes:

- lbforaging 2.0.0 and rware 2.0.0 end an episode at their own step limit (``max_episode_steps``,
  ``max_steps``) with ``terminated=True, truncated=False``, i.e. a time limit reported as a terminal
  state. With ``env_limit_kwarg="auto"`` the adapter sets that constructor argument beyond
  ``time_limit`` and counts the steps itself, so a time-limit end is ``info["episode_limit"]=True``
  (bootstrapped) and an env ``terminated`` is a real terminal state.
- lbforaging 2.0.0 replaces an invalid action by ``NONE`` without saying so; its valid actions live in
  the private dict ``ForagingEnv._valid_actions`` (the public ``get_valid_actions()`` is their joint
  product, exponential in the players), which becomes ``get_avail_actions()``. rware 2.0.0 exposes no
  valid-action set (an impossible action is a no-op), so every action is available there. Other envs
  may put an ``(n_agents, n_i)`` ``"action_mask"`` in the step/reset info.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Sequence

import numpy as np

from concord.envs.base import MultiAgentEnv
from concord.errors import ConfigError
from concord.registry import register_env

# entry point -> the constructor argument holding that env's own step limit (which it reports as termination)
KNOWN_STEP_LIMIT_KWARGS: dict[str, str] = {
    "lbforaging.foraging:ForagingEnv": "max_episode_steps",
    "rware.warehouse:Warehouse": "max_steps",
}
REWARD_SCALARISATIONS = ("sum", "mean")


def _make_gymnasium_env(key: str, env_kwargs: dict[str, Any], time_limit: int, env_limit_kwarg: str) -> Any:
    """Import the registering module, then ``gymnasium.make`` the id with ``env_kwargs`` and no TimeLimit wrapper."""
    import gymnasium

    module, _, env_id = key.rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            raise ConfigError(f"env_args.key '{key}': module '{module}' could not be imported ({e})") from e
    try:
        spec = gymnasium.spec(env_id)
    except gymnasium.error.Error as e:
        raise ConfigError(f"env_args.key '{key}': '{env_id}' is not a registered gymnasium id ({e})") from e
    limit_kwarg = KNOWN_STEP_LIMIT_KWARGS.get(str(spec.entry_point)) if env_limit_kwarg == "auto" else env_limit_kwarg
    kwargs = {**spec.kwargs, **env_kwargs}
    if limit_kwarg not in (None, "none"):
        if limit_kwarg in env_kwargs:
            raise ConfigError(f"set the episode length with env_args.time_limit, not env_args.env_kwargs.{limit_kwarg}")
        if limit_kwarg not in spec.kwargs:
            raise ConfigError(f"env_args.env_limit_kwarg '{limit_kwarg}' is not a registered argument of '{env_id}'")
        kwargs[limit_kwarg] = time_limit + 1  # never reached: the adapter truncates at time_limit itself
    # make() consumes a keyword named max_episode_steps, so the constructor kwargs go in through the spec;
    # max_episode_steps=-1: no gymnasium TimeLimit wrapper (the adapter counts steps itself).
    return gymnasium.make(dataclasses.replace(spec, kwargs=kwargs), max_episode_steps=-1, disable_env_checker=True)


def _is_lbforaging(env: Any) -> bool:
    """Whether ``env`` is (a subclass of) lbforaging's ForagingEnv, without importing lbforaging."""
    return any(c.__name__ == "ForagingEnv" and c.__module__.startswith("lbforaging.") for c in type(env).__mro__)


def _all_flag(x: Any) -> bool:
    """An env's terminated/truncated flag, a bool or one per agent (all agents must agree for the team)."""
    return bool(np.all(x))


@register_env("gymma")
class GymmaEnv(MultiAgentEnv):
    """A gymnasium env with ``Tuple`` observation/action spaces, one entry per agent."""

    def __init__(
        self,
        seed: int | None = None,
        key: str = "lbforaging:Foraging-8x8-2p-3f-v3",
        time_limit: int = 50,
        env_kwargs: dict[str, Any] | None = None,
        reward_scalarisation: str = "sum",
        use_action_masks: bool = True,
        env_limit_kwarg: str = "auto",
    ) -> None:
        super().__init__(seed)
        if reward_scalarisation not in REWARD_SCALARISATIONS:
            raise ConfigError(f"env_args.reward_scalarisation must be one of {', '.join(REWARD_SCALARISATIONS)}, got {reward_scalarisation!r}")
        if time_limit < 1:
            raise ConfigError(f"env_args.time_limit must be positive, got {time_limit}")
        from gymnasium import spaces

        self._spaces = spaces
        self._env = _make_gymnasium_env(key, dict(env_kwargs or {}), time_limit, env_limit_kwarg)
        self._u = self._env.unwrapped
        obs_space, act_space = self._env.observation_space, self._env.action_space
        if not isinstance(obs_space, spaces.Tuple) or not isinstance(act_space, spaces.Tuple):
            raise ConfigError(f"env_args.key '{key}': gymma needs Tuple observation and action spaces, got {obs_space} and {act_space}")
        if not all(isinstance(s, spaces.Discrete) for s in act_space.spaces):
            raise ConfigError(f"env_args.key '{key}': gymma needs Discrete per-agent action spaces, got {act_space}")
        self._obs_spaces = list(obs_space.spaces)
        self._agent_n_actions = [int(s.n) for s in act_space.spaces]
        self.n_agents = len(self._agent_n_actions)
        self.n_actions = max(self._agent_n_actions)
        self.obs_dim = max(spaces.flatdim(s) for s in self._obs_spaces)
        self.episode_limit = time_limit
        self.reward_scalarisation = reward_scalarisation
        self.use_action_masks = use_action_masks
        self._has_state = hasattr(self._u, "state") and callable(self._u.state)
        self._lbf_masks = use_action_masks and _is_lbforaging(self._u)
        # all-available template: padded actions of agents with smaller action spaces stay unavailable
        self._full_avail = np.zeros((self.n_agents, self.n_actions), dtype=bool)  # (n_agents, n_actions)
        for i, n in enumerate(self._agent_n_actions):
            self._full_avail[i, :n] = True
        self._seed = seed
        self._seeded = False  # the first reset seeds the env; later resets continue its np_random
        self._t = 0
        self._obs = np.zeros((self.n_agents, self.obs_dim), dtype=np.float32)  # (n_agents, obs_dim)
        self._avail = self._full_avail.copy()  # (n_agents, n_actions)

    # --- episode ---
    def reset(self) -> None:
        if self._seeded:
            obs, info = self._env.reset()
        else:
            obs, info = self._env.reset(seed=self._seed)
            self._seeded = True
        self._t = 0
        self._set_obs(obs, info)

    def step(self, actions: np.ndarray) -> tuple[float, bool, dict[str, Any]]:
        acts = [int(a) for a in np.asarray(actions).reshape(-1)]  # (n_agents,)
        obs, reward, terminated, truncated, env_info = self._env.step(acts)
        self._t += 1
        self._set_obs(obs, env_info)
        rewards = np.asarray(reward, dtype=np.float64)  # (n_agents,) or ()
        team_reward = float(rewards.sum() if self.reward_scalarisation == "sum" else rewards.mean())
        terminated = _all_flag(terminated)
        limit = not terminated and (_all_flag(truncated) or self._t >= self.episode_limit)
        info = {k: v for k, v in env_info.items() if k != "action_mask"} if isinstance(env_info, dict) else {}
        info["episode_limit"] = limit
        # SMAC convention: the episode is over (True) and info["episode_limit"] says it was a time limit
        return team_reward, terminated or limit, info

    def _set_obs(self, obs: Sequence[Any], info: Any) -> None:
        """Flatten and zero-pad each agent's observation; read the action masks the env provides."""
        padded = np.zeros((self.n_agents, self.obs_dim), dtype=np.float32)  # (n_agents, obs_dim)
        for i, (space, o) in enumerate(zip(self._obs_spaces, obs)):
            flat = self._spaces.flatten(space, o)
            padded[i, : flat.shape[0]] = flat
        self._obs = padded
        self._avail = self._read_masks(info)

    def _read_masks(self, info: Any) -> np.ndarray:
        if not self.use_action_masks:
            return self._full_avail
        avail = np.zeros_like(self._full_avail)  # (n_agents, n_actions)
        if self._lbf_masks:
            for i, player in enumerate(self._u.players):
                avail[i, [a.value for a in self._u._valid_actions[player]]] = True
            return avail
        if isinstance(info, dict) and "action_mask" in info:
            for i, m in enumerate(info["action_mask"]):
                m = np.asarray(m, dtype=bool).reshape(-1)
                avail[i, : m.shape[0]] = m
            return avail
        return self._full_avail

    # --- views ---
    def get_obs(self) -> np.ndarray:
        return self._obs  # (n_agents, obs_dim), a fresh array per step

    def get_state(self) -> np.ndarray:
        if self._has_state:
            return np.asarray(self._u.state(), dtype=np.float32).reshape(-1)  # (state_dim,)
        return self._obs.reshape(-1)  # (n_agents * obs_dim,)

    def get_avail_actions(self) -> np.ndarray:
        return self._avail  # (n_agents, n_actions) bool

    def get_env_info(self) -> dict[str, Any]:
        """Sizes from the spaces (an env with its own ``state()`` but no ``state_space`` is asked for a state)."""
        if not self._has_state:
            state_dim = self.n_agents * self.obs_dim
        elif hasattr(self._u, "state_space"):
            state_dim = self._spaces.flatdim(self._u.state_space)
        else:
            state_dim = int(self.get_state().shape[-1])
        return {
            "n_agents": self.n_agents,
            "n_actions": self.n_actions,
            "obs_shape": self.obs_dim,
            "state_shape": int(state_dim),
            "episode_limit": self.episode_limit,
            "extras": {},
            "state_is_obs_concat": not self._has_state,
        }

    # --- randomness ---
    def get_rng_state(self) -> dict[str, Any]:
        """Everything random: our generator, whether the first (seeding) reset happened, the env's np_random."""
        env_rng = self._u.np_random.bit_generator.state if self._seeded else None
        return {"rng": self.rng.bit_generator.state, "seeded": self._seeded, "env_np_random": env_rng}

    def set_rng_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_rng_state`; exact from an episode boundary (the env's positions are not state of its rng)."""
        self.rng.bit_generator.state = state["rng"]
        self._seeded = state["seeded"]
        env_rng = state["env_np_random"]
        if env_rng is not None:
            bit_gen = getattr(np.random, env_rng["bit_generator"])()  # same kind as the saved one (PCG64 in gymnasium)
            bit_gen.state = env_rng
            self._u.np_random = np.random.Generator(bit_gen)

    def close(self) -> None:
        self._env.close()
