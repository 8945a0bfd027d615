"""QTRAN-base (Son et al. 2019): a free joint value Q_jt and a state value V_jt, tied to the agents by constraints.

The learner's TD loss regresses Q_jt(s, u) on r + γ Q_jt⁻(s', ū') with ū' the online agents' greedy actions
(double Q). ``auxiliary_losses`` adds λ_opt L_opt + λ_nopt L_nopt, the conditions of QTRAN's Theorem 1
(vast.md eq. 3): Σ_i Q_i(ū_i) − Q̂_jt(ū) + V_jt = 0 at the greedy joint action, ≥ 0 elsewhere (Q̂_jt detached).

Two input modes (``qtran_inputs``):
- ``hidden``: pymarl's ``qtran_paper`` architecture ("small" network): Q_jt over [s, Σ_i e(h_i, onehot(u_i))],
  V_jt over s, each 2 hidden ReLU layers of ``mixing_embed_dim``; e is a 2-layer encoder of width H + A.
- ``values``: for VAST's sub-teams, which have no hidden state or action: one 2-layer ELU trunk of
  ``qtran_values_embed`` over [s, Q_1..Q_K] with a Q_jt head and a V_jt head (the VAST authors' QTRANBaseNet).
  Q_jt(u) reads the chosen values detached, as the authors do, so the Q_k learn through L_opt and L_nopt;
  V_jt reads [s, max Q_1..max Q_K], a function of τ alone as eq. 3 requires. Only ``agent_qs``,
  ``ctx.greedy_qs`` and the states are used; callers pass the chosen values to ``auxiliary_losses`` as
  ``agent_qs=`` (when absent they are read from ``ctx.all_qs`` at ``ctx.actions``, exact for a top-level mixer).
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from concord.errors import ConfigError
from concord.modules.mixers.base import Mixer, MixerContext
from concord.registry import register_mixer



def mlp(in_dim: int, embed: int, out_dim: int, act: type[nn.Module]) -> nn.Sequential:
    """in -> embed -> embed -> out with ``act`` between layers."""
    return nn.Sequential(nn.Linear(in_dim, embed), act(), nn.Linear(embed, embed), act(), nn.Linear(embed, out_dim))


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` (B, T, 1) over steps where ``mask`` (B, T) is set; padded entries never reach the sum."""
    m = mask.unsqueeze(-1) > 0  # (B, T, 1)
    return torch.where(m, x, torch.zeros_like(x)).sum() / m.sum().clamp(min=1)


def finite(x: torch.Tensor) -> torch.Tensor:
    """Greedy values are -inf on padded steps (no action available): zero them before any network sees them."""
    return torch.where(torch.isfinite(x), x, torch.zeros_like(x))


@register_mixer("qtran")
class QTranMixer(Mixer):
    """Q_jt(s, u) from the TD loss; V_jt(s) and the agents' values from L_opt and L_nopt (QTRAN-base)."""

    def __init__(self, env_info: Mapping[str, Any], args: SimpleNamespace) -> None:
        super().__init__(env_info, args)
        self.inputs = args.qtran_inputs
        self.lambda_opt, self.lambda_nopt = args.qtran_lambda_opt, args.qtran_lambda_nopt
        if self.inputs == "hidden":
            ae = args.hidden_dim + self.n_actions
            self.action_encoding = nn.Sequential(nn.Linear(ae, ae), nn.ReLU(), nn.Linear(ae, ae))
            self.Q = mlp(self.state_dim + ae, args.mixing_embed_dim, 1, nn.ReLU)
            self.V = mlp(self.state_dim, args.mixing_embed_dim, 1, nn.ReLU)
        else:
            e = args.qtran_values_embed
            self.trunk = nn.Sequential(nn.Linear(self.state_dim + self.n_agents, e), nn.ELU(), nn.Linear(e, e), nn.ELU())
            self.q_head, self.v_head = nn.Linear(e, 1), nn.Linear(e, 1)

    # --- the two networks ---------------------------------------------------------------------
    def joint_q(self, states: torch.Tensor, ctx: MixerContext, actions: torch.Tensor | None,
                values: torch.Tensor) -> torch.Tensor:
        """Q_jt (B, T, 1) at ``actions`` (B, T, n) [hidden mode] or at the agents' ``values`` (B, T, n) [values mode]."""
        if self.inputs == "values":
            return self.q_head(self.trunk(torch.cat([states, values], dim=-1)))  # (B, T, 1)
        if ctx.hidden is None:
            raise ConfigError("qtran_inputs=hidden needs the agents' hidden states (ctx.hidden); use qtran_inputs=values")
        onehot = F.one_hot(actions, self.n_actions).to(ctx.hidden.dtype)  # (B, T, n, A)
        enc = self.action_encoding(torch.cat([ctx.hidden, onehot], dim=-1)).sum(dim=-2)  # (B, T, H + A)
        return self.Q(torch.cat([states, enc], dim=-1))  # (B, T, 1)

    def state_value(self, states: torch.Tensor, greedy_qs: torch.Tensor) -> torch.Tensor:
        """V_jt (B, T, 1): over s [hidden mode] or over [s, max Q_1..max Q_K] [values mode]."""
        if self.inputs == "values":
            return self.v_head(self.trunk(torch.cat([states, greedy_qs], dim=-1)))  # (B, T, 1)
        return self.V(states)  # (B, T, 1)

    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor, ctx: MixerContext) -> torch.Tensor:
        """Q_jt(s, u) at the actions (hidden mode) or values (values mode) the ``agent_qs`` were taken at."""
        return self.joint_q(states, ctx, ctx.actions, agent_qs.detach())  # (B, T, 1)

    # --- constraints --------------------------------------------------------------------------
    def auxiliary_losses(self, ctx: MixerContext, states: torch.Tensor | None = None,
                         q_taken: torch.Tensor | None = None, agent_qs: torch.Tensor | None = None,
                         **kwargs: torch.Tensor) -> dict[str, torch.Tensor]:
        """λ_opt L_opt + λ_nopt L_nopt, masked means over steps (pymarl's qtran_learner):
        L_opt = (Σ_i max Q_i − Q̂_jt(ū) + V_jt)², L_nopt = min(Σ_i Q_i(u) − Q̂_jt(u) + V_jt, 0)²."""
        greedy = finite(ctx.greedy_qs)  # (B, T, n)
        if agent_qs is None:
            agent_qs = ctx.all_qs.gather(-1, ctx.actions.unsqueeze(-1)).squeeze(-1)  # (B, T, n)
        mask = ctx.mask if ctx.mask is not None else torch.ones_like(greedy[..., 0])  # (B, T)
        with torch.no_grad():
            best = ctx.all_qs.masked_fill(~ctx.avail_actions, -float("inf")).argmax(-1) \
                if self.inputs == "hidden" else None  # (B, T, n): ū, the online agents' greedy actions
            q_best = self.joint_q(states, ctx, best, greedy)  # (B, T, 1): Q̂_jt(ū)
        v = self.state_value(states, greedy)  # (B, T, 1)
        opt = greedy.sum(-1, keepdim=True) - q_best + v  # (B, T, 1)
        nopt = (agent_qs.sum(-1, keepdim=True) - q_taken.detach() + v).clamp(max=0.0)  # (B, T, 1)
        return {"qtran_opt": self.lambda_opt * masked_mean(opt**2, mask),
                "qtran_nopt": self.lambda_nopt * masked_mean(nopt**2, mask)}
