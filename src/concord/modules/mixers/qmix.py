"""QMIX (Rashid et al. 2018): a monotonic mixing network whose weights come from state hypernetworks."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from concord.modules.mixers.base import Mixer, MixerContext
from concord.registry import register_mixer


def hypernet(in_dim: int, out_dim: int, layers: int, embed: int) -> nn.Module:
    """State -> mixing weights: one linear layer, or two with a ReLU between (pymarl's hypernet_layers)."""
    if layers == 1:
        return nn.Linear(in_dim, out_dim)
    return nn.Sequential(nn.Linear(in_dim, embed), nn.ReLU(), nn.Linear(embed, out_dim))


@register_mixer("qmix")
class QMixer(Mixer):
    """Q_tot = w2ᵀ ELU(W1ᵀ Q + b1) + V(s) with |W1|, |w2| >= 0, hence ∂Q_tot/∂Q_i >= 0."""

    def __init__(self, env_info: Mapping[str, Any], args: SimpleNamespace) -> None:
        super().__init__(env_info, args)
        e = args.mixing_embed_dim
        self.embed_dim = e
        self.hyper_w_1 = hypernet(self.state_dim, e * self.n_agents, args.hypernet_layers, args.hypernet_embed)
        self.hyper_w_final = hypernet(self.state_dim, e, args.hypernet_layers, args.hypernet_embed)
        self.hyper_b_1 = nn.Linear(self.state_dim, e)
        self.V = nn.Sequential(nn.Linear(self.state_dim, e), nn.ReLU(), nn.Linear(e, 1))

    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor, ctx: MixerContext) -> torch.Tensor:
        b, t, n = agent_qs.shape
        s = states.reshape(b * t, -1)  # (B*T, state_dim)
        qs = agent_qs.reshape(b * t, 1, n)  # (B*T, 1, n_agents)
        w1 = self.hyper_w_1(s).abs().view(-1, n, self.embed_dim)  # (B*T, n_agents, embed)
        b1 = self.hyper_b_1(s).view(-1, 1, self.embed_dim)  # (B*T, 1, embed)
        hidden = F.elu(torch.bmm(qs, w1) + b1)  # (B*T, 1, embed)
        w_final = self.hyper_w_final(s).abs().view(-1, self.embed_dim, 1)  # (B*T, embed, 1)
        v = self.V(s).view(-1, 1, 1)  # (B*T, 1, 1)
        return (torch.bmm(hidden, w_final) + v).view(b, t, 1)  # (B, T, 1)
