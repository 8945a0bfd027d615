"""A PettingZoo parallel-API env (mpe2, magent2, ...) as one Concord ``MultiAgentEnv``.

``key="module.path:callable"`` names the parallel-env constructor (``mpe2.simple_spread_v3:parallel_env``),
called with ``env_kwargs``. The controlled agents are ``possible_agents`` whose names start with
``controlled_prefix`` (all of them by default), in ``possible_agents`` order; every other agent acts by a
fixed policy (``uncontrolled_policy``): ``"random"`` (uniform over its available actions) or ``"noop"``
(always ``noop_action``), so a team can be trained against e.g. a random magent2 opponent.

Agents that are dead or absent (not in ``env.agents``) get a zero observation and only ``noop_action``
available, the SMAC convention for dead units. Action masks come from a dict observation's or an
agent's info's ``"action_mask"`` when the env provides one. The state is ``env.state()`` when the env
has a ``state_space`` (mpe2, magent2), else the concatenated padded observations of the controlled agents.

Randomness: every ``reset`` reseeds the env with a seed drawn from the adapter's own generator, so that
also envs whose random stream cannot be read (magent2's C++ engine) resume exactly from an episode
boundary after :meth:`set_rng_state`; the random fixed policy draws from a second generator.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

import numpy as np

from concord.envs.base import MultiAgentEnv
from concord.errors import ConfigError
from concord.registry import register_env

UNCONTROLLED_POLICIES = ("random", "noop")
REWARD_SCALARISATIONS = ("sum", "mean")
STATE_SOURCES = ("auto", "env", "obs")


def load_callable(key: str) -> Callable[..., Any]:
    """``"module.path:callable"`` -> the callable (one-line error on a bad key)."""
    module, sep, name = key.partition(":")
    if not sep or not module or not name:
        raise ConfigError(f"env_args.key must be 'module.path:callable', got {key!r}")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise ConfigError(f"env_args.key '{key}': module '{module}' could not be imported ({e})") from e
    if not hasattr(mod, name):
        raise ConfigError(f"env_args.key '{key}': module '{module}' has no '{name}'")
    return getattr(mod, name)


@register_env("pettingzoo")
class PettingZooEnv(MultiAgentEnv):
    """A PettingZoo ``ParallelEnv`` with discrete actions; the controlled agents form the team."""

    def __init__(
        self,
        seed: int | None = None,
        key: str = "mpe2.simple_spread_v3:parallel_env",
        env_kwargs: dict[str, Any] | None = None,
        time_limit: int = 25,
        controlled_prefix: str = "",
        uncontrolled_policy: str = "random",
        noop_action: int = 0,
        reward_scalarisation: str = "sum",
        state_source: str = "auto",
    ) -> None:
        super().__init__(seed)
        for name, value, options in (
            ("uncontrolled_policy", uncontrolled_policy, UNCONTROLLED_POLICIES),
            ("reward_scalarisation", reward_scalarisation, REWARD_SCALARISATIONS),
            ("state_source", state_source, STATE_SOURCES),
        ):
            if value not in options:
                raise ConfigError(f"env_args.{name} must be one of {', '.join(options)}, got {value!r}")
        if time_limit < 1:
            raise ConfigError(f"env_args.time_limit must be positive, got {time_limit}")
        from gymnasium import spaces

        self._env = load_callable(key)(**dict(env_kwargs or {}))
        agents = list(self._env.possible_agents)
        self.controlled = [a for a in agents if a.startswith(controlled_prefix)]
        self.uncontrolled = [a for a in agents if not a.startswith(controlled_prefix)]
        if not self.controlled:
            raise ConfigError(f"env_args.controlled_prefix '{controlled_prefix}' matches none of the agents {agents[:6]}...")
        self._obs_spaces = {a: self._obs_part(self._env.observation_space(a)) for a in agents}
        self._agent_n_actions: dict[str, int] = {}
        for a in agents:
            space = self._env.action_space(a)
            if not isinstance(space, spaces.Discrete):
                raise ConfigError(f"env_args.key '{key}': agent '{a}' has action space {space}; only Discrete is supported")
            self._agent_n_actions[a] = int(space.n)
        self.n_agents = len(self.controlled)
        self.n_actions = max(self._agent_n_actions[a] for a in self.controlled)
        if not 0 <= noop_action < min(self._agent_n_actions.values()):
            raise ConfigError(f"env_args.noop_action {noop_action} is not an action of every agent (0..{min(self._agent_n_actions.values()) - 1})")
        self.noop_action = noop_action
        self.obs_dim = max(spaces.flatdim(self._obs_spaces[a]) for a in self.controlled)
        has_env_state = hasattr(self._env, "state_space")
        if state_source == "env" and not has_env_state:
            raise ConfigError(f"env_args.state_source 'env': '{key}' has no state_space")
        self._env_state = has_env_state if state_source == "auto" else state_source == "env"
        self.episode_limit = time_limit
        self.uncontrolled_policy = uncontrolled_policy
        self.reward_scalarisation = reward_scalarisation
        # two streams: episode seeds for the env, and the fixed policy's actions
        self.rng, self._policy_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
        self._t = 0
        self._alive: list[str] = []
        self._masks: dict[str, np.ndarray | None] = {}  # agent with a real obs -> its (n_i,) bool mask or None (all)
        self._obs = np.zeros((self.n_agents, self.obs_dim), dtype=np.float32)  # (n_agents, obs_dim)
        self._avail = np.zeros((self.n_agents, self.n_actions), dtype=bool)  # (n_agents, n_actions)
        self._state: np.ndarray | None = None  # env.state(), computed on demand once per step

    @staticmethod
    def _obs_part(space: Any) -> Any:
        """The observation inside an ``{"observation", "action_mask"}`` dict space (PettingZoo's masking convention)."""
        from gymnasium import spaces

        if isinstance(space, spaces.Dict) and "observation" in space.spaces:
            return space["observation"]
        return space

    # --- episode ---
    def reset(self) -> None:
        obs, infos = self._env.reset(seed=int(self.rng.integers(2**31 - 1)))
        self._t = 0
        self._update(obs, infos)

    def step(self, actions: np.ndarray) -> tuple[float, bool, dict[str, Any]]:
        actions = np.asarray(actions).reshape(-1)  # (n_agents,)
        alive = set(self._alive)
        joint = {a: int(u) for a, u in zip(self.controlled, actions) if a in alive}
        others = [a for a in self.uncontrolled if a in alive]
        joint.update(zip(others, self._fixed_policy(others)))
        ctrl_acting = [a for a in self.controlled if a in alive]
        obs, rewards, terminations, truncations, infos = self._env.step(joint)
        self._t += 1
        self._update(obs, infos, terminations)
        team = np.array([rewards.get(a, 0.0) for a in self.controlled], dtype=np.float64)  # (n_agents,)
        reward = float(team.sum() if self.reward_scalarisation == "sum" else team.mean())
        live = set(self._alive)
        ctrl_alive = any(a in live for a in self.controlled)
        # a true terminal state: every controlled agent that acted was terminated (not truncated) by the env
        terminated = bool(ctrl_acting) and all(terminations.get(a, False) for a in ctrl_acting)
        limit = not terminated and (not ctrl_alive or self._t >= self.episode_limit)
        # SMAC convention: the episode is over (True) and info["episode_limit"] says it was a time limit
        return reward, terminated or limit, {"episode_limit": limit}

    def _fixed_policy(self, agents: list[str]) -> list[int]:
        """The documented policy of uncontrolled agents: uniform over each one's available actions, or the no-op."""
        if self.uncontrolled_policy == "noop":
            return [self.noop_action] * len(agents)
        masks = [self._masks.get(a) for a in agents]
        if all(m is None for m in masks):  # no masks: one vectorised draw
            return self._policy_rng.integers(0, [self._agent_n_actions[a] for a in agents]).tolist() if agents else []
        return [int(self._policy_rng.integers(self._agent_n_actions[a])) if m is None
                else int(self._policy_rng.choice(np.flatnonzero(m))) for a, m in zip(agents, masks)]

    def _update(self, obs: dict[str, Any], infos: dict[str, Any], terminations: dict[str, bool] | None = None) -> None:
        """Record live agents, their masks, and the controlled agents' padded observations.

        An agent the env truncated is no longer in ``env.agents`` but keeps its last observation (the
        episode is cut, the agent is not dead: its value is bootstrapped); a terminated agent is dead.
        """
        self._alive = list(self._env.agents)
        self._state = None
        self._masks = {}
        dead = terminations or {}
        for a in obs:
            if dead.get(a, False):
                continue
            o, info = obs[a], infos.get(a)
            mask = None
            if isinstance(o, dict) and "action_mask" in o:
                mask = o["action_mask"]
            elif isinstance(info, dict) and "action_mask" in info:
                mask = info["action_mask"]
            if mask is not None:
                mask = np.asarray(mask, dtype=bool).reshape(-1)
                if not mask.any():  # every agent must have an available action
                    mask = np.zeros(self._agent_n_actions[a], dtype=bool)
                    mask[self.noop_action] = True
            self._masks[a] = mask  # None: all of its actions are available
        padded = np.zeros((self.n_agents, self.obs_dim), dtype=np.float32)  # (n_agents, obs_dim)
        avail = np.zeros((self.n_agents, self.n_actions), dtype=bool)  # (n_agents, n_actions)
        for i, a in enumerate(self.controlled):
            mask = self._masks.get(a, False)
            if mask is False:  # dead or absent: zero observation, only the no-op
                avail[i, self.noop_action] = True
                continue
            o = obs[a]
            flat = np.asarray(o["observation"] if isinstance(o, dict) else o, dtype=np.float32).reshape(-1)
            padded[i, : flat.shape[0]] = flat
            if mask is None:
                avail[i, : self._agent_n_actions[a]] = True
            else:
                avail[i, : mask.shape[0]] = mask
        self._obs, self._avail = padded, avail

    # --- views ---
    def get_obs(self) -> np.ndarray:
        return self._obs  # (n_agents, obs_dim), a fresh array per step

    def get_state(self) -> np.ndarray:
        if not self._env_state:
            return self._obs.reshape(-1)  # (n_agents * obs_dim,)
        if self._state is None:
            self._state = np.asarray(self._env.state(), dtype=np.float32).reshape(-1)  # (state_dim,)
        return self._state

    def get_avail_actions(self) -> np.ndarray:
        return self._avail  # (n_agents, n_actions) bool

    def get_env_info(self) -> dict[str, Any]:
        """Sizes from the spaces, so that it can be asked before the first reset."""
        from gymnasium import spaces

        state_dim = spaces.flatdim(self._env.state_space) if self._env_state else self.n_agents * self.obs_dim
        return {
            "n_agents": self.n_agents,
            "n_actions": self.n_actions,
            "obs_shape": self.obs_dim,
            "state_shape": int(state_dim),
            "episode_limit": self.episode_limit,
            "extras": {},
            "state_is_obs_concat": not self._env_state,
        }

    # --- randomness ---
    def get_rng_state(self) -> dict[str, Any]:
        """The episode-seed and fixed-policy generators (the env is reseeded from the first at every reset)."""
        return {"rng": self.rng.bit_generator.state, "policy_rng": self._policy_rng.bit_generator.state}

    def set_rng_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self._policy_rng.bit_generator.state = state["policy_rng"]

    def close(self) -> None:
        self._env.close()
