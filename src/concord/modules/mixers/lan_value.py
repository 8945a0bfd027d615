"""LAN's centralised value V(s, τ) and Q-value proxies Q̃_a = V(s, τ) + A_a(τ_a, u_a) (Avalos et al., lan.md eq. 1).

The agents' outputs are local advantages A_a. V embeds each agent's [h_a, o_a, u_a, a] (GRU hidden state, observation,
last action one-hot, id one-hot) with one shared layer, sums the embeddings over agents, appends the state and
maps the result through two hidden layers to a scalar (lan.md §4 "Architecture", App. B). The output has one
proxy per agent (K = n_agents), so the Q-learner's one TD loss is eq. 3 per agent: the target mixer adds V_t
(from the target agents' hidden states) to A_t at the online network's greedy action (double Q).
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from concord.modules.mixers.base import Mixer, MixerContext
from concord.registry import register_mixer


@register_mixer("lan_value")
class LANValue(Mixer):
    """(B, T, n_agents) advantages of the taken actions -> (B, T, n_agents) proxies V(s, τ) + A_a (eq. 1).

    Its size depends on the env only through the per-agent input (hidden + obs + n_actions + n_agents) and the
    state width, never through n_agents × anything (lan.md Table 1).
    """

    def __init__(self, env_info: Mapping[str, Any], args: SimpleNamespace) -> None:
        super().__init__(env_info, args)
        e, h = args.value_embed_dim, args.value_hidden_dim
        self.advantage_mean = args.advantage_mean
        self.detach_hidden = args.value_detach_hidden
        self.embed = nn.Linear(args.hidden_dim + env_info["obs_shape"] + self.n_actions + self.n_agents, e)
        self.value = nn.Sequential(nn.Linear(e + self.state_dim, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(),
                                   nn.Linear(h, 1))

    def values(self, states: torch.Tensor, ctx: MixerContext) -> torch.Tensor:
        """V(s, τ): (B, T, state_dim) and ctx.hidden/obs/last_actions -> (B, T, 1)."""
        hidden = ctx.hidden.detach() if self.detach_hidden else ctx.hidden  # (B, T, n_agents, H)
        last = F.one_hot(ctx.last_actions.clamp(min=0), self.n_actions).to(hidden.dtype)  # (B, T, n_agents, n_actions)
        last = last * (ctx.last_actions >= 0).unsqueeze(-1)  # no last action at t = 0
        ids = torch.eye(self.n_agents, dtype=hidden.dtype, device=hidden.device).expand(*hidden.shape[:2], -1, -1)
        per_agent = torch.cat([hidden, ctx.obs, last, ids], dim=-1)  # (B, T, n_agents, H + obs + n_actions + n_agents)
        joint = F.relu(self.embed(per_agent)).sum(dim=-2)  # (B, T, embed)
        return self.value(torch.cat([joint, states], dim=-1))  # (B, T, 1)

    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor, ctx: MixerContext) -> torch.Tensor:
        """``agent_qs`` are A_a at the taken (or, for targets, greedy) actions; LAN-mean (eq. 6) first subtracts
        each agent's mean advantage over all |U_a| actions, available or not."""
        adv = agent_qs - ctx.all_qs.mean(dim=-1) if self.advantage_mean else agent_qs  # (B, T, n_agents)
        return self.values(states, ctx) + adv  # (B, T, n_agents)
