"""Multi-access broadcast channel (dadc.md App. D.1, §6), a batch of envs with its exact model.

State (B1, B2, S): buffer occupancies B_j in {0,1} and the channel, S = 1 busy, S = 0 idle [P].
Action A_j = 1 means *transmit* [P]: the text says 0 = transmit, but the paper's own dynamics and
reward need 1. Per step, with the state before the transition [P]:
  R = -kappa (A1 + A2) + r (A1 xor A2)(1 - S),  kappa = 0.4, r = 1
  B'_j = min(B_j - A_j (1 - A_-j)(1 - S) + W_j, 1),  W_j ~ Bernoulli(p_j), p = (0.3, 0.6)
  P(S' = 0 | S = 0) = alpha0 = 0.75,  P(S' = 1 | S = 1) = alpha1 = 0.75 (independent of arrivals).
gamma = 0.9 [P E.1]. The task is infinite-horizon: ``episode_limit`` (100 [X]; 0.9^100 ~ 3e-5) ends
an episode by truncation only. Metric: the discounted return with ``metric_gamma`` (0.9, keep it
equal to ``gamma``), ``discounted_return`` in the last step's info, to compare with the
value-iteration optimum of ``tabular_model()`` [P §6].

Choices where the paper is silent [X] (yaml keys):
- ``empty_transmit``: transmitting with an empty buffer would give B = -1. ``"mask"`` (default)
  makes it unavailable; ``"noop"`` allows it. Either way it acts as "no transmit" (no cost, no
  reward), and the last joint action that agents observe is this effective action;
- observation of agent j: [B_j, A1_{t-1}, A2_{t-1}, 1{S_{t-1}=0 seen}, 1{S_{t-1}=1 seen}]; the
  channel is seen (as in the slot they transmitted in, S_{t-1}) only if anyone transmitted at t-1,
  and both flags are 0 otherwise, and at t = 0. The state is (B1, B2, S);
- initial state: B = (0, 0), S ~ [1 - initial_busy_prob, initial_busy_prob] with 0.5, the
  stationary distribution for alpha0 = alpha1.
"""
from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np

from concord.envs.base import EnvObs, StepResult
from concord.envs.numpy_vec import NumpyVecEnv
from concord.envs.seeding import Seed
from concord.envs.tabular import TabularModel
from concord.errors import ConfigError
from concord.registry import register_env

EMPTY_TRANSMIT = ("mask", "noop")


@register_env("mabc")
class MABCEnv(NumpyVecEnv):
    """``num_envs`` MABC channels; env i draws from its own stream (``numpy_vec``'s seeding)."""

    def __init__(
        self,
        num_envs: int,
        seed: Seed = None,
        arrival_probs: Sequence[float] = (0.3, 0.6),
        alpha0: float = 0.75,
        alpha1: float = 0.75,
        kappa: float = 0.4,
        success_reward: float = 1.0,
        initial_busy_prob: float = 0.5,
        empty_transmit: str = "mask",
        episode_limit: int = 100,
        metric_gamma: float = 0.9,
    ) -> None:
        probs = [float(p) for p in arrival_probs]
        if len(probs) != 2 or not all(0.0 <= p <= 1.0 for p in [*probs, alpha0, alpha1, initial_busy_prob]):
            raise ConfigError("mabc: arrival_probs (two), alpha0, alpha1 and initial_busy_prob must lie in [0, 1]")
        if empty_transmit not in EMPTY_TRANSMIT:
            raise ConfigError(f"mabc: empty_transmit must be one of {EMPTY_TRANSMIT}, got '{empty_transmit}'")
        if num_envs < 1 or episode_limit < 1:
            raise ConfigError("mabc needs num_envs >= 1 and episode_limit >= 1")
        super().__init__(num_envs, seed)
        self.n_agents = 2
        self.n_actions = 2
        self.episode_limit = episode_limit
        self.obs_shape, self.state_shape = 5, 3
        self.arrival_probs = np.array(probs)  # (2,)
        self.alpha0, self.alpha1 = float(alpha0), float(alpha1)
        self.kappa, self.success_reward = float(kappa), float(success_reward)
        self.initial_busy_prob = float(initial_busy_prob)
        self.empty_transmit = empty_transmit
        self.metric_gamma = float(metric_gamma)
        self.buffers = np.zeros((num_envs, 2), dtype=np.int64)  # (E, 2) B1, B2
        self.channel = np.zeros(num_envs, dtype=np.int64)  # (E,) S: 1 busy, 0 idle
        self.last_action = np.zeros((num_envs, 2), dtype=np.int64)  # (E, 2) effective A_{t-1}
        self.seen_channel = np.full(num_envs, -1, dtype=np.int64)  # (E,) S_{t-1} if seen, else -1
        self.discounted_return = np.zeros(num_envs)  # (E,)

    def _obs(self, ids: np.ndarray) -> EnvObs:
        k = len(ids)
        common = np.concatenate(
            [self.last_action[ids], self.seen_channel[ids, None] == 0, self.seen_channel[ids, None] == 1], axis=1
        )  # (k, 4)
        obs = np.concatenate([self.buffers[ids][:, :, None], np.repeat(common[:, None, :], 2, axis=1)], axis=2)
        avail = np.ones((k, 2, 2), dtype=bool)  # (k, 2, 2)
        if self.empty_transmit == "mask":
            avail[:, :, 1] = self.buffers[ids] > 0
        state = np.concatenate([self.buffers[ids], self.channel[ids, None]], axis=1)  # (k, 3)
        return EnvObs(obs=obs.astype(np.float32), state=state.astype(np.float32), avail_actions=avail)  # obs (k, 2, 5)

    def reset(self, env_ids: Sequence[int]) -> EnvObs:
        ids = np.asarray(env_ids, dtype=np.intp)
        self.buffers[ids] = 0
        self.channel[ids] = self.rngs.uniform(ids, 1)[:, 0] < self.initial_busy_prob
        self.last_action[ids] = 0
        self.seen_channel[ids] = -1
        self.t[ids] = 0
        self.discounted_return[ids] = 0.0
        return self._obs(ids)

    def step(self, env_ids: Sequence[int], actions: np.ndarray) -> StepResult:
        ids = np.asarray(env_ids, dtype=np.intp)
        a = np.asarray(actions).astype(np.int64)
        if a.shape != (len(ids), 2):
            raise ValueError(f"mabc: actions have shape {a.shape}, expected {(len(ids), 2)}")
        buf, s = self.buffers[ids], self.channel[ids]  # (k, 2), (k,)
        a = a & buf  # (k, 2) effective action: an empty buffer cannot transmit
        n_tx = a.sum(axis=1)  # (k,)
        success = (n_tx == 1) & (s == 0)  # (k,) exactly one transmits on an idle channel
        reward = -self.kappa * n_tx + self.success_reward * success  # (k,)
        u = self.rngs.uniform(ids, 3)  # (k, 3): arrivals of devices 1, 2; channel
        arrivals = u[:, :2] < self.arrival_probs  # (k, 2)
        self.buffers[ids] = np.minimum(buf - a * success[:, None] + arrivals, 1)
        self.channel[ids] = np.where(s == 0, u[:, 2] >= self.alpha0, u[:, 2] < self.alpha1)
        self.last_action[ids] = a
        self.seen_channel[ids] = np.where(n_tx > 0, s, -1)
        self.discounted_return[ids] += self.metric_gamma ** self.t[ids] * reward
        return self._time_limit_result(
            ids, self._obs(ids), reward, lambda i: {"discounted_return": float(self.discounted_return[i])}
        )

    def tabular_model(self) -> TabularModel:
        """Exact model over 8 states x 4 joint actions (App. D.1).

        State index ``4 B1 + 2 B2 + S``, joint action index ``2 A1 + A2`` (C order). Transmitting
        with an empty buffer is "no transmit"; with ``empty_transmit="mask"`` ``avail`` marks it
        unavailable.
        """
        p_s = {0: np.array([self.alpha0, 1 - self.alpha0]), 1: np.array([1 - self.alpha1, self.alpha1])}  # P(S'|S)
        T = np.zeros((8, 4, 8))
        R = np.zeros((8, 4))
        avail = np.ones((8, 4), dtype=bool)
        for b1, b2, s, a1, a2 in itertools.product((0, 1), repeat=5):
            si, ai = 4 * b1 + 2 * b2 + s, 2 * a1 + a2
            avail[si, ai] = a1 <= b1 and a2 <= b2
            e1, e2 = a1 & b1, a2 & b2  # effective actions
            success = (e1 ^ e2) & (s == 0)
            R[si, ai] = -self.kappa * (e1 + e2) + self.success_reward * success
            stay = [b - e * success for b, e in ((b1, e1), (b2, e2))]  # buffer after a departure
            p_b = [np.array([1 - p, p]) if st == 0 else np.array([0.0, 1.0]) for st, p in zip(stay, self.arrival_probs)]
            T[si, ai] = np.einsum("i,j,k->ijk", p_b[0], p_b[1], p_s[s]).ravel()  # (B1', B2', S')
        mu = np.zeros(8)
        mu[0], mu[1] = 1 - self.initial_busy_prob, self.initial_busy_prob  # B = (0, 0), S ~ initial
        return TabularModel(
            T=T, R=R, mu=mu, state_shape=(2, 2, 2), action_shape=(2, 2), state_factors=("B1", "B2", "S"),
            avail=avail if self.empty_transmit == "mask" else None,
        )
