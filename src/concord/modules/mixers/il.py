"""Ψ_IL (vast.md §5.2): no mixing; each input value is regressed on the team target independently.

Inside VAST the inputs are the K sub-team values, so each Q_k^G learns the global return on its own; the
Q-learner broadcasts the team reward over a (B, T, K) output. As a top-level mixer it is IQL (``mixer: null``).
"""
from __future__ import annotations

import torch

from concord.modules.mixers.base import Mixer, MixerContext
from concord.registry import register_mixer


@register_mixer("il")
class ILMixer(Mixer):
    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor, ctx: MixerContext) -> torch.Tensor:
        return agent_qs  # (B, T, n_agents): one TD target per input value
