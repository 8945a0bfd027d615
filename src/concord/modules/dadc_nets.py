"""DADC's networks (dadc.md §5, App. E): the state approximator (AIS encoder and predictor) and the coordinator's
actor-critic, in one module that every agent's copy holds.

- AIS encoder: X_t = GRU(tanh(Linear([Z_t, θ_{t-1}])), X_{t-1}) (App. E.1: Linear(5, tanh) + GRU(5)); with
  ``use_ais`` false, X_t = Z_t (demand response: the mean field is an information state, App. E.2).
- predictor: R̂_t = head_r([X_t, θ_t]) and the mean of ν_{t+1} = N(head_x([X_t, θ_t]), I) (5-tanh-1, 5-tanh-d).
- predictor target (``pred_dim``): ν_{t+1} is a Gaussian over the next common observation Z_{t+1} (dz wide, the
  (P2b) form of an AIS, dadc.md App. "Alternative characterization") or over X_{t+1} (d wide, eq. 4 literally).
- coordinator head (``head``, chosen by the back end): ``q`` — a tanh trunk on X_t, an actor head (logits over
  the options of a discrete prescription set, or the mean of a Gaussian over θ with a state-independent log-std)
  and a critic Q(X_t, θ_t) (eq. 5); ``v`` — the same with a critic V(X_t) (PPO, TRPO); ``naf`` — no actor: the
  NAF head (``NAFHead``) gives V(X_t), μ(X_t) and L(X_t), and ψ is μ plus fixed Gaussian exploration noise.
"""
from __future__ import annotations

import math
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


class NAFHead(nn.Module):
    """Normalised advantage function (Gu et al. 2016, eqs. 2-4): Q(x, a) = V(x) − ½ (a − μ(x))ᵀ P(x) (a − μ(x)),
    P = L Lᵀ with L lower-triangular and a positive (exp) diagonal, so max_a Q(x, a) = V(x) at a = μ(x).
    ReLU body ``hidden`` (App. E.2: 100-100); μ = ``bound``·tanh(·) keeps the action in the box [−bound, bound]."""

    def __init__(self, in_dim: int, n_act: int, hidden: Sequence[int], bound: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for a, b in zip([in_dim, *hidden][:-1], hidden):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        h = hidden[-1] if hidden else in_dim
        self.n_act, self.bound = n_act, float(bound)
        self.v, self.mu, self.l = nn.Linear(h, 1), nn.Linear(h, n_act), nn.Linear(h, n_act * (n_act + 1) // 2)
        self.register_buffer("tril", torch.tril_indices(n_act, n_act), persistent=False)  # (2, n(n+1)/2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """V (...,), μ (..., n) and L (..., n, n) at x (..., in_dim)."""
        h = self.body(x)
        n = self.n_act
        flat = self.l(h)  # (..., n(n+1)/2)
        low = flat.new_zeros(*flat.shape[:-1], n, n)
        low[..., self.tril[0], self.tril[1]] = flat  # (..., n, n)
        diag = torch.diagonal(low, dim1=-2, dim2=-1)  # (..., n)
        low = low - torch.diag_embed(diag) + torch.diag_embed(diag.exp())
        return self.v(h).squeeze(-1), self.bound * torch.tanh(self.mu(h)), low

    def q(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Q(x, a) (...,) for x (..., in_dim), a (..., n)."""
        v, mu, low = self(x)
        u = torch.einsum("...ij,...i->...j", low, a - mu)  # (..., n) Lᵀ (a − μ)
        return v - 0.5 * (u ** 2).sum(-1)


class DADCNet(nn.Module):
    def __init__(self, common_dim: int, n_params: int, discrete: bool, n_options: int, use_ais: bool, ais_dim: int,
                 predictor_hidden: int, pred_dim: int, trunk: Sequence[int], actor_hidden: Sequence[int],
                 critic_hidden: Sequence[int], head: str, init_log_std: float, naf_hidden: Sequence[int] = (),
                 naf_bound: float = 1.0, naf_noise_std: float = 1.0) -> None:
        super().__init__()
        if head not in ("q", "v", "naf"):
            raise ValueError(f"unknown coordinator head '{head}'")
        self.use_ais, self.discrete, self.head = use_ais, discrete, head
        self.critic_on_theta = head == "q"
        self.n_params, self.pred_dim = n_params, pred_dim
        self.x_dim = ais_dim if use_ais else common_dim
        if use_ais:
            self.embed = nn.Sequential(nn.Linear(common_dim + n_params, ais_dim), nn.Tanh())
            self.gru = nn.GRUCell(ais_dim, ais_dim)
            self.head_r = mlp([ais_dim + n_params, predictor_hidden], 1)
            self.head_x = mlp([ais_dim + n_params, predictor_hidden], pred_dim) if pred_dim else None
        if head == "naf":  # critic only (App. E): no trunk, no actor; exploration noise is fixed, not learned
            self.trunk, self.actor, self.critic = nn.Identity(), None, None
            self.naf = NAFHead(self.x_dim, n_params, naf_hidden, naf_bound)
            self.register_buffer("log_std", torch.full((n_params,), math.log(naf_noise_std)))
            return
        self.naf = None
        self.trunk = mlp([self.x_dim, *trunk], 0)
        t_out = trunk[-1] if trunk else self.x_dim
        self.actor = mlp([t_out, *actor_hidden], n_options if discrete else n_params)
        self.critic = mlp([t_out + (n_params if self.critic_on_theta else 0), *critic_hidden], 1)
        self.log_std = nn.Parameter(torch.full((n_params,), float(init_log_std))) if not discrete else None

    # --- groups of the three time-scales ------------------------------------------------------------
    def ais_parameters(self) -> list[nn.Parameter]:
        if not self.use_ais:
            return []
        mods = (self.embed, self.gru, self.head_r, *([self.head_x] if self.head_x is not None else []))
        return [p for m in mods for p in m.parameters()]

    def critic_parameters(self) -> list[nn.Parameter]:
        if self.naf is not None:
            return list(self.naf.parameters())
        return [*self.trunk.parameters(), *self.critic.parameters()]

    def actor_parameters(self) -> list[nn.Parameter]:
        if self.naf is not None:
            return []
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
        """R̂_t (...,) and the mean of ν_{t+1} (..., pred_dim) from X_t and θ_t (§5)."""
        u = torch.cat([x, theta], dim=-1)
        mu = self.head_x(u) if self.head_x is not None else u[..., :0]
        return self.head_r(u).squeeze(-1), mu

    # --- coordinator ---------------------------------------------------------------------------------
    def policy(self, x: torch.Tensor) -> torch.Tensor:
        """Log-probabilities over the options (..., n_options), or the Gaussian mean over θ (..., dθ); with the NAF
        head, μ(X_t) (..., dθ) — for a discrete set, logits whose softmax randomises over the options."""
        if self.naf is not None:
            return self.naf(x)[1]
        out = self.actor(self.trunk(x))
        return torch.log_softmax(out, dim=-1) if self.discrete else out

    def log_prob(self, x: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log ψ(θ_t | X_t) (...,) and the policy's entropy (...,); θ is an option one-hot if discrete."""
        out = self.policy(x)
        if self.discrete and self.naf is None:
            return (out * theta).sum(-1), -(out.exp() * out).sum(-1)
        dist = torch.distributions.Normal(out, self.log_std.exp())
        return dist.log_prob(theta).sum(-1), dist.entropy().sum(-1)

    def value(self, x: torch.Tensor, theta: torch.Tensor | None = None) -> torch.Tensor:
        """Q(X_t, θ_t) (with ``critic_on_theta``, or the NAF head given θ) or V(X_t): (...,)."""
        if self.naf is not None:
            return self.naf(x)[0] if theta is None else self.naf.q(x, theta)
        h = self.trunk(x)
        if self.critic_on_theta:
            h = torch.cat([h, theta], dim=-1)
        return self.critic(h).squeeze(-1)
