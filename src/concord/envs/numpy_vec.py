"""The base of the papers' numpy domains: ``num_envs`` envs held as arrays and stepped as one batch.

Every array of a domain has the env axis first (``E``, or ``k`` for the envs of one call). Randomness: env
``i`` of a batch has its own ``np.random.Generator`` and draws only through ``EnvRngs.uniform``, which asks
each env's generator for exactly the numbers that env needs. What env ``i`` draws therefore never depends on
which other envs are in the batch or are stepped with it, and ``get_rng_state``/``set_rng_state`` capture
every random stream of the batch, so that a checkpoint resumes exactly.

Seeding convention (``concord.envs.seeding``), shared with SMAX: the constructor's ``seed`` is either
- an int, the *run* seed ``s``: env ``i``'s generator is ``default_rng(env_seeds(s, num_envs)[i])``, the same
  seed a single env (``MultiAgentEnv``) gets as env ``i`` of a ``SerialVecEnv``/``SubprocVecEnv`` batch;
  note that a 1-env batch seeded ``x`` uses ``env_seeds(x, 1)[0]``, not ``x``;
- a sequence of ``num_envs`` ints, the *env* seeds themselves: env ``i``'s generator is
  ``default_rng(seed[i])``; so env ``i`` of a batch seeded ``s`` steps exactly as
  ``cls(num_envs=1, seed=[env_seeds(s, n)[i]])``;
- ``None``: a run seed drawn from OS entropy.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from concord.envs.base import EnvObs, StepResult, VecEnv
from concord.envs.seeding import Seed, batch_seeds
from concord.errors import ConfigError


class EnvRngs:
    """One ``np.random.Generator`` per env of a batch, seeded by the module's convention (``batch_seeds``)."""

    def __init__(self, num_envs: int, seed: Seed) -> None:
        self.seeds = batch_seeds(seed, num_envs)  # env i's seed
        self.gens = [np.random.default_rng(s) for s in self.seeds]

    def uniform(self, env_ids: Sequence[int], sizes: int | Sequence[int]) -> np.ndarray:
        """``(k, max(sizes))`` U[0,1) draws; env ``env_ids[j]`` draws ``sizes[j]`` numbers (rest 0)."""
        if isinstance(sizes, (int, np.integer)):
            return np.array([self.gens[e].random(int(sizes)) for e in env_ids]).reshape(len(env_ids), int(sizes))
        width = int(max(sizes)) if len(sizes) else 0
        out = np.zeros((len(env_ids), width))  # (k, width)
        for j, (e, n) in enumerate(zip(env_ids, sizes)):
            if n:
                out[j, : int(n)] = self.gens[e].random(int(n))
        return out

    def get_state(self) -> list[dict[str, Any]]:
        return [g.bit_generator.state for g in self.gens]

    def set_state(self, state: Sequence[dict[str, Any]]) -> None:
        if len(state) != len(self.gens):
            raise ConfigError(f"the rng state holds {len(state)} envs but this batch has {len(self.gens)}: resume with "
                              f"the checkpoint's batch_size_run")
        for g, s in zip(self.gens, state):
            g.bit_generator.state = s


class NumpyVecEnv(VecEnv):
    """``num_envs`` envs as numpy arrays: their random streams, step counters and sizes.

    A subclass calls ``super().__init__(num_envs, seed)``, then sets ``n_agents``, ``n_actions``,
    ``episode_limit``, ``obs_shape``, ``state_shape`` (and ``extras_shapes`` if it has per-step extras), from
    which ``get_env_info`` is built; it draws its random numbers with ``self.rngs.uniform``.
    """

    n_agents: int
    n_actions: int
    episode_limit: int
    obs_shape: int
    state_shape: int

    def __init__(self, num_envs: int, seed: Seed) -> None:
        self.num_envs = int(num_envs)
        self.rngs = EnvRngs(self.num_envs, seed)
        self.t = np.zeros(self.num_envs, dtype=np.int64)  # (E,) steps taken in the current episode
        self.extras_shapes: dict[str, tuple[int, ...]] = {}  # name -> per-env shape of a per-step extra array

    def get_env_info(self) -> dict[str, Any]:
        return {
            "n_agents": self.n_agents,
            "n_actions": self.n_actions,
            "obs_shape": self.obs_shape,
            "state_shape": self.state_shape,
            "episode_limit": self.episode_limit,
            "extras": dict(self.extras_shapes),
        }

    def get_rng_state(self) -> list[dict[str, Any]]:
        return self.rngs.get_state()

    def set_rng_state(self, state: Sequence[dict[str, Any]]) -> None:
        self.rngs.set_state(state)

    def _time_limit_result(
        self,
        ids: np.ndarray,
        obs: EnvObs,
        reward: np.ndarray,
        final_info: Callable[[int], dict[str, Any]] | None = None,
    ) -> StepResult:
        """Count one more step in envs ``ids`` and pack what they returned, for tasks that only end by time limit.

        An episode ends, truncated, once it has run ``episode_limit`` steps; the info of its last step is
        ``final_info(env)`` (called after the count), every other info is empty. ``obs`` is the observation
        after the step, ``reward`` ``(k,)``.
        """
        self.t[ids] += 1
        truncated = self.t[ids] >= self.episode_limit  # (k,)
        infos = [final_info(int(i)) if done and final_info is not None else {} for i, done in zip(ids, truncated)]
        return StepResult(
            obs=obs,
            reward=reward.astype(np.float32),
            terminated=np.zeros(len(ids), dtype=bool),
            truncated=truncated,
            infos=infos,
        )
