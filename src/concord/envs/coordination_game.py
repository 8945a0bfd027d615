"""The coordination game (bn_dag_policies.md §7.1, App. B.1; Chen et al. 2022), a batch of envs.

State s in {0,1}^N, actions a_i in {0,1} [P]. Each agent's next local state depends only on its own
action: P(s'_i = 0 | a_i = 0) = 1 - eps, P(s'_i = 0 | a_i = 1) = eps, eps = 0.1 [P]. The team reward
r(s) of the *current* state follows App. B.1 Algorithm 1: with k agents in state 1 and a bound of 1
(N <= 3) or 2 (N > 3), if |(N-k) - k| is within the bound the reward is 1 when 1s are the majority
and 0 otherwise; outside it, 3 when 0s are the majority and 2 when 1s are. "Within" is ``<=`` by
default, as in the authors' code [C] (only ``<=`` makes N = 3 a coordination problem); the
extracted pseudocode's ``<`` is the option ``comparator: "<"``. Initial state uniform over
{0,1}^N [P B.1.2]; gamma = 0.95 [P]; episodes end after 20 steps by *truncation* (Table 2; the
task itself has no terminal state). Full observability [P]: every agent observes the global
state s (N bits), which is also the state.

Metric: the return (MAPPO runs, logged by the runner); POA and Nash gap of the tabular runs come
from ``tabular_model()``, whose joint index orders are C-order with agent 0 most significant.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from concord.envs.base import EnvObs, StepResult
from concord.envs.numpy_vec import NumpyVecEnv
from concord.envs.seeding import Seed
from concord.envs.tabular import TabularModel
from concord.errors import ConfigError
from concord.registry import register_env

COMPARATORS = ("<=", "<")


def reward_table(n_agents: int, comparator: str = "<=") -> np.ndarray:
    """r as a function of k = number of agents in state 1, ``(N + 1,)`` (App. B.1 Algorithm 1)."""
    if comparator not in COMPARATORS:
        raise ConfigError(f"coordination_game: comparator must be one of {COMPARATORS}, got '{comparator}'")
    bound = 1 if n_agents <= 3 else 2
    k = np.arange(n_agents + 1)  # (N+1,) agents in state 1
    c0, c1 = n_agents - k, k
    diff = np.abs(c0 - c1)
    close = diff <= bound if comparator == "<=" else diff < bound
    return np.where(close, np.where(c0 < c1, 1.0, 0.0), np.where(c0 > c1, 3.0, 2.0))


@register_env("coordination_game")
class CoordinationGameEnv(NumpyVecEnv):
    """``num_envs`` coordination games; env i draws from its own stream (``numpy_vec``'s seeding)."""

    def __init__(
        self,
        num_envs: int,
        seed: Seed = None,
        n_agents: int = 2,
        eps: float = 0.1,
        comparator: str = "<=",
        episode_limit: int = 20,
    ) -> None:
        if num_envs < 1 or n_agents < 1 or episode_limit < 1:
            raise ConfigError("coordination_game needs num_envs, n_agents and episode_limit >= 1")
        if not 0.0 <= eps <= 1.0:
            raise ConfigError(f"coordination_game: eps must lie in [0, 1], got {eps}")
        super().__init__(num_envs, seed)
        self.n_agents = n_agents
        self.n_actions = 2
        self.episode_limit = episode_limit
        self.obs_shape = self.state_shape = n_agents
        self.eps = float(eps)
        self.comparator = comparator
        self.rewards_by_k = reward_table(n_agents, comparator)  # (N+1,)
        self.s = np.zeros((num_envs, n_agents), dtype=np.int8)  # (E, N) local states

    def _obs(self, ids: np.ndarray) -> EnvObs:
        s = self.s[ids].astype(np.float32)  # (k, N)
        return EnvObs(
            obs=np.repeat(s[:, None, :], self.n_agents, axis=1),  # (k, N, N) everyone sees s
            state=s,  # (k, N)
            avail_actions=np.ones((len(ids), self.n_agents, 2), dtype=bool),  # (k, N, 2)
        )

    def reset(self, env_ids: Sequence[int]) -> EnvObs:
        ids = np.asarray(env_ids, dtype=np.intp)
        self.s[ids] = self.rngs.uniform(ids, self.n_agents) < 0.5  # mu uniform over {0,1}^N
        self.t[ids] = 0
        return self._obs(ids)

    def step(self, env_ids: Sequence[int], actions: np.ndarray) -> StepResult:
        ids = np.asarray(env_ids, dtype=np.intp)
        a = np.asarray(actions)
        if a.shape != (len(ids), self.n_agents):
            raise ValueError(f"coordination_game: actions have shape {a.shape}, expected {(len(ids), self.n_agents)}")
        reward = self.rewards_by_k[self.s[ids].sum(axis=1)]  # (k,) r(s_t), before the transition
        flip = self.rngs.uniform(ids, self.n_agents) < self.eps  # (k, N)
        self.s[ids] = np.logical_xor(a.astype(bool), flip)  # s' = a w.p. 1 - eps, else 1 - a
        return self._time_limit_result(ids, self._obs(ids), reward)

    def tabular_model(self) -> TabularModel:
        """Exact model: T[s, a, s'] = prod_i P(s'_i | a_i), R[s, a] = r(s), mu uniform (2^N each axis).

        State and joint-action indices are ``ravel_multi_index(bits, (2,) * N)``: agent 0's bit is
        the most significant.
        """
        n = self.n_agents
        per_agent = np.array([[1 - self.eps, self.eps], [self.eps, 1 - self.eps]])  # (a_i, s'_i)
        joint = np.ones((1, 1))
        for _ in range(n):
            joint = np.kron(joint, per_agent)  # (2^n, 2^n): P(s' | a), agent 0 most significant
        size = 2**n
        bits = np.stack(np.unravel_index(np.arange(size), (2,) * n), axis=-1)  # (2^n, n)
        r = self.rewards_by_k[bits.sum(axis=1)]  # (2^n,)
        return TabularModel(
            T=np.broadcast_to(joint, (size, size, size)).copy(),
            R=np.broadcast_to(r[:, None], (size, size)).copy(),
            mu=np.full(size, 1.0 / size),
            state_shape=(2,) * n,
            action_shape=(2,) * n,
            state_factors=tuple(f"s{i}" for i in range(n)),
        )
