"""The two environment interfaces of Concord.

``MultiAgentEnv`` is one environment with SMAC's interface (``get_obs``, ``get_state``,
``get_avail_actions``, ``step`` -> reward, terminated, info, ``get_env_info``). It is what most
users write. ``VecEnv`` is a batch of ``num_envs`` environments stepped together; runners only
ever talk to a ``VecEnv``. Single envs are lifted into one by ``SerialVecEnv`` (in process) or
``SubprocVecEnv`` (one worker process each); natively batched envs (SMAX under jax.vmap, numpy
domains vectorised over the batch) subclass ``VecEnv`` directly and are registered as such.

Conventions shared by both:
- observations ``float32 (n_agents, obs_dim)``, state ``float32 (state_dim,)``, available
  actions ``bool (n_agents, n_actions)``, team reward ``float``;
- an episode that ends because of a time limit is *truncated*, not terminated: the single-env
  ``step`` says so with ``info["episode_limit"] = True`` (SMAC's convention) and the VecEnv returns it
  in ``truncated``; the runner also truncates at ``episode_limit`` itself;
- numeric entries of the info dict returned on an episode's last step (``battle_won``,
  ``system_performance``, ...) are averaged over episodes by the runner and logged;
- ``get_env_info()["extras"]`` declares per-step extra arrays (e.g. ``{"positions": (n_agents, 2)}``)
  that ``get_extras()`` returns each step and the runner stores in the episode batch;
- ``get_rng_state``/``set_rng_state`` capture every random stream of the env, so that a
  checkpoint resumes exactly;
- ``env_args.state_last_action`` is handled by the framework (the learner appends the agents'
  previous actions to the state), so envs never see that key.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np


@dataclass
class EnvObs:
    """What the agents and learner see of a set of envs at one time step (leading dim = envs)."""

    obs: np.ndarray  # (k, n_agents, obs_dim) float32
    state: np.ndarray  # (k, state_dim) float32
    avail_actions: np.ndarray  # (k, n_agents, n_actions) bool
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (k, *shape)


@dataclass
class StepResult:
    """The outcome of stepping ``k`` envs once; ``obs`` is the observation after the step."""

    obs: EnvObs
    reward: np.ndarray  # (k,) float32
    terminated: np.ndarray  # (k,) bool: a true terminal state (no bootstrapping)
    truncated: np.ndarray  # (k,) bool: ended by a time limit (bootstrap from obs)
    infos: list[dict[str, Any]]  # one dict per env
    failed: np.ndarray | None = None  # (k,) bool: the env's worker crashed and was restarted


class MultiAgentEnv(ABC):
    """One cooperative multi-agent environment with SMAC's interface."""

    n_agents: int
    n_actions: int
    episode_limit: int

    def __init__(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    @classmethod
    def check_available(cls, env_args: dict[str, Any]) -> None:
        """Raise ``ConfigError`` (one line, naming the fix) if an outside prerequisite is missing."""

    @abstractmethod
    def reset(self) -> None:
        """Start a new episode."""

    @abstractmethod
    def step(self, actions: np.ndarray) -> tuple[float, bool, dict[str, Any]]:
        """Apply the joint action ``(n_agents,)``; return team reward, terminated, info."""

    @abstractmethod
    def get_obs(self) -> np.ndarray:
        """``(n_agents, obs_dim)`` float32."""

    @abstractmethod
    def get_state(self) -> np.ndarray:
        """``(state_dim,)`` float32, the global state for centralised training."""

    @abstractmethod
    def get_avail_actions(self) -> np.ndarray:
        """``(n_agents, n_actions)`` bool; every agent must have at least one available action."""

    def get_env_info(self) -> dict[str, Any]:
        """Sizes the framework builds its networks and buffers from."""
        return {
            "n_agents": self.n_agents,
            "n_actions": self.n_actions,
            "obs_shape": int(self.get_obs().shape[-1]),
            "state_shape": int(self.get_state().shape[-1]),
            "episode_limit": self.episode_limit,
            "extras": {},
        }

    def get_extras(self) -> dict[str, np.ndarray]:
        """Per-step extra arrays declared in ``get_env_info()["extras"]``."""
        return {}

    def get_stats(self) -> dict[str, float]:
        return {}

    def get_rng_state(self) -> Any:
        return self.rng.bit_generator.state

    def set_rng_state(self, state: Any) -> None:
        self.rng.bit_generator.state = state

    def save_replay(self) -> str | None:
        """Write a replay if the env supports it; return where it went."""
        return None

    def close(self) -> None:
        pass


class VecEnv(ABC):
    """``num_envs`` environments stepped as one batch; what every runner talks to."""

    num_envs: int
    failures: int = 0  # env workers restarted after a crash (runners stop past max_env_failures)

    @classmethod
    def check_available(cls, env_args: dict[str, Any]) -> None:
        """Raise ``ConfigError`` (one line, naming the fix) if an outside prerequisite is missing."""

    @abstractmethod
    def get_env_info(self) -> dict[str, Any]:
        """As ``MultiAgentEnv.get_env_info`` (identical for every env of the batch)."""

    @abstractmethod
    def reset(self, env_ids: Sequence[int]) -> EnvObs:
        """Start new episodes in ``env_ids``; return their first observations."""

    @abstractmethod
    def step(self, env_ids: Sequence[int], actions: np.ndarray) -> StepResult:
        """Step only the envs ``env_ids`` with ``actions (k, n_agents)``."""

    def get_rng_state(self) -> Any:
        return None

    def set_rng_state(self, state: Any) -> None:
        pass

    def get_stats(self) -> dict[str, float]:
        return {}

    def save_replay(self) -> list[str]:
        return []

    def close(self) -> None:
        pass


def stack_obs(envs: Sequence[MultiAgentEnv]) -> EnvObs:
    """Collect the current observation of several single envs into one ``EnvObs``."""
    extras_list = [e.get_extras() for e in envs]
    extras = {k: np.stack([x[k] for x in extras_list]) for k in extras_list[0]} if extras_list[0] else {}
    return EnvObs(
        obs=np.stack([np.asarray(e.get_obs(), dtype=np.float32) for e in envs]),
        state=np.stack([np.asarray(e.get_state(), dtype=np.float32) for e in envs]),
        avail_actions=np.stack([np.asarray(e.get_avail_actions(), dtype=bool) for e in envs]),
        extras=extras,
    )


def step_single(env: MultiAgentEnv, actions: np.ndarray) -> tuple[float, bool, bool, dict[str, Any]]:
    """Step one env and split SMAC's ``info["episode_limit"]`` into terminated / truncated."""
    reward, terminated, info = env.step(actions)
    truncated = bool(info.get("episode_limit", False))
    return float(reward), bool(terminated) and not truncated, truncated, info


class SerialVecEnv(VecEnv):
    """Single envs stepped one after another in this process (the episode runner's backend)."""

    def __init__(self, envs: Sequence[MultiAgentEnv]) -> None:
        self.envs = list(envs)
        self.num_envs = len(self.envs)

    def get_env_info(self) -> dict[str, Any]:
        return self.envs[0].get_env_info()

    def reset(self, env_ids: Sequence[int]) -> EnvObs:
        for i in env_ids:
            self.envs[i].reset()
        return stack_obs([self.envs[i] for i in env_ids])

    def step(self, env_ids: Sequence[int], actions: np.ndarray) -> StepResult:
        rewards, terms, truncs, infos = [], [], [], []
        for i, a in zip(env_ids, actions):
            r, te, tr, info = step_single(self.envs[i], a)
            rewards.append(r)
            terms.append(te)
            truncs.append(tr)
            infos.append(info)
        return StepResult(
            obs=stack_obs([self.envs[i] for i in env_ids]),
            reward=np.asarray(rewards, dtype=np.float32),
            terminated=np.asarray(terms, dtype=bool),
            truncated=np.asarray(truncs, dtype=bool),
            infos=infos,
        )

    def get_rng_state(self) -> Any:
        return [e.get_rng_state() for e in self.envs]

    def set_rng_state(self, state: Any) -> None:
        for e, s in zip(self.envs, state):
            e.set_rng_state(s)

    def get_stats(self) -> dict[str, float]:
        return self.envs[0].get_stats()

    def save_replay(self) -> list[str]:
        return [p for p in (e.save_replay() for e in self.envs) if p]

    def close(self) -> None:
        for e in self.envs:
            e.close()
