"""VAST's sub-team assignment strategies X (vast.md Table 1, §4.2, §5.2): every agent -> one of K sub-teams.

Each strategy returns sub-team ids (B, T, N) in 0..K-1, so the sub-teams of a step always partition the agents
(some may be empty). ``random`` and ``metagrad`` draw from per-step uniforms (``step_uniforms``) that are a
function of a salt, the batch row, the step index and the agent, so that two calls with the same salt see the
same draw for the same (episode, t) even when they cover different windows of the episode.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

HIDDEN = 128  # 2 x 128 ELU layers (vast.md §5.2; the authors' VASTNet)


def step_uniforms(salt: int, batch: int, steps: int, n_agents: int, offset: int, device: torch.device
                  ) -> torch.Tensor:
    """Uniforms (B, T, N) for steps offset..offset+T-1: drawn step-major from a generator seeded by ``salt``,
    so step t's values do not depend on how many steps a call covers."""
    g = torch.Generator().manual_seed(salt)
    u = torch.rand((offset + steps, batch, n_agents), generator=g)[offset:]  # (T, B, N)
    return u.permute(1, 0, 2).to(device)  # (B, T, N)


def random_assignment(u: torch.Tensor, n_subteams: int) -> torch.Tensor:
    """X_Random: each agent uniformly among the K sub-teams at every step, from uniforms (B, T, N)."""
    return (u * n_subteams).long().clamp(max=n_subteams - 1)  # (B, T, N)


def fixed_assignment(batch: int, steps: int, n_agents: int, n_subteams: int, device: torch.device) -> torch.Tensor:
    """X_Fixed: agent i -> sub-team i mod K, permanently (vast.md §5.2, 0-based)."""
    return (torch.arange(n_agents, device=device) % n_subteams).expand(batch, steps, n_agents)  # (B, T, N)


def kmeans_assignment(positions: torch.Tensor, n_clusters: int, iters: int = 10) -> torch.Tensor:
    """X_Spatial: k-means on the agents' (x, y) positions (B, T, N, 2), one clustering per step.

    Deterministic (farthest-point initialisation from agent 0, a fixed number of Lloyd steps), so the same step
    is clustered alike wherever it is mixed; an empty cluster keeps its centroid. Returns ids in 0..n_clusters-1.
    """
    b, t, n, _ = positions.shape
    c = min(n_clusters, n)
    p = positions.reshape(b * t, n, 2).float()  # (M, N, 2)
    rows = torch.arange(b * t, device=p.device)
    cents = [p[:, 0]]  # (M, 2) each
    d = ((p - cents[0].unsqueeze(1)) ** 2).sum(-1)  # (M, N) squared distance to the nearest centroid
    for _ in range(1, c):
        cents.append(p[rows, d.argmax(dim=-1)])
        d = torch.minimum(d, ((p - cents[-1].unsqueeze(1)) ** 2).sum(-1))
    cent = torch.stack(cents, dim=1)  # (M, C, 2)
    for _ in range(iters):
        labels = torch.cdist(p, cent).argmin(dim=-1)  # (M, N)
        onehot = F.one_hot(labels, c).float()  # (M, N, C)
        counts = onehot.sum(dim=1).unsqueeze(-1)  # (M, C, 1)
        sums = torch.bmm(onehot.transpose(1, 2), p)  # (M, C, 2)
        cent = torch.where(counts > 0, sums / counts.clamp(min=1.0), cent)
    return torch.cdist(p, cent).argmin(dim=-1).view(b, t, n)  # (B, T, N)


def sample_assignment(log_probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sample of one sub-team per agent from log-probabilities (B, T, N, K) and uniforms (B, T, N)."""
    cdf = log_probs.exp().cumsum(dim=-1)  # (B, T, N, K)
    return (cdf <= u.unsqueeze(-1)).sum(dim=-1).clamp(max=log_probs.shape[-1] - 1)  # (B, T, N)


class AssignmentPolicy(nn.Module):
    """X_MetaGrad(k | i, τ_i, s_t) (vast.md §4.2): an MLP over [s_t, o_i] (and agent i), 2 x 128 ELU, softmax over K.

    The agent id enters as a learned embedding added to the first layer, which is exactly a linear layer over
    [s_t, o_i, onehot(i)] (same initial distribution) without materialising N x N one-hots.
    """

    def __init__(self, in_dim: int, n_agents: int, n_subteams: int, agent_id: bool) -> None:
        super().__init__()
        self.inp = nn.Linear(in_dim, HIDDEN)
        self.agent_embed = nn.Embedding(n_agents, HIDDEN) if agent_id else None
        if agent_id:  # initialise as one Linear(in_dim + n_agents, HIDDEN)
            bound = 1.0 / math.sqrt(in_dim + n_agents)
            for w in (self.inp.weight, self.inp.bias, self.agent_embed.weight):
                nn.init.uniform_(w, -bound, bound)
        self.body = nn.Sequential(nn.ELU(), nn.Linear(HIDDEN, HIDDEN), nn.ELU())
        self.head = nn.Linear(HIDDEN, n_subteams)

    def features(self, states: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """States (B, T, S), observations (B, T, N, O) -> last hidden layer (B, T, N, 128)."""
        x = torch.cat([states.unsqueeze(-2).expand(*obs.shape[:-1], -1), obs], dim=-1)  # (B, T, N, S+O)
        h = self.inp(x)  # (B, T, N, 128)
        if self.agent_embed is not None:
            h = h + self.agent_embed.weight  # (B, T, N, 128)
        return self.body(h)

    def forward(self, states: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """-> log X(k | i, τ_i, s_t), (B, T, N, K)."""
        return F.log_softmax(self.head(self.features(states, obs)), dim=-1)
