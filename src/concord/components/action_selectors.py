"""Action selectors: turn the agents' outputs for the running envs into actions, respecting masks.

They work on numpy arrays: a rollout step selects actions for a handful of agents, where numpy's per-call cost
is a fraction of torch's. Randomness comes from numpy's global generator, which checkpoints save and restore.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from concord.components.schedules import LinearSchedule
from concord.registry import register_action_selector


def uniform_available(avail: np.ndarray) -> np.ndarray:
    """A uniformly random available action per agent: the argmax of i.i.d. uniforms over the available entries."""
    return (np.random.random_sample(avail.shape) * avail).argmax(axis=-1)


@register_action_selector("epsilon_greedy")
class EpsilonGreedySelector:
    """Greedy over available actions, uniform among available actions with probability epsilon."""

    def __init__(self, args: SimpleNamespace) -> None:
        self.schedule = LinearSchedule(args.epsilon_start, args.epsilon_finish, args.epsilon_anneal_time)
        self.test_epsilon = args.test_epsilon
        self.epsilon = self.schedule(0)

    def select(self, q: np.ndarray, avail: np.ndarray, t_env: int, test_mode: bool = False) -> np.ndarray:
        """``q`` (k, n_agents, n_actions), ``avail`` bool of the same shape -> actions (k, n_agents)."""
        self.epsilon = self.test_epsilon if test_mode else self.schedule(t_env)
        greedy = np.where(avail, q, -np.inf).argmax(axis=-1)  # (k, n_agents)
        if self.epsilon <= 0.0:
            return greedy
        explore = np.random.random_sample(greedy.shape) < self.epsilon  # (k, n_agents)
        return np.where(explore, uniform_available(avail), greedy)


@register_action_selector("multinomial")
class MultinomialSelector:
    """Samples from policy probabilities (actor-critic agents); greedy at test time if ``test_greedy``."""

    def __init__(self, args: SimpleNamespace) -> None:
        self.test_greedy = args.test_greedy
        self.epsilon = 0.0

    def select(self, probs: np.ndarray, avail: np.ndarray, t_env: int, test_mode: bool = False) -> np.ndarray:
        masked = np.where(avail, probs, 0.0)  # (k, n_agents, n_actions)
        if test_mode and self.test_greedy:
            return masked.argmax(axis=-1)
        cdf = np.cumsum(masked, axis=-1)  # (k, n_agents, n_actions)
        u = np.random.random_sample(cdf.shape[:-1] + (1,)) * cdf[..., -1:]
        return np.minimum((cdf <= u).sum(axis=-1), masked.shape[-1] - 1)
