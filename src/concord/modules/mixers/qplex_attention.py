"""QPLEX's attention modules (Wang et al. 2021, §3): the advantage weights λ_i(s, u) and Qatten's w_i(s).

Layouts follow the QPLEX authors' ``dmaq_si_weight.py`` and ``dmaq_qatten_weight.py`` (same parameter
counts), with the per-head networks run as one batched matmul per layer instead of a Python loop over heads.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = 1e-10  # the authors' floor keeping w_i and λ_i strictly positive


class GroupedMLP(nn.Module):
    """``groups`` independent ReLU MLPs on one shared input, (M, in) -> (M, groups, out).

    Equivalent to ``groups`` separate ``nn.Linear`` stacks (same parameter count and initialisation):
    the first layer is one wide Linear, deeper layers are per-group weights applied with one einsum.
    """

    def __init__(self, in_dim: int, out_dim: int, groups: int, layers: int, embed: int, last_bias: bool = True) -> None:
        super().__init__()
        dims = [embed] * (layers - 1) + [out_dim]
        self.groups = groups
        self.first = nn.Linear(in_dim, groups * dims[0], bias=last_bias or layers > 1)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            bound = 1.0 / math.sqrt(d_in)  # nn.Linear's default initialisation
            self.weights.append(nn.Parameter(torch.empty(groups, d_in, d_out).uniform_(-bound, bound)))
            if last_bias or i < len(dims) - 2:
                self.biases.append(nn.Parameter(torch.empty(groups, d_out).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.first(x).view(x.shape[0], self.groups, -1)  # (M, groups, d0)
        for i, w in enumerate(self.weights):
            h = torch.einsum("mgi,gio->mgo", F.relu(h), w)  # (M, groups, d_out)
            if i < len(self.biases):
                h = h + self.biases[i]
        return h


class AdvantageAttention(nn.Module):
    """λ_i(s, u) = Σ_k |κ_k(s)| σ(φ_{k,i}(s)) σ(ψ_{k,i}(s, u)) + ε > 0: ``num_kernel`` heads over the state
    and the joint action one-hot (the authors' DMAQ_SI_Weight, ``adv_hypernet_layers`` ∈ {1, 2, 3})."""

    def __init__(self, state_dim: int, n_agents: int, n_actions: int, num_kernel: int, layers: int, embed: int) -> None:
        super().__init__()
        self.n_agents = n_agents
        self.key = GroupedMLP(state_dim, 1, num_kernel, layers, embed)
        self.agents = GroupedMLP(state_dim, n_agents, num_kernel, layers, embed)
        self.action = GroupedMLP(state_dim + n_agents * n_actions, n_agents, num_kernel, layers, embed)

    def forward(self, states: torch.Tensor, actions_onehot: torch.Tensor) -> torch.Tensor:
        """(B, T, S), (B, T, n_agents * n_actions) -> λ (B, T, n_agents)."""
        b, t, _ = states.shape
        s = states.reshape(b * t, -1)  # (M, S)
        sa = torch.cat([s, actions_onehot.reshape(b * t, -1)], dim=-1)  # (M, S + n*A)
        key = self.key(s).abs() + EPS  # (M, K, 1)
        weights = key * torch.sigmoid(self.agents(s)) * torch.sigmoid(self.action(sa))  # (M, K, n)
        return weights.sum(dim=1).view(b, t, self.n_agents)  # (B, T, n)


class QattenWeights(nn.Module):
    """Qatten's transformation (the authors' Qatten_Weight): w_i(s) = Σ_h softmax_i(q_h(s)·k_h(u_i)/√d)
    [× |w_h(s)| with ``weighted_head``] over the agents' own features u_i (the first ``unit_dim`` state entries
    per agent, [u_i, Q_i] with ``nonlinear``), and a state value V(s) shared as v_i = V(s)/n (0 without
    ``state_bias``). The attention logits feed the regulariser coef · Σ_h mean(logit²)."""

    def __init__(self, state_dim: int, n_agents: int, unit_dim: int, n_head: int, embed: int, hypernet_embed: int,
                 weighted_head: bool, nonlinear: bool, state_bias: bool) -> None:
        super().__init__()
        self.n_agents, self.unit_dim, self.n_head, self.embed = n_agents, unit_dim, n_head, embed
        self.nonlinear, self.state_bias = nonlinear, state_bias
        self.selectors = GroupedMLP(state_dim, embed, n_head, 2, hypernet_embed, last_bias=False)  # queries
        self.keys = nn.Linear(unit_dim + int(nonlinear), n_head * embed, bias=False)
        self.w_head = nn.Sequential(nn.Linear(state_dim, hypernet_embed), nn.ReLU(),
                                    nn.Linear(hypernet_embed, n_head)) if weighted_head else None
        self.V = nn.Sequential(nn.Linear(state_dim, embed), nn.ReLU(), nn.Linear(embed, 1))

    def logits(self, agent_qs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """Unscaled attention logits (B*T, n_head, n_agents)."""
        m, n = agent_qs.shape[0] * agent_qs.shape[1], self.n_agents
        s = states.reshape(m, -1)  # (M, S)
        units = s[:, : self.unit_dim * n].reshape(m, n, self.unit_dim)  # (M, n, unit_dim)
        if self.nonlinear:
            units = torch.cat([units, agent_qs.reshape(m, n, 1)], dim=-1)  # (M, n, unit_dim + 1)
        queries = self.selectors(s)  # (M, H, E)
        keys = self.keys(units).view(m, n, self.n_head, self.embed)  # (M, n, H, E)
        return torch.einsum("mhe,mnhe->mhn", queries, keys)  # (M, H, n)

    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, n), (B, T, S) -> w (B, T, n) > 0, v (B, T, n)."""
        b, t, n = agent_qs.shape
        s = states.reshape(b * t, -1)  # (M, S)
        attend = F.softmax(self.logits(agent_qs, states) / math.sqrt(self.embed), dim=-1)  # (M, H, n)
        if self.w_head is not None:
            attend = attend * self.w_head(s).abs().unsqueeze(-1)  # (M, H, n)
        w = attend.sum(dim=1) + EPS  # (M, n)
        v = self.V(s).expand(-1, n) / n if self.state_bias else torch.zeros_like(w)  # (M, n)
        return w.view(b, t, n), v.reshape(b, t, n)
