"""The one call signature every mixer has, and the context it may draw on.

``mixer(agent_qs, states, ctx) -> q_tot``: ``agent_qs`` (B, T, n_agents) are the chosen agents' values,
``states`` (B, T, state_dim) the (possibly last-action-augmented) states, ``ctx`` a ``MixerContext`` with the
rest of what some mixers need (all action values, the chosen actions, hidden states). The learner fills the
context the same way for every mixer and never branches on a mixer's name; a mixer that adds loss terms
(QTRAN's constraints, QPLEX's attention regulariser) returns them from ``auxiliary_losses``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Mapping

import torch
import torch.nn as nn

if TYPE_CHECKING:
    from concord.components.episode_buffer import EpisodeBatch


@dataclass
class MixerContext:
    """Per-step tensors available to mixers; ``actions`` are the ones ``agent_qs`` were taken at."""

    all_qs: torch.Tensor  # (B, T, n_agents, n_actions)
    actions: torch.Tensor  # (B, T, n_agents) int64
    avail_actions: torch.Tensor  # (B, T, n_agents, n_actions) bool
    greedy_qs: torch.Tensor | None = None  # (B, T, n_agents) max over available actions of all_qs
    hidden: torch.Tensor | None = None  # (B, T, n_agents, hidden)
    last_actions: torch.Tensor | None = None  # (B, T, n_agents) int64, the previous step's actions (-1 at t = 0)
    obs: torch.Tensor | None = None  # (B, T, n_agents, obs_dim)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # e.g. positions (B, T, n_agents, 2)
    mask: torch.Tensor | None = None  # (B, T) 1 where an action was taken
    is_target: bool = False  # True when mixing greedy next-step values for a TD target


class Mixer(nn.Module):
    """Base class of registered mixers: constructed as ``cls(env_info, args)``."""

    def __init__(self, env_info: Mapping[str, Any], args: SimpleNamespace) -> None:
        super().__init__()
        self.n_agents = env_info["n_agents"]
        self.n_actions = env_info["n_actions"]
        self.state_dim = env_info["state_shape"]

    def forward(self, agent_qs: torch.Tensor, states: torch.Tensor, ctx: MixerContext) -> torch.Tensor:
        """(B, T, n_agents), (B, T, state_dim) -> (B, T, 1)."""
        raise NotImplementedError

    def td_parameters(self) -> list[nn.Parameter]:
        """Parameters the learner's optimiser trains (all by default; parts trained on-policy by the mixer
        itself, like VAST's assignment policy, are left out by overriding this)."""
        return list(self.parameters())

    def auxiliary_losses(self, ctx: MixerContext, **kwargs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Extra weighted loss terms added to the TD loss (none by default)."""
        return {}

    def rollout_update(self, batch: "EpisodeBatch", t_env: int, mac: Any) -> dict[str, float]:
        """On-policy update from the latest round of episodes (numpy ``EpisodeBatch``; ``mac`` gives the agents'
        values via ``mac.forward_seq(batch.to_torch(device))``), e.g. VAST's assignment policy; none by default."""
        return {}
