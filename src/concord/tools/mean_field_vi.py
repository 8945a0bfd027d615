"""Exact optimum of demand response: value iteration on the mean-field count MDP over randomised prescriptions.

With mean-field sharing the common information is the ON count k_t = n M_t(ON) (dadc.md §2, App. D.2; it is an
information state, App. E.2). A randomised prescription π[s, a] (the same for every device, Thm. 1) moves each
OFF device ON with p_0 = Σ_a π[0, a] P[a, 0, 1] and each ON device stays ON with p_1 = Σ_a π[1, a] P[a, 1, 1], so
    k' ~ Binomial(n - k, p_0) + Binomial(k, p_1),
    r(k, π) = -[(1 - k/n) c(π[0]) + (k/n) c(π[1]) + KL(M_k || ζ)],   c(π[s]) = Σ_a π[s, a] c_a   (eq. 13).
Only (p_0, p_1) enter the dynamics, so for each row the cheapest randomisation reaching p_s lies on the lower
convex hull of the action points (P[a, s, 1], c_a) (a mix of at most two actions). Each hull segment is gridded
with ``grid`` steps (the pure actions are grid points) and eq. (2) is iterated over the grid's (p_0, p_1) pairs;
the value is thus exact for the gridded prescription set and a lower bound on the continuum's.

``simulate`` runs the greedy policy in the decentralised env: every device reads the common m_t, computes the
same prescription, and samples its own action from the row of its own state.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import binom

from concord.envs.demand_response import DemandResponseEnv, MeanFieldModel, kl


@dataclass
class RowChoices:
    """A device state's gridded randomised prescriptions: P(ON next) ``p (G,)``, cost ``cost (G,)``, rows ``pi (G, A)``."""

    p: np.ndarray
    cost: np.ndarray
    pi: np.ndarray


def row_choices(model: MeanFieldModel, s: int, grid: int) -> RowChoices:
    """Grid of the lower convex hull of {(P[a, s, 1], c_a)}: the cheapest prescriptions per reachable p_s."""
    p_a, c_a = model.kernels[:, s, 1], model.costs  # (A,), (A,)
    order = np.lexsort((c_a, p_a))
    hull: list[int] = []  # lower hull (monotone chain) over the points sorted by p
    for a in order:
        while len(hull) >= 2:
            o, m = hull[-2], hull[-1]
            cross = (p_a[m] - p_a[o]) * (c_a[a] - c_a[o]) - (c_a[m] - c_a[o]) * (p_a[a] - p_a[o])
            if cross > 0:
                break
            hull.pop()
        hull.append(int(a))
    pis = []
    for i, (a, b) in enumerate(zip(hull[:-1], hull[1:])):
        for w in np.linspace(0.0, 1.0, grid + 1)[(1 if i else 0):]:
            row = np.zeros(len(p_a))
            row[a] += 1.0 - w
            row[b] += w
            pis.append(row)
    pi = np.stack(pis) if pis else np.eye(len(p_a))[hull]
    return RowChoices(p=pi @ p_a, cost=pi @ c_a, pi=pi)


@dataclass
class CountMDP:
    """The count MDP's value ``v (n+1,)``, greedy choice indices ``(n+1, 2)`` into the rows, and the rows."""

    v: np.ndarray
    policy: np.ndarray
    rows: tuple[RowChoices, RowChoices]
    value0: float  # E[V(k_0)], k_0 ~ Binomial(n, P0(ON))

    def prescription(self, k: np.ndarray) -> np.ndarray:
        """π[s, a] for counts k (...,) -> (..., 2, A)."""
        g = self.policy[k]  # (..., 2)
        return np.stack([self.rows[0].pi[g[..., 0]], self.rows[1].pi[g[..., 1]]], axis=-2)


def value_iteration(model: MeanFieldModel, gamma: float, grid: int = 20, tol: float = 1e-11,
                    max_iter: int = 10_000) -> CountMDP:
    """Fixed point of eq. (2) on k in 0..n over the gridded (p_0, p_1) and the greedy policy (lowest index on ties)."""
    n = model.n
    rows = (row_choices(model, 0, grid), row_choices(model, 1, grid))
    k = np.arange(n + 1)
    i = np.arange(n + 1)
    # B0[g, k, i] = P(i of the n-k OFF devices turn ON), B1[g, k, l] = P(l of the k ON devices stay ON)
    B0 = binom.pmf(i[None, None, :], (n - k)[None, :, None], rows[0].p[:, None, None])  # (G0, n+1, n+1)
    B1 = binom.pmf(i[None, None, :], k[None, :, None], rows[1].p[:, None, None])  # (G1, n+1, n+1)
    m = np.stack([1 - k / n, k / n], axis=-1)  # (n+1, 2)
    reward = -(m[:, 0, None, None] * rows[0].cost[None, :, None] + m[:, 1, None, None] * rows[1].cost[None, None, :]
               + kl(m, model.zeta)[:, None, None])  # (n+1, G0, G1)
    ii, ll = np.meshgrid(i, i, indexing="ij")
    inside = torch.from_numpy(ii + ll <= n)
    sums = torch.from_numpy(np.minimum(ii + ll, n))
    # the contractions run in torch (float64), which keeps to torch's thread setting on a shared machine
    B0k = torch.from_numpy(np.ascontiguousarray(B0.transpose(1, 0, 2)))  # (n+1 k, G0, n+1 i)
    B1t = torch.from_numpy(B1)
    reward_t = torch.from_numpy(reward)
    v = np.zeros(n + 1)

    def q_values(v: np.ndarray) -> np.ndarray:
        vt = torch.from_numpy(v)
        hank = torch.where(inside, vt[sums], 0.0)  # (i, l) V(i + l)
        w = B1t @ hank.T  # (G1, k, i) E[V(i + L)], L ~ Binomial(k, p_1)
        ev = B0k @ w.permute(1, 2, 0)  # (k, G0, G1)
        return (reward_t + gamma * ev).numpy()

    for _ in range(max_iter):
        v_new = q_values(v).reshape(n + 1, -1).max(-1)
        done = np.abs(v_new - v).max() < tol
        v = v_new
        if done:
            break
    q = q_values(v).reshape(n + 1, -1)
    flat = np.argmax(q >= q.max(-1, keepdims=True) - 1e-12, axis=-1)  # (n+1,) lowest index within 1e-12
    policy = np.stack(np.unravel_index(flat, (len(rows[0].p), len(rows[1].p))), axis=-1)
    value0 = float(model.initial_count() @ v)
    return CountMDP(v=v, policy=policy, rows=rows, value0=value0)


def simulate(mdp: CountMDP, env: DemandResponseEnv, gamma: float, seed: int = 0) -> np.ndarray:
    """Discounted returns of the greedy policy over ``env.num_envs`` episodes, decentralised: each device applies
    the prescription (computed from the common m_t) to its own state with its own random draw."""
    rng = np.random.default_rng(seed)
    n_env, n = env.num_envs, env.n_agents
    ids = np.arange(n_env)
    obs = env.reset(ids).obs  # (E, n, 2)
    ret = np.zeros(n_env)
    for t in range(env.episode_limit):
        k = np.rint(obs[:, :, 1] * n).astype(np.int64)  # (E, n) every device's reading of the common count
        pi = mdp.prescription(k)  # (E, n, 2, A)
        own = np.take_along_axis(pi, obs[:, :, 0].astype(np.int64)[..., None, None], axis=2)[:, :, 0]  # (E, n, A)
        u = rng.random((n_env, n, 1))  # each device's own draw
        actions = np.minimum((np.cumsum(own, -1) <= u).sum(-1), own.shape[-1] - 1)  # (E, n)
        res = env.step(ids, actions)
        ret += gamma**t * res.reward
        obs = res.obs.obs
    return ret
