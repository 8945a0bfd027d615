"""Exact optimum of MABC: value iteration on the common-information belief MDP (dadc.md Thm. 2, eq. 2).

The coordinator's state is the belief b_t on S_t = (B1, B2, S) given the common information (the last effective
joint action, and the channel if anyone transmitted) and past prescriptions. A prescription h from a set
(``MABC_OPTIONS``: the paper's 3 or the full 4) fixes each state's joint action a_h(s); the common observation
z(s, a) reveals the buffers of the agents allowed to transmit. Belief update (Thm. 2's Φ):
    b'_z(s') ∝ Σ_s b(s) 1{z(s, a_h(s)) = z} T[s, a_h(s), s'],   P(z | b, h) = Σ_s b(s) 1{z(s, a_h(s)) = z}.
The reachable beliefs from b_0 = mu are enumerated breadth first; beliefs equal after rounding to ``decimals``
are merged (the belief set is countable but converges geometrically), which changes values by ~10^-decimals.
Then eq. (2) is iterated to a fixed point and ψ*(b) = argmax (ties: the lowest option, the consistent rule §3).

``simulate`` runs the greedy policy in the decentralised env: each agent tracks the belief node itself from its
own copy of the common observation and applies its component of ψ*(b) to its own buffer.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from concord.components.prescriptions import MABC_OPTIONS
from concord.envs.mabc import MABCEnv
from concord.envs.tabular import TabularModel

N_OBS = 7  # z: nobody transmitted, or (A1, A2) in {(1,0), (0,1), (1,1)} x channel S in {0, 1}


def obs_index(a1: np.ndarray, a2: np.ndarray, seen_idle: np.ndarray, seen_busy: np.ndarray) -> np.ndarray:
    """Index of the common observation [A1, A2, S=idle seen, S=busy seen] (the env's obs[:, k, 1:5])."""
    joint = 2 * a1 + a2  # 0 when nobody transmitted (then neither flag is set)
    return np.where(joint == 0, 0, 1 + 2 * (joint - 1) + seen_busy * (1 - seen_idle))


@dataclass
class BeliefMDP:
    """Reachable beliefs ``(N, 8)`` and, per belief and prescription, the reward ``(N, H)``, observation
    probabilities ``(N, H, 7)`` and successor belief indices ``(N, H, 7)`` (-1 where P(z) = 0)."""

    beliefs: np.ndarray
    reward: np.ndarray
    prob: np.ndarray
    succ: np.ndarray
    options: tuple[tuple[int, int], ...]

    def q_values(self, v: np.ndarray, gamma: float) -> np.ndarray:
        """Right-hand side of eq. (2) for every belief and prescription: (N, H)."""
        nxt = np.where(self.succ >= 0, v[np.maximum(self.succ, 0)], 0.0)  # (N, H, Z)
        return self.reward + gamma * (self.prob * nxt).sum(-1)


def prescription_kernels(model: TabularModel, options: tuple[tuple[int, int], ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per prescription h: M[h, z] = diag(1{z(s) = z}) T[s, a_h(s), :] ``(H, 7, 8, 8)`` and R[s, a_h(s)] ``(H, 8)``."""
    s_idx = np.arange(8)
    b1, b2, ch = s_idx // 4, (s_idx // 2) % 2, s_idx % 2  # state index 4 B1 + 2 B2 + S
    M = np.zeros((len(options), N_OBS, 8, 8))
    R = np.zeros((len(options), 8))
    for h, (g1, g2) in enumerate(options):
        e1, e2 = g1 * b1, g2 * b2  # (8,) effective actions: transmit iff allowed and a packet is buffered
        a = 2 * e1 + e2  # joint action index 2 A1 + A2
        anyone = (e1 + e2) > 0
        z = obs_index(e1, e2, anyone * (ch == 0), anyone * (ch == 1))  # (8,)
        R[h] = model.R[s_idx, a]
        M[h, z, s_idx] = model.T[s_idx, a]
    return M, R


def build_belief_mdp(env: MABCEnv, prescriptions: str = "mabc3", decimals: int = 9,
                     max_beliefs: int = 200_000) -> BeliefMDP:
    """Enumerate the beliefs reachable from mu under any sequence of prescriptions of the set."""
    model = env.tabular_model()
    options = MABC_OPTIONS[prescriptions]
    M, R = prescription_kernels(model, options)
    beliefs = [model.mu.copy()]
    index = {tuple(np.round(model.mu, decimals)): 0}
    rows_prob, rows_succ = [], []
    frontier = [0]
    while frontier:
        b = np.stack([beliefs[i] for i in frontier])  # (F, 8)
        un = np.einsum("fs,hzst->fhzt", b, M)  # (F, H, Z, 8) unnormalised next beliefs
        p = un.sum(-1)  # (F, H, Z)
        nxt = un / np.where(p > 0, p, 1.0)[..., None]
        succ = np.full(p.shape, -1, dtype=np.int64)
        new = []
        for f, h, z in zip(*np.nonzero(p > 1e-15)):
            key = tuple(np.round(nxt[f, h, z], decimals))
            j = index.get(key)
            if j is None:
                j = index[key] = len(beliefs)
                beliefs.append(nxt[f, h, z])
                new.append(j)
            succ[f, h, z] = j
        if len(beliefs) > max_beliefs:
            raise RuntimeError(f"more than {max_beliefs} beliefs; lower `decimals`")
        rows_prob.append(p)
        rows_succ.append(succ)
        frontier = new
    bel = np.stack(beliefs)
    return BeliefMDP(beliefs=bel, reward=bel @ R.T, prob=np.concatenate(rows_prob), succ=np.concatenate(rows_succ),
                     options=options)


def value_iteration(mdp: BeliefMDP, gamma: float, tol: float = 1e-11, max_iter: int = 10_000
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Fixed point V of eq. (2) on the reachable beliefs and the greedy policy ψ* (lowest index on ties)."""
    v = np.zeros(len(mdp.beliefs))
    for _ in range(max_iter):
        q = mdp.q_values(v, gamma)
        v_new = q.max(-1)
        if np.abs(v_new - v).max() < tol:
            v = v_new
            break
        v = v_new
    q = mdp.q_values(v, gamma)
    best = q.max(-1, keepdims=True)
    policy = np.argmax(q >= best - 1e-12, axis=-1)  # the lowest option within 1e-12 of the max
    return v, policy


def simulate(mdp: BeliefMDP, policy: np.ndarray, env: MABCEnv, gamma: float) -> np.ndarray:
    """Discounted returns of ψ* over ``env.num_envs`` episodes of ``env.episode_limit`` steps, decentralised:
    each agent updates its own belief node from its own observation row and acts on its own buffer."""
    n = env.num_envs
    ids = np.arange(n)
    obs = env.reset(ids).obs  # (E, 2, 5)
    nodes = [np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)]  # each agent's belief node
    opts = np.array(mdp.options)  # (H, 2)
    ret = np.zeros(n)
    for t in range(env.episode_limit):
        h = [policy[nodes[k]] for k in range(2)]  # (E,) each agent's own evaluation of ψ*
        actions = np.stack([opts[h[k], k] * obs[:, k, 0].astype(np.int64) for k in range(2)], axis=1)  # (E, 2)
        res = env.step(ids, actions)
        ret += gamma**t * res.reward
        obs = res.obs.obs
        for k in range(2):
            c = obs[:, k, 1:5].astype(np.int64)  # (E, 4) agent k's copy of the common observation
            z = obs_index(c[:, 0], c[:, 1], c[:, 2], c[:, 3])
            nodes[k] = mdp.succ[nodes[k], h[k], z]
            if (nodes[k] < 0).any():
                raise RuntimeError("an observation of probability 0 under the model occurred")
    if not np.array_equal(nodes[0], nodes[1]):
        raise RuntimeError("the agents' common-information beliefs diverged")
    return ret
