"""QPLEX (Wang et al. 2021): duplex dueling, IGM-complete value factorisation.

Individual dueling Q_i = V_i + A_i with V_i = max_a Q_i; the transformation (§3) Q_i ↦ w_i(s) Q_i + v_i(s),
w_i > 0; dueling mixing Q_tot = Σ_i (w_i Q_i + v_i) + Σ_i (λ_i(s, u) − 1) w_i A_i with λ_i > 0 from multi-head
attention over the state and joint action. As in the authors' code (``dmaq_general.py``, ``dmaq_qatten.py``) the
advantage term w_i A_i is detached (``is_stop_gradient``), so λ_i learns from it and w_i, v_i, Q_i from the first
sum. At the greedy joint action every A_i = 0, hence Q_tot = Σ_i (w_i V_i + v_i) and argmax Q_tot = (argmax Q_i)_i.

``qplex_weights`` picks the transformation: ``hypernet`` (dmaq: w = |MLP(s)|, v = MLP(s), applied only with
``weighted_head``) or ``qatten`` (dmaq_qatten: Qatten attention weights, v_i = V(s)/n, with the attention
regulariser as an auxiliary loss).
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from concord.errors import ConfigError
from concord.modules.mixers.base import Mixer, MixerContext
from concord.modules.mixers.qplex_attention import EPS, AdvantageAttention, QattenWeights
from concord.registry import register_mixer



class HypernetWeights(nn.Module):
    """dmaq's transformation: w_i(s) = |MLP(s)|_i + ε, v_i(s) = MLP(s)_i; identity without ``weighted_head``."""

    def __init__(self, state_dim: int, n_agents: int, hypernet_embed: int, weighted_head: bool) -> None:
        super().__init__()
        self.weighted = weighted_head
        if weighted_head:
            self.hyper_w = nn.Sequential(nn.Linear(state_dim, hypernet_embed), nn.ReLU(), nn.Linear(hypernet_embed, n_agents))
            self.V = nn.Sequential(nn.Linear(state_dim, hypernet_embed), nn.ReLU(), nn.Linear(hypernet_embed, n_agents))

    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, n), (B, T, S) -> w (B, T, n) > 0, v (B, T, n)."""
        if not self.weighted:
            return torch.ones_like(agent_qs), torch.zeros_like(agent_qs)
        return self.hyper_w(states).abs() + EPS, self.V(states)  # (B, T, n) each


@register_mixer("qplex")
class QPLEXMixer(Mixer):
    """Q_tot = Σ_i (w_i Q_i + v_i) + Σ_i (λ_i − 1) [w_i A_i]: transformation, then dueling mixing."""

    def __init__(self, env_info: Mapping[str, Any], args: SimpleNamespace) -> None:
        super().__init__(env_info, args)
        self.minus_one, self.stop_gradient = float(args.is_minus_one), args.is_stop_gradient
        self.attend_reg_coef = args.attend_reg_coef
        if args.qplex_weights == "hypernet":
            self.transform = HypernetWeights(self.state_dim, self.n_agents, args.hypernet_embed, args.weighted_head)
        else:
            unit_dim = args.unit_dim or env_info.get("unit_dim", 0)
            if unit_dim <= 0 or unit_dim * self.n_agents > self.state_dim:
                raise ConfigError(f"qplex_weights=qatten needs unit_dim, the per-agent features at the head of the state "
                                  f"(SMAC: 4 + shield + unit-type bits; SMAX: 10), with unit_dim * {self.n_agents} agents "
                                  f"<= state size {self.state_dim}; got {unit_dim} (set unit_dim=...)")
            self.transform = QattenWeights(self.state_dim, self.n_agents, unit_dim, args.n_head, args.mixing_embed_dim,
                                           args.hypernet_embed, args.weighted_head, args.nonlinear, args.state_bias)
        self.lambdas = AdvantageAttention(self.state_dim, self.n_agents, self.n_actions, args.num_kernel,
                                          args.adv_hypernet_layers, args.adv_hypernet_embed)

    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor, ctx: MixerContext) -> torch.Tensor:
        w, v = self.transform(agent_qs, states)  # (B, T, n) each
        avail = ctx.avail_actions  # (B, T, n, A)
        v_i = ctx.all_qs.detach().masked_fill(~avail, -float("inf")).max(dim=-1).values  # (B, T, n): V_i = max Q_i
        v_i = torch.where(avail.any(-1), v_i, agent_qs.detach())  # padded steps: A_i = 0
        adv = w * (agent_qs - v_i)  # (B, T, n): transformed A_i <= 0
        if self.stop_gradient:
            adv = adv.detach()
        lam = self.lambdas(states, F.one_hot(ctx.actions, self.n_actions).to(states.dtype))  # (B, T, n)
        v_tot = (w * agent_qs + v).sum(dim=-1, keepdim=True)  # (B, T, 1)
        return v_tot + ((lam - self.minus_one) * adv).sum(dim=-1, keepdim=True)  # (B, T, 1)

    def auxiliary_losses(self, ctx: MixerContext, states: torch.Tensor | None = None,
                         **kwargs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Qatten's attention regulariser, coef · Σ_h mean(logit²) over the valid steps (authors: all steps)."""
        if not isinstance(self.transform, QattenWeights):
            return {}
        agent_qs = ctx.all_qs.gather(-1, ctx.actions.unsqueeze(-1)).squeeze(-1)  # (B, T, n)
        logits = self.transform.logits(agent_qs, states)  # (B*T, H, n)
        mask = (ctx.mask if ctx.mask is not None else torch.ones_like(agent_qs[..., 0])).reshape(-1, 1, 1) > 0
        sq = torch.where(mask, logits**2, torch.zeros_like(logits)).sum(dim=(0, 2))  # (H,)
        per_head = sq / (mask.sum().clamp(min=1) * self.n_agents)  # (H,)
        return {"qplex_attend_reg": self.attend_reg_coef * per_head.sum()}
