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
from typing import Any, Callable, Mapping

import torch
import torch.nn as nn


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


@dataclass
class LocalPolicy:
    """The agents' local action values and the behaviour policy over them, for mixers trained on-policy.

    The Q-learner gives its agents' Q-values and the ε-greedy policy; an actor-critic its critics' Q_i and its
    actors' π_i, so one mixer (VAST's assignment policy) trains the same way under either learner."""

    qs: torch.Tensor  # (B, T, n_agents, n_actions)
    pi: torch.Tensor  # (B, T, n_agents, n_actions), zero on unavailable actions


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

    def rollout_update(self, batch: Mapping[str, torch.Tensor], t_env: int,
                       local: Callable[[], LocalPolicy]) -> dict[str, float]:
        """On-policy update from the latest round of episodes (``EpisodeBatch.to_torch`` tensors); ``local()``
        computes the agents' values and policy on demand. E.g. VAST's assignment policy; none by default."""
        return {}


def batch_context(batch: Mapping[str, torch.Tensor], steps: slice, all_qs: torch.Tensor, actions: torch.Tensor,
                  hidden: torch.Tensor | None, last_actions: torch.Tensor, mask: torch.Tensor,
                  greedy_qs: torch.Tensor | None = None, is_target: bool = False) -> MixerContext:
    """The context of steps ``steps`` of a stored batch, filled the same way by every learner. ``all_qs``
    (B, T', n_agents, n_actions), ``actions`` and ``last_actions`` (B, T', n_agents), ``mask`` (B, T') are already
    those steps'; ``hidden`` (B, T, n_agents, H) is sliced here. ``greedy_qs`` defaults to the max of ``all_qs``
    over the available actions."""
    avail = batch["avail_actions"][:, steps]  # (B, T', n_agents, n_actions)
    if greedy_qs is None:
        greedy_qs = all_qs.masked_fill(~avail, -float("inf")).max(dim=-1).values  # (B, T', n_agents)
    return MixerContext(all_qs=all_qs, actions=actions, avail_actions=avail, greedy_qs=greedy_qs,
                        hidden=hidden[:, steps] if hidden is not None else None, obs=batch["obs"][:, steps],
                        last_actions=last_actions, mask=mask, is_target=is_target,
                        extras={k[6:]: v[:, steps] for k, v in batch.items() if k.startswith("extra_")})


def make_mixer(env_info: Mapping[str, Any], args: SimpleNamespace, device: torch.device) -> Mixer | None:
    """The configured mixer (``args.mixer``; None for independent learners), sized for the learner's states
    (the env's state, with the agents' last actions if ``env_args.state_last_action``)."""
    if args.mixer is None:
        return None
    from concord.components.state import state_dim
    from concord.registry import MIXERS

    info = dict(env_info, state_shape=state_dim(env_info, args.env_args["state_last_action"]))
    return MIXERS.get(args.mixer)(info, args).to(device)

