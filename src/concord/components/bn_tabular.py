"""Exact tabular softmax BN policies on a ``TabularModel``: values, the BN policy gradient of Lemma 5.1, the price
of anarchy and the Nash gap (bn_dag_policies.md §5, §7.1, §7.3, App. B.1).

Agent i's local policy is a softmax table π^i(a^i | s, a^{P^i}) ∝ exp θ^i[s, a^{P^i}, a^i] (Eq. 1) over the global
state and its parents' actions in a fixed DAG; the joint policy is their product (§4). Lemma 5.1:

    ∂V(μ)/∂θ^i[s, a^P, a^i] = 1/(1−γ) · d_μ(s) π(a^P | s) π^i(a^i | s, a^P) · (Q(s, a^{P+}) − Q(s, a^P))
                           = 1/(1−γ) · d_μ(s) · (Σ_{a ∋ a^{P+}} π(a|s) Q(s,a) − π^i(a^i|s,a^P) Σ_{a ∋ a^P} π(a|s) Q(s,a))

with d_μ the normalised discounted state visitation and Q of the joint policy, both by exact policy evaluation.
The Nash gap (§7.1) is max_i max_{π'^i} V(π'^i, π^{−i}) − V(π): agent i's best response keeps its parents (a
deterministic map from (s, a^{P^i}) to a^i, found by policy iteration; its children still condition on a^i).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from concord.envs.tabular import TabularModel


@dataclass(frozen=True)
class BNStructure:
    """Index tables of a DAG over a model's joint actions: for agent i, ``own[i]`` (A,) its action in each joint
    action, ``ctx[i]`` (A,) the flat index of its parents' actions, ``n_ctx[i]`` their number of configurations."""

    parents: tuple[tuple[int, ...], ...]
    own: tuple[np.ndarray, ...]
    ctx: tuple[np.ndarray, ...]
    n_ctx: tuple[int, ...]
    n_actions: tuple[int, ...]

    @classmethod
    def of(cls, model: TabularModel, edges: np.ndarray) -> BNStructure:
        """``edges`` (N, N), edges[j, i] = 1 iff j is a parent of i."""
        sizes = model.action_shape
        joint = model.action_of(np.arange(model.n_joint_actions))  # (A, N)
        parents, own, ctx, n_ctx = [], [], [], []
        for i in range(len(sizes)):
            p = tuple(int(j) for j in np.flatnonzero(edges[:, i]))
            shape = tuple(sizes[j] for j in p)
            parents.append(p)
            own.append(joint[:, i])
            ctx.append(np.ravel_multi_index(tuple(joint[:, j] for j in p), shape) if p else np.zeros(len(joint), np.int64))
            n_ctx.append(int(np.prod(shape)) if p else 1)
        return cls(tuple(parents), tuple(own), tuple(ctx), tuple(n_ctx), tuple(sizes))

    def init_params(self, n_states: int, rng: np.random.Generator) -> list[np.ndarray]:
        """θ^i ~ N(0, 1) (§7.3), each (S, n_ctx[i], n_actions[i])."""
        return [rng.standard_normal((n_states, c, a)) for c, a in zip(self.n_ctx, self.n_actions)]


def local_policies(theta: list[np.ndarray]) -> list[np.ndarray]:
    """Softmax tables π^i (S, C_i, A_i) of Eq. 1."""
    out = []
    for t in theta:
        z = np.exp(t - t.max(axis=-1, keepdims=True))
        out.append(z / z.sum(axis=-1, keepdims=True))
    return out


def joint_policy(pis: list[np.ndarray], bn: BNStructure, skip: int = -1) -> np.ndarray:
    """π(a | s) = Π_i π^i(a^i | s, a^{P^i}) (§4), (S, A); the product leaves out agent ``skip`` if given."""
    joint = None
    for i, p in enumerate(pis):
        if i == skip:
            continue
        f = p[:, bn.ctx[i], bn.own[i]]  # (S, A)
        joint = f if joint is None else joint * f
    return joint


def evaluate(model: TabularModel, joint: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact policy evaluation of a joint policy (S, A): V (S,), Q (S, A) and the normalised discounted
    visitation d_μ(s) = (1 − γ) Σ_t γ^t Pr(s_t = s) (S,)."""
    p_pi = np.einsum("sa,sat->st", joint, model.T)  # (S, S)
    r_pi = (joint * model.R).sum(axis=1)  # (S,)
    m = np.eye(model.n_states) - gamma * p_pi
    v = np.linalg.solve(m, r_pi)
    q = model.R + gamma * model.T @ v  # (S, A)
    d = (1.0 - gamma) * np.linalg.solve(m.T, model.mu)  # (S,)
    return v, q, d


def bn_policy_gradient(model: TabularModel, bn: BNStructure, theta: list[np.ndarray], gamma: float
                       ) -> tuple[list[np.ndarray], float]:
    """Lemma 5.1: the exact ∂V(μ)/∂θ^i for every agent, and V(μ)."""
    pis = local_policies(theta)
    joint = joint_policy(pis, bn)
    v, q, d = evaluate(model, joint, gamma)
    x = joint * q  # (S, A): π(a|s) Q(s, a)
    grads = []
    for i, p in enumerate(pis):
        c, a = bn.n_ctx[i], bn.n_actions[i]
        m_plus = np.zeros((model.n_states, c * a))
        np.add.at(m_plus.T, bn.ctx[i] * a + bn.own[i], x.T)  # Σ over joint actions with this (a^P, a^i)
        m_plus = m_plus.reshape(-1, c, a)  # (S, C, A_i): π(a^{P+}|s) Q(s, a^{P+})
        m_par = m_plus.sum(axis=-1, keepdims=True)  # (S, C, 1): π(a^P|s) Q(s, a^P)
        grads.append(d[:, None, None] / (1.0 - gamma) * (m_plus - p * m_par))
    return grads, float(model.mu @ v)


def optimal_value(model: TabularModel, gamma: float, tol: float = 1e-12) -> float:
    """J* = max over joint policies of V(μ), by value iteration on the joint MDP."""
    v = np.zeros(model.n_states)
    while True:
        new = (model.R + gamma * model.T @ v).max(axis=1)
        if np.abs(new - v).max() < tol:
            return float(model.mu @ new)
        v = new


def best_response_value(model: TabularModel, bn: BNStructure, pis: list[np.ndarray], i: int, gamma: float,
                        max_iters: int = 100) -> float:
    """max over π'^i(a^i | s, a^{P^i}) of V(π'^i, π^{−i})(μ), by policy iteration from π^i."""
    others = joint_policy(pis, bn, skip=i)  # (S, A)
    if others is None:
        others = np.ones_like(model.R)
    c, a = bn.n_ctx[i], bn.n_actions[i]
    cur = pis[i]
    flat = bn.ctx[i] * a + bn.own[i]  # (A,)
    for _ in range(max_iters):
        joint = others * cur[:, bn.ctx[i], bn.own[i]]
        v, q, _ = evaluate(model, joint, gamma)
        m = np.zeros((model.n_states, c * a))
        np.add.at(m.T, flat, (others * q).T)
        m = m.reshape(-1, c, a)  # (S, C, A_i): the value of each own action per parents' configuration
        best = m.argmax(axis=-1)  # (S, C)
        # keep the current action where it is already optimal (no cycling between ties)
        cur_val = (cur * m).sum(-1)
        if np.all(m.max(axis=-1) <= cur_val + 1e-12 * (1 + np.abs(cur_val))):
            return float(model.mu @ v)
        cur = np.eye(a)[best]
    return float(model.mu @ v)


def nash_gap(model: TabularModel, bn: BNStructure, theta: list[np.ndarray], gamma: float) -> float:
    """max_i (max_{π'^i} V(π'^i, π^{−i})(μ) − V(π)(μ)) (§7.1), ≥ 0."""
    pis = local_policies(theta)
    v, _, _ = evaluate(model, joint_policy(pis, bn), gamma)
    base = float(model.mu @ v)
    return max(0.0, max(best_response_value(model, bn, pis, i, gamma) - base for i in range(len(pis))))


def clip_by_global_norm(grads: list[np.ndarray], max_norm: float) -> list[np.ndarray]:
    """Scale gradients so that their joint L2 norm is at most ``max_norm``."""
    norm = float(np.sqrt(sum(float((g**2).sum()) for g in grads)))
    return grads if norm <= max_norm else [g * (max_norm / norm) for g in grads]
