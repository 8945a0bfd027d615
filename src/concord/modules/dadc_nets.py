"""DADC's networks (dadc.md §5, App. E): the state approximator (AIS encoder and predictor) and the coordinator's
actor-critic, in one module that every agent's copy holds.

- AIS encoder: X_t = GRU(tanh(Linear([Z_t, θ_{t-1}])), X_{t-1}) (App. E.1: Linear(5, tanh) + GRU(5)); with
  ``use_ais`` false, X_t = Z_t (demand response: the mean field is an information state, App. E.2).
- predictor: R̂_t = head_r([X_t, θ_t]) and the mean of ν_{t+1} = N(head_x([X_t, θ_t]), I) (5-tanh-1, 5-tanh-d).
- actor-critic: a tanh trunk on X_t; the actor head gives logits over the options (discrete prescription set) or
  the mean of a Gaussian over θ with a state-independent log-std; the critic gives Q(X_t, θ_t) (``critic_on_theta``,
  eq. 5) or V(X_t) (PPO).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn


def mlp(sizes: Sequence[int], out_dim: int) -> nn.Module:
    """tanh MLP ``sizes[0] -> ... -> sizes[-1] -> out_dim`` (linear output); ``out_dim=0``: no output layer."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.Tanh()]
    if out_dim:
        layers.append(nn.Linear(sizes[-1], out_dim))
    return nn.Sequential(*layers)


class DADCNet(nn.Module):
    def __init__(self, common_dim: int, n_params: int, discrete: bool, n_options: int, use_ais: bool, ais_dim: int,
                 predictor_hidden: int, trunk: Sequence[int], actor_hidden: Sequence[int],
                 critic_hidden: Sequence[int], critic_on_theta: bool, init_log_std: float) -> None:
        super().__init__()
        self.use_ais, self.discrete, self.critic_on_theta = use_ais, discrete, critic_on_theta
        self.n_params = n_params
        self.x_dim = ais_dim if use_ais else common_dim
        if use_ais:
            self.embed = nn.Sequential(nn.Linear(common_dim + n_params, ais_dim), nn.Tanh())
            self.gru = nn.GRUCell(ais_dim, ais_dim)
            self.head_r = mlp([ais_dim + n_params, predictor_hidden], 1)
            self.head_x = mlp([ais_dim + n_params, predictor_hidden], ais_dim)
        self.trunk = mlp([self.x_dim, *trunk], 0)
        t_out = trunk[-1] if trunk else self.x_dim
        self.actor = mlp([t_out, *actor_hidden], n_options if discrete else n_params)
        self.critic = mlp([t_out + (n_params if critic_on_theta else 0), *critic_hidden], 1)
        self.log_std = nn.Parameter(torch.full((n_params,), float(init_log_std))) if not discrete else None

    # --- groups of the three time-scales ------------------------------------------------------------
    def ais_parameters(self) -> list[nn.Parameter]:
        return [p for m in (self.embed, self.gru, self.head_r, self.head_x) for p in m.parameters()] if self.use_ais else []

    def critic_parameters(self) -> list[nn.Parameter]:
        return [*self.trunk.parameters(), *self.critic.parameters()]

    def actor_parameters(self) -> list[nn.Parameter]:
        return [*self.actor.parameters(), *([self.log_std] if self.log_std is not None else [])]

    # --- AIS ----------------------------------------------------------------------------------------
    def init_ais(self, n: int) -> torch.Tensor:
        return torch.zeros(n, self.x_dim if self.use_ais else 0)

    def ais_step(self, z: torch.Tensor, theta_prev: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: Z_t (k, dz), θ_{t-1} (k, dθ), X_{t-1} (k, d) -> X_t (k, d) and the carried state."""
        if not self.use_ais:
            return z, h
        x = self.gru(self.embed(torch.cat([z, theta_prev], dim=-1)), h)  # (k, d)
        return x, x

    def ais_unroll(self, z: torch.Tensor, theta_prev: torch.Tensor) -> torch.Tensor:
        """Whole episodes from t = 0: Z (B, T, dz), θ_{t-1} (B, T, dθ) -> X (B, T, d)."""
        if not self.use_ais:
            return z
        h = torch.zeros(z.shape[0], self.x_dim, device=z.device)
        e = self.embed(torch.cat([z, theta_prev], dim=-1))  # (B, T, d)
        xs = []
        for t in range(z.shape[1]):
            h = self.gru(e[:, t], h)
            xs.append(h)
        return torch.stack(xs, dim=1)  # (B, T, d)

    def predict(self, x: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """R̂_t (...,) and the mean of ν_{t+1} (..., d) from X_t and θ_t (§5)."""
        u = torch.cat([x, theta], dim=-1)
        return self.head_r(u).squeeze(-1), self.head_x(u)

    # --- coordinator ---------------------------------------------------------------------------------
    def policy(self, x: torch.Tensor) -> torch.Tensor:
        """Log-probabilities over the options (..., n_options), or the Gaussian mean over θ (..., dθ)."""
        out = self.actor(self.trunk(x))
        return torch.log_softmax(out, dim=-1) if self.discrete else out

    def log_prob(self, x: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log ψ(θ_t | X_t) (...,) and the policy's entropy (...,); θ is an option one-hot if discrete."""
        out = self.policy(x)
        if self.discrete:
            return (out * theta).sum(-1), -(out.exp() * out).sum(-1)
        dist = torch.distributions.Normal(out, self.log_std.exp())
        return dist.log_prob(theta).sum(-1), dist.entropy().sum(-1)

    def value(self, x: torch.Tensor, theta: torch.Tensor | None = None) -> torch.Tensor:
        """Q(X_t, θ_t) (with ``critic_on_theta``) or V(X_t): (...,)."""
        h = self.trunk(x)
        if self.critic_on_theta:
            h = torch.cat([h, theta], dim=-1)
        return self.critic(h).squeeze(-1)
