"""A complete user plugin: a mixer registered from outside src/, with a key of its own, used purely from the config.

    python main.py --config=vdn --env-config=matrix_game with plugins=[examples.weighted_mixer] mixer=weighted
"""
import torch
import torch.nn as nn

from concord.modules.mixers.base import Mixer, MixerContext
from concord.registry import register_mixer


@register_mixer("weighted", config={"weighted_temperature": 1.0, "_ranges": {"weighted_temperature": "(0, inf)"}})
class WeightedMixer(Mixer):
    """Q_tot = Σ_i softplus(w_i(s) / T) Q_i + b(s): state-dependent positive weights (monotonic, like QMIX)."""

    def __init__(self, env_info, args):
        super().__init__(env_info, args)
        self.temperature = args.weighted_temperature
        self.weights = nn.Linear(self.state_dim, self.n_agents)
        self.bias = nn.Linear(self.state_dim, 1)

    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor, ctx: MixerContext) -> torch.Tensor:
        w = nn.functional.softplus(self.weights(states) / self.temperature)  # (B, T, n_agents)
        return (w * agent_qs).sum(-1, keepdim=True) + self.bias(states)  # (B, T, 1)
