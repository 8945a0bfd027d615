"""VDN (Sunehag et al. 2018): Q_tot is the sum of the agents' values."""
from __future__ import annotations

import torch

from concord.modules.mixers.base import Mixer, MixerContext
from concord.registry import register_mixer


@register_mixer("vdn")
class VDNMixer(Mixer):
    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor, ctx: MixerContext) -> torch.Tensor:
        return agent_qs.sum(dim=-1, keepdim=True)  # (B, T, 1)
