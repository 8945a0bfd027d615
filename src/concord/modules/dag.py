"""The differentiable DAG learner of BN-DAG policies (bn_dag_policies.md §6.1, Fig. 2, Table 2).

A DAG over N agents is G = Πᵀ U Π (Charpentier et al. 2022): Π a permutation matrix (row p holds the agent at
topological position p) and U a strictly upper-triangular edge matrix over positions, so G[j, i] = U[pos(j), pos(i)]
is 1 iff agent j is a parent of agent i, and G is acyclic by construction. The permutation net outputs logits l_Π
(N, N), turned into Π by Gumbel-Sinkhorn (Mena et al. 2018): Π_soft = Sinkhorn((l_Π + g)/τ), Π_hard = the
assignment maximising ⟨l_Π + g, Π⟩ (scipy's ``linear_sum_assignment``), straight-through Π = Π_hard + Π_soft −
sg(Π_soft). The edge net outputs two logits per entry (2N², Table 2), turned into U by straight-through
Gumbel-softmax; with two classes that is U_soft = σ((l¹ − l⁰ + ε)/τ), ε ~ Logistic(0, 1) (the difference of two
Gumbels), U_hard = [l¹ − l⁰ + ε > 0], masked to the strict upper triangle.

The noise (ε, g) is drawn at rollout and stored with the hard DAG, so that a learner rebuilds the straight-through
DAG of exactly the sampled graph (its value is the stored G, bit for bit) with gradients to the current nets.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def sinkhorn(log_alpha: torch.Tensor, n_iters: int) -> torch.Tensor:
    """Sinkhorn normalisation in log space: (..., N, N) -> a doubly stochastic (..., N, N) (Mena et al. 2018, Eq. 4)."""
    for _ in range(n_iters):
        log_alpha = log_alpha - torch.logsumexp(log_alpha, dim=-1, keepdim=True)
        log_alpha = log_alpha - torch.logsumexp(log_alpha, dim=-2, keepdim=True)
    return log_alpha.exp()


def hard_assignment(scores: np.ndarray) -> np.ndarray:
    """The permutation maximising Σ_p scores[p, order[p]] for each row of (k, N, N) -> order (k, N) int64."""
    from scipy.optimize import linear_sum_assignment  # imported here: scipy.optimize costs ~1 s of start-up

    order = np.empty(scores.shape[:2], dtype=np.int64)
    for e in range(scores.shape[0]):
        _, cols = linear_sum_assignment(scores[e], maximize=True)
        order[e] = cols
    return order


def permutation_matrix(order: torch.Tensor, n: int) -> torch.Tensor:
    """order (..., N) (agent at each position) -> Π (..., N, N) with Π[p, order[p]] = 1."""
    return torch.nn.functional.one_hot(order.long(), n).float()


def strict_upper(n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """The (N, N) mask of the strict upper triangle (edges from earlier to later positions)."""
    return torch.triu(torch.ones(n, n, device=device), diagonal=1)


def compose_dag(perm: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """G = Πᵀ U Π (§6.1): perm (..., N, N), edges over positions (..., N, N) -> G over agents (..., N, N)."""
    return perm.transpose(-1, -2) @ edges @ perm


def density(g: torch.Tensor) -> torch.Tensor:
    """ρ(G) = 2 ΣG / (N(N − 1)) (§6.3) of (..., N, N) -> (...); 0 for a single agent."""
    n = g.shape[-1]
    return g.sum(dim=(-1, -2)) * (2.0 / max(n * (n - 1), 1))


def fixed_dag(kind: str, n: int) -> np.ndarray:
    """The baselines' DAGs of §7.2 with topological order 1..N, G[j, i] = 1 iff j is a parent of i:
    ``uncorrelated`` (no edge), ``line`` ({(j, j+1)}, the paper's definition) and ``fully`` (every j < i)."""
    if kind == "uncorrelated":
        return np.zeros((n, n), dtype=np.float32)
    if kind == "line":
        return np.eye(n, k=1, dtype=np.float32)
    if kind == "fully":
        return np.triu(np.ones((n, n), dtype=np.float32), k=1)
    raise ValueError(f"unknown fixed DAG '{kind}'")


def is_acyclic(g: np.ndarray) -> bool:
    """True iff the adjacency matrix (N, N) has no directed cycle (its N-th power is zero)."""
    n = g.shape[0]
    m = (g != 0).astype(np.int64)
    p = np.eye(n, dtype=np.int64)
    for _ in range(n):
        p = np.minimum(p @ m, 1)
    return not p.any()


class MLPHead(nn.Module):
    """Concat(o¹..o^N) – FC(hidden) – ReLU – FC(out) (Table 2: Aloha and SMAC edge nets, CG/Aloha permutation nets)."""

    def __init__(self, n_agents: int, obs_dim: int, hidden: int, out: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_agents * obs_dim, hidden), nn.ReLU(), nn.Linear(hidden, out))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """obs (..., N, obs_dim) -> (..., out)."""
        return self.net(obs.flatten(-2))


class DeepSetHead(nn.Module):
    """DeepSet (Table 2, CG edge net): encoder FC–ReLU–FC–ReLU–FC per agent, mean over agents, decoder
    FC–ReLU–FC–ReLU–FC(out)."""

    def __init__(self, obs_dim: int, hidden: int, out: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, hidden))
        self.decoder = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                     nn.Linear(hidden, out))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """obs (..., N, obs_dim) -> (..., out)."""
        return self.decoder(self.encoder(obs).mean(dim=-2))


class DAGLearner(nn.Module):
    """Edge net U and permutation net Π (or Π = I) of §6.1: samples hard DAGs with their noise, and rebuilds the
    straight-through DAG of stored samples."""

    def __init__(self, n_agents: int, obs_dim: int, hidden: int, edge_net: str, perm_net: str, tau: float,
                 sinkhorn_iters: int) -> None:
        super().__init__()
        n = self.n_agents = n_agents
        self.tau, self.sinkhorn_iters = tau, sinkhorn_iters
        out = 2 * n * n  # two logits per edge entry (Table 2: FC(2N²))
        self.edge_net = DeepSetHead(obs_dim, hidden, out) if edge_net == "deepset" else MLPHead(n, obs_dim, hidden, out)
        self.learn_perm = perm_net != "identity"
        if self.learn_perm:  # N² permutation logits (Table 2 writes FC(2N²); a permutation needs N²)
            self.perm_net = DeepSetHead(obs_dim, hidden, n * n) if perm_net == "deepset" else \
                MLPHead(n, obs_dim, hidden, n * n)
        self.register_buffer("upper", strict_upper(n), persistent=False)

    def logits(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """obs (..., N, obs_dim) -> edge logit differences l¹ − l⁰ (..., N, N), permutation logits (..., N, N) or None."""
        n = self.n_agents
        e = self.edge_net(obs).unflatten(-1, (n, n, 2))  # (..., N, N, 2)
        edge = e[..., 1] - e[..., 0]  # (..., N, N)
        perm = self.perm_net(obs).unflatten(-1, (n, n)) if self.learn_perm else None
        return edge, perm

    @torch.no_grad()
    def sample(self, obs: torch.Tensor, noise: bool) -> dict[str, np.ndarray]:
        """Hard DAGs for rollouts: obs (k, N, obs_dim) -> ``dag_edges`` (k, N, N) over agents, ``dag_order`` (k, N)
        and the noise drawn (``dag_edge_noise``, ``dag_perm_noise``, (k, N, N); zero when ``noise`` is False)."""
        k, n = obs.shape[0], self.n_agents
        edge, perm = self.logits(obs)
        eps = np.random.logistic(size=(k, n, n)).astype(np.float32) if noise else np.zeros((k, n, n), np.float32)
        u = ((edge.cpu().numpy() + eps) > 0).astype(np.float32) * self.upper.cpu().numpy()  # (k, N, N) positions
        if perm is not None:
            g = np.random.gumbel(size=(k, n, n)).astype(np.float32) if noise else np.zeros((k, n, n), np.float32)
            order = hard_assignment(perm.cpu().numpy() + g)  # (k, N)
        else:
            g = np.zeros((k, n, n), np.float32)
            order = np.broadcast_to(np.arange(n), (k, n)).copy()
        pos = np.argsort(order, axis=1)  # (k, N): each agent's position
        edges = u[np.arange(k)[:, None, None], pos[:, :, None], pos[:, None, :]]  # (k, N, N): Πᵀ U Π over agents
        return {"dag_edges": edges, "dag_order": order, "dag_edge_noise": eps, "dag_perm_noise": g}

    def straight_through(self, obs: torch.Tensor, edges: torch.Tensor, order: torch.Tensor,
                         edge_noise: torch.Tensor, perm_noise: torch.Tensor) -> torch.Tensor:
        """The stored DAGs with straight-through gradients: obs (..., N, obs_dim), stored ``edges`` (..., N, N) over
        agents, ``order`` (..., N) and noise (..., N, N) -> G (..., N, N) whose value equals ``edges``."""
        n = self.n_agents
        edge, perm = self.logits(obs)
        pi_hard = permutation_matrix(order, n)  # (..., N, N)
        if perm is not None:
            pi_soft = sinkhorn((perm + perm_noise) / self.tau, self.sinkhorn_iters)  # (..., N, N)
            pi = pi_hard + (pi_soft - pi_soft.detach())
        else:
            pi = pi_hard
        u_hard = pi_hard @ edges @ pi_hard.transpose(-1, -2)  # (..., N, N): U = Π G Πᵀ over positions
        u_soft = torch.sigmoid((edge + edge_noise) / self.tau) * self.upper  # (..., N, N)
        u = u_hard + (u_soft - u_soft.detach())
        return compose_dag(pi, u)
