"""Action selectors: turn agent outputs into actions, respecting available-action masks."""
from __future__ import annotations

from types import SimpleNamespace

import torch

from concord.components.schedules import LinearSchedule
from concord.registry import register_action_selector


@register_action_selector("epsilon_greedy")
class EpsilonGreedySelector:
    """Greedy over available actions, uniform among available actions with probability epsilon."""

    def __init__(self, args: SimpleNamespace) -> None:
        self.schedule = LinearSchedule(args.epsilon_start, args.epsilon_finish, args.epsilon_anneal_time)
        self.test_epsilon = args.test_epsilon
        self.epsilon = self.schedule(0)

    def select(self, q: torch.Tensor, avail: torch.Tensor, t_env: int, test_mode: bool = False) -> torch.Tensor:
        """``q``: (k, n_agents, n_actions); ``avail``: same shape, bool -> actions (k, n_agents) int64."""
        self.epsilon = self.test_epsilon if test_mode else self.schedule(t_env)
        masked = q.masked_fill(~avail, -float("inf"))  # (k, n_agents, n_actions)
        greedy = masked.argmax(dim=-1)  # (k, n_agents)
        if self.epsilon <= 0.0:
            return greedy
        random_actions = torch.multinomial(avail.reshape(-1, avail.shape[-1]).float(), 1).reshape(greedy.shape)
        explore = torch.rand(greedy.shape, device=q.device) < self.epsilon  # (k, n_agents)
        return torch.where(explore, random_actions, greedy)


@register_action_selector("multinomial")
class MultinomialSelector:
    """Samples from policy probabilities (for actor-critic agents); greedy at test time if ``test_greedy``."""

    def __init__(self, args: SimpleNamespace) -> None:
        self.test_greedy = args.test_greedy
        self.epsilon = 0.0

    def select(self, probs: torch.Tensor, avail: torch.Tensor, t_env: int, test_mode: bool = False) -> torch.Tensor:
        masked = probs.masked_fill(~avail, 0.0)  # (k, n_agents, n_actions)
        if test_mode and self.test_greedy:
            return masked.argmax(dim=-1)
        return torch.multinomial(masked.reshape(-1, masked.shape[-1]), 1).reshape(masked.shape[:-1])
