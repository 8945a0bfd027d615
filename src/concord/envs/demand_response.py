"""Demand response in smart grids (dadc.md App. D.2, §6; ref. [1]), a batch of envs with its mean-field model.

n = 100 ON-OFF devices, S_i in {0, 1} (1 = ON) [P]. Each device moves independently by its own
action [P, eqs. 10-12], rows = current state, columns = next state:
  natural: D = [[0.25, 0.75], [0.375, 0.625]]
  force 0: (1 - eps1) [[1, 0], [1, 0]] + eps1 D,  force 1: (1 - eps2) [[0, 1], [0, 1]] + eps2 D,  eps = 0.2.
Reward [P, eq. 13]: R_t = -[(1/n) sum_i (c0 1{A_i = 0} + c1 1{A_i = 1}) + KL(M_t || zeta)], c = (0.1, 0.2),
zeta = [0.7, 0.3], with M_t the empirical distribution of device states *before* the transition,
natural log and 0 log 0 = 0 [X]. gamma = 0.9 [P]. Initial states i.i.d. from P0 = [1/3, 2/3] [P],
the stationary distribution of D (``initial_dist: null``), so the cost at t = 0 is near
KL(P0 || zeta) = 0.2850. Infinite-horizon task: ``episode_limit`` (100 [X]) truncates.

Action indices [X]: 0 = follow the natural dynamics (the paper's "empty" action), 1 = force OFF
(the paper's action 0), 2 = force ON (the paper's action 1). Observation of device i [P §2, §6]:
[S_i, m_t] with m_t = M_t(ON) the fraction of devices ON; the state is every S_i followed by m_t.
Metric: the discounted return with ``metric_gamma`` (keep equal to ``gamma``), reported as
``discounted_return`` on the last step, to compare with the optimum of ``mean_field_model()``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from concord.envs.base import EnvObs, StepResult
from concord.envs.numpy_vec import NumpyVecEnv
from concord.envs.seeding import Seed
from concord.errors import ConfigError
from concord.registry import register_env

NATURAL, FORCE_OFF, FORCE_ON = 0, 1, 2


def kl(m: np.ndarray, zeta: np.ndarray) -> np.ndarray:
    """KL(m || zeta) in nats over the last axis, with 0 log 0 = 0."""
    from scipy.special import rel_entr  # scipy.stats/special cost ~1 s of start-up: only when used

    return rel_entr(m, zeta).sum(axis=-1)


@dataclass(frozen=True, eq=False)
class MeanFieldModel:
    """The device kernels and costs, with the mean-field dynamics under a shared prescription.

    A prescription ``pi (2, 3)`` gives every device in state s the action distribution pi[s] (actions
    indexed as in the env). The mean field M (2,) then moves in expectation to M P_pi, and exactly
    (for n devices) the ON count k moves as Binomial(n - k, P_pi[0, 1]) + Binomial(k, P_pi[1, 1]).
    """

    n: int
    kernels: np.ndarray  # (3, 2, 2) P[a, s, s'] per action index
    costs: np.ndarray  # (3,) per action index: 0, c0, c1
    zeta: np.ndarray  # (2,) target distribution
    p0: np.ndarray  # (2,) initial distribution of each device

    def device_kernel(self, pi: np.ndarray) -> np.ndarray:
        """P_pi[s, s'] = sum_a pi[s, a] P[a, s, s'], ``(..., 2, 2)``."""
        return np.einsum("...sa,ast->...st", pi, self.kernels)

    def reward(self, m: np.ndarray, pi: np.ndarray) -> np.ndarray:
        """Expected team reward -(sum_s m[s] pi[s] . costs + KL(m || zeta)) for mean field ``m (..., 2)``."""
        cost = np.einsum("...s,...sa,a->...", m, pi, self.costs)
        return -(cost + kl(m, self.zeta))

    def expected_next(self, m: np.ndarray, pi: np.ndarray) -> np.ndarray:
        """E[M_{t+1} | M_t = m] = m P_pi (the n -> infinity mean-field dynamics), ``(..., 2)``."""
        return np.einsum("...s,...st->...t", m, self.device_kernel(pi))

    def count_transition(self, pi: np.ndarray) -> np.ndarray:
        """Exact ``(n+1, n+1)`` kernel of the ON count under prescription ``pi (2, 3)`` for n devices."""
        from scipy.stats import binom

        p = self.device_kernel(pi)  # (2, 2)
        j = np.arange(self.n + 1)
        out = np.zeros((self.n + 1, self.n + 1))
        for k in range(self.n + 1):
            from_off = binom.pmf(j[: self.n - k + 1], self.n - k, p[0, 1])  # ON among the n-k OFF devices
            from_on = binom.pmf(j[: k + 1], k, p[1, 1])  # ON among the k ON devices
            out[k] = np.convolve(from_off, from_on)
        return out

    def count_reward(self, pi: np.ndarray) -> np.ndarray:
        """``(n+1,)`` expected reward when k devices are ON (k = 0..n)."""
        k = np.arange(self.n + 1)
        m = np.stack([1 - k / self.n, k / self.n], axis=-1)  # (n+1, 2)
        return self.reward(m, np.broadcast_to(pi, (self.n + 1, 2, 3)))

    def initial_count(self) -> np.ndarray:
        """``(n+1,)`` distribution of the initial ON count, Binomial(n, p0[1])."""
        from scipy.stats import binom

        return binom.pmf(np.arange(self.n + 1), self.n, self.p0[1])


def _distribution(x: Sequence[float], name: str) -> np.ndarray:
    d = np.asarray(x, dtype=np.float64)
    if d.shape != (2,) or (d < 0).any() or not np.isclose(d.sum(), 1.0):
        raise ConfigError(f"demand_response: {name} must be a distribution over 2 states, got {list(x)}")
    return d


@register_env("demand_response")
class DemandResponseEnv(NumpyVecEnv):
    """``num_envs`` populations of devices; env i draws from its own stream (``numpy_vec``'s seeding)."""

    def __init__(
        self,
        num_envs: int,
        seed: Seed = None,
        n_agents: int = 100,
        natural_dynamics: Sequence[Sequence[float]] = ((0.25, 0.75), (0.375, 0.625)),
        eps_off: float = 0.2,
        eps_on: float = 0.2,
        cost_off: float = 0.1,
        cost_on: float = 0.2,
        target: Sequence[float] = (0.7, 0.3),
        initial_dist: Sequence[float] | None = None,
        episode_limit: int = 100,
        metric_gamma: float = 0.9,
    ) -> None:
        if num_envs < 1 or n_agents < 1 or episode_limit < 1:
            raise ConfigError("demand_response needs num_envs, n_agents and episode_limit >= 1")
        d = np.asarray(natural_dynamics, dtype=np.float64)  # (2, 2)
        if d.shape != (2, 2) or (d < 0).any() or not np.allclose(d.sum(axis=1), 1.0):
            raise ConfigError(f"demand_response: natural_dynamics must be row-stochastic 2x2, got {d.tolist()}")
        if not (0.0 <= eps_off <= 1.0 and 0.0 <= eps_on <= 1.0):
            raise ConfigError("demand_response: eps_off and eps_on must lie in [0, 1]")
        if initial_dist is None:
            p0 = np.array([d[1, 0], d[0, 1]]) / (d[0, 1] + d[1, 0])  # stationary distribution of D
        else:
            p0 = _distribution(initial_dist, "initial_dist")
        kernels = np.stack([
            d,
            (1 - eps_off) * np.array([[1.0, 0.0], [1.0, 0.0]]) + eps_off * d,
            (1 - eps_on) * np.array([[0.0, 1.0], [0.0, 1.0]]) + eps_on * d,
        ])  # (3, 2, 2), eqs. (10)-(12)
        self.model = MeanFieldModel(
            n=n_agents, kernels=kernels, costs=np.array([0.0, cost_off, cost_on]),
            zeta=_distribution(target, "target"), p0=p0,
        )
        super().__init__(num_envs, seed)
        self.n_agents = n_agents
        self.n_actions = 3
        self.episode_limit = episode_limit
        self.obs_shape, self.state_shape = 2, n_agents + 1
        self.metric_gamma = float(metric_gamma)
        self.p_on = kernels[:, :, 1]  # (3, 2) P(S' = 1 | a, s)
        self.devices = np.zeros((num_envs, n_agents), dtype=np.int64)  # (E, n) S_i, 1 = ON
        self.discounted_return = np.zeros(num_envs)  # (E,)

    def mean_field_model(self) -> MeanFieldModel:
        """The exact per-device kernels, costs and mean-field dynamics (App. D.2)."""
        return self.model

    def _obs(self, ids: np.ndarray) -> EnvObs:
        s = self.devices[ids].astype(np.float32)  # (k, n)
        m_on = s.mean(axis=1, keepdims=True)  # (k, 1)
        obs = np.stack([s, np.broadcast_to(m_on, s.shape)], axis=2)  # (k, n, 2)
        return EnvObs(
            obs=obs,
            state=np.concatenate([s, m_on], axis=1),  # (k, n + 1)
            avail_actions=np.ones((len(ids), self.n_agents, 3), dtype=bool),  # (k, n, 3)
        )

    def reset(self, env_ids: Sequence[int]) -> EnvObs:
        ids = np.asarray(env_ids, dtype=np.intp)
        self.devices[ids] = self.rngs.uniform(ids, self.n_agents) < self.model.p0[1]
        self.t[ids] = 0
        self.discounted_return[ids] = 0.0
        return self._obs(ids)

    def step(self, env_ids: Sequence[int], actions: np.ndarray) -> StepResult:
        ids = np.asarray(env_ids, dtype=np.intp)
        a = np.asarray(actions).astype(np.intp)
        if a.shape != (len(ids), self.n_agents):
            raise ValueError(f"demand_response: actions have shape {a.shape}, expected {(len(ids), self.n_agents)}")
        s = self.devices[ids]  # (k, n)
        m_on = s.mean(axis=1)  # (k,) M_t before the transition
        m = np.stack([1 - m_on, m_on], axis=1)  # (k, 2)
        reward = -(self.model.costs[a].mean(axis=1) + kl(m, self.model.zeta))  # (k,)
        self.devices[ids] = self.rngs.uniform(ids, self.n_agents) < self.p_on[a, s]  # (k, n)
        self.discounted_return[ids] += self.metric_gamma ** self.t[ids] * reward
        return self._time_limit_result(
            ids, self._obs(ids), reward, lambda i: {"discounted_return": float(self.discounted_return[i])}
        )
