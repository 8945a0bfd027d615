"""The influence-augmented local simulator (IALS, Suau et al. 2022, App. C, Algorithm 3): one agent's region of a
local-form env as a 1-agent ``VecEnv``, with its influence sources drawn from a predictor instead of the GS.

Each step: p = predictor(d_t) (the AIP's distribution over every source, eq. 25), u_t ~ p, then
x_{t+1}, r_t, o_{t+1} = ``LocalModel.step(x_t, a_t, u_t, noise)`` -- the same function the GS composes. The
reward is the agent's own. Random streams (spec sheet §4.9): the region's own noise (item spawns) and the u draws
come from two generators per env, both captured by ``get_rng_state``. Episodes end at the local horizon.
"""
from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np

from concord.envs.base import EnvObs, StepResult
from concord.envs.local_form import LocalModel, take
from concord.envs.numpy_vec import EnvRngs, NumpyVecEnv


class InfluencePredictor(Protocol):
    """What an IALS asks for u_t: a distribution per env, with per-env memory (a GRU AIP's hidden state)."""

    def reset(self, env_ids: np.ndarray) -> None: ...

    def probs(self, dset: np.ndarray, env_ids: np.ndarray) -> np.ndarray:
        """``dset (k, D)`` -> ``(k, n_sources, n_classes)`` probabilities; advances the envs' memory."""


def ials_seeds(seed: int, agent: int, stream: int, num_envs: int) -> list[int]:
    """32-bit seeds of agent ``agent``'s IALS envs (``stream`` 0: local noise, 1: influence draws); disjoint from
    the GS's env seeds (``SeedSequence(seed)`` children ``(i,)``)."""
    return [int(np.random.SeedSequence(int(seed) % 2**64, spawn_key=(1 + stream, int(agent), j)).generate_state(1)[0])
            for j in range(num_envs)]


class IALSVecEnv(NumpyVecEnv):
    """``num_envs`` copies of one agent's IALS, stepped as a batch."""

    def __init__(self, local: LocalModel, predictor: InfluencePredictor, num_envs: int, seed: int,
                 agent: int) -> None:
        super().__init__(num_envs, ials_seeds(seed, agent, 0, num_envs))
        self.u_rngs = EnvRngs(num_envs, ials_seeds(seed, agent, 1, num_envs))
        self.local, self.predictor = local, predictor
        self.n_agents, self.n_actions, self.episode_limit = 1, local.n_actions, local.episode_limit
        self.obs_shape = self.state_shape = local.obs_shape
        self.x = local.reset(np.zeros((num_envs, local.reset_noise_size)))
        self.obs = local.observe(self.x)  # (E, obs_dim) the current observations

    def get_env_info(self) -> dict[str, Any]:
        return {**super().get_env_info(), "state_is_obs_concat": True}

    def get_rng_state(self) -> dict[str, Any]:
        return {"local": self.rngs.get_state(), "influence": self.u_rngs.get_state()}

    def set_rng_state(self, state: dict[str, Any]) -> None:
        self.rngs.set_state(state["local"])
        self.u_rngs.set_state(state["influence"])

    def reset(self, env_ids: Sequence[int]) -> EnvObs:
        ids = np.asarray(env_ids, dtype=np.int64)
        fresh = self.local.reset(self.rngs.uniform(ids, self.local.reset_noise_size))
        for k, v in fresh.items():
            self.x[k][ids] = v
        self.obs[ids] = self.local.observe(fresh)
        self.t[ids] = 0
        self.predictor.reset(ids)
        return self._env_obs(ids)

    def sample_influence(self, env_ids: np.ndarray) -> np.ndarray:
        """u_t ``(k, n_sources)`` ~ predictor(d_t) by inverse CDF on the influence stream."""
        p = self.predictor.probs(self.local.dset(self.obs[env_ids]), env_ids)  # (k, M, C)
        cdf = np.cumsum(p, -1)  # (k, M, C)
        draw = self.u_rngs.uniform(env_ids, self.local.n_sources)[..., None] * cdf[..., -1:]  # (k, M, 1)
        return np.minimum((cdf <= draw).sum(-1), self.local.n_classes - 1)

    def step(self, env_ids: Sequence[int], actions: np.ndarray) -> StepResult:
        ids = np.asarray(env_ids, dtype=np.int64)
        u = self.sample_influence(ids)
        noise = self.rngs.uniform(ids, self.local.noise_size)  # (k, noise_size)
        a = np.asarray(actions, dtype=np.int64).reshape(len(ids))
        y, reward, obs = self.local.step(take(self.x, ids), a, u, noise)
        for k, v in y.items():
            self.x[k][ids] = v
        self.obs[ids] = obs
        return self._time_limit_result(ids, self._env_obs(ids), reward, lambda e: {"episode_limit": True})

    def _env_obs(self, ids: np.ndarray) -> EnvObs:
        o = self.obs[ids]  # (k, obs_dim)
        return EnvObs(obs=o[:, None].copy(), state=o.copy(), avail_actions=np.ones((len(ids), 1, self.n_actions), bool))
