"""A complete user plugin: a mixer registered from outside src/ and used purely from the config.

    python main.py --config=vdn --env-config=matrix_game with plugins=[examples.weighted_mixer] mixer=weighted
"""
import torch
import torch.nn as nn

from concord.modules.mixers.base import Mixer, MixerContext
from concord.registry import register_mixer


@register_mixer("weighted")
class WeightedMixer(Mixer):
    """Q_tot = Σ_i softplus(w_i(s)) Q_i + b(s): state-dependent positive weights (monotonic, like QMIX)."""

    def __init__(self, env_info, args):
        super().__init__(env_info, args)
        self.weights = nn.Linear(self.state_dim, self.n_agents)
        self.bias = nn.Linear(self.state_dim, 1)

    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor, ctx: MixerContext) -> torch.Tensor:
        w = nn.functional.softplus(self.weights(states))  # (B, T, n_agents)
        return (w * agent_qs).sum(-1, keepdim=True) + self.bias(states)  # (B, T, 1)
