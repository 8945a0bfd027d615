"""Action selectors: turn the agents' outputs for the running envs into actions, respecting masks.

Rollout selection works on numpy arrays: a rollout step selects actions for a handful of agents, where numpy's
per-call cost is a fraction of torch's. Randomness comes from numpy's global generator, which checkpoints save
and restore. Each selector also gives learners its policy as torch probabilities (``probs``), so that a learner
never re-implements the behaviour policy (VAST's baseline uses the ε-greedy one, actor-critics the softmax).
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from concord.components.episode_buffer import Field, Scheme
from concord.components.schedules import LinearSchedule
from concord.registry import register_action_selector


def uniform_available(avail: np.ndarray) -> np.ndarray:
    """A uniformly random available action per agent: the argmax of i.i.d. uniforms over the available entries."""
    return (np.random.random_sample(avail.shape) * avail).argmax(axis=-1)


def masked_log_softmax(logits: torch.Tensor, avail: torch.Tensor) -> torch.Tensor:
    """log π(a) of the softmax over the available actions (−inf elsewhere); a step with no available action
    (padding) gets a uniform distribution so that nothing downstream is NaN. (..., n_actions) -> same."""
    none = ~avail.any(dim=-1, keepdim=True)  # (..., 1)
    masked = logits.masked_fill(~(avail | none), -float("inf"))
    return torch.log_softmax(masked, dim=-1)


def masked_entropy(log_probs: torch.Tensor) -> torch.Tensor:
    """Entropy of a masked categorical (entries at −inf contribute 0): (..., n_actions) -> (...)."""
    p = log_probs.exp()
    return -(p * log_probs.masked_fill(p == 0, 0.0)).sum(dim=-1)


class ActionSelector:
    """Base class of registered selectors, constructed as ``cls(args)``."""

    def select(self, outputs: np.ndarray, avail: np.ndarray, t_env: int, test_mode: bool = False
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``outputs`` (k, n_agents, n_actions), ``avail`` bool alike -> actions (k, n_agents), per-step outputs."""
        raise NotImplementedError

    def batch_fields(self, n_agents: int) -> Scheme:
        """The per-step outputs ``select`` returns, to be stored in the batch."""
        return {}

    def probs(self, outputs: torch.Tensor, avail: torch.Tensor, t_env: int) -> torch.Tensor:
        """The training-time policy π(a | outputs) over available actions, (..., n_actions) -> (..., n_actions)."""
        raise NotImplementedError

    def stats(self) -> dict[str, float]:
        """Statistics of training-mode selection since the last call, for the logger."""
        return {}


@register_action_selector("epsilon_greedy")
class EpsilonGreedySelector(ActionSelector):
    """Greedy over available actions, uniform among available actions with probability epsilon."""

    def __init__(self, args: SimpleNamespace) -> None:
        self.schedule = LinearSchedule(args.epsilon_start, args.epsilon_finish, args.epsilon_anneal_time)
        self.test_epsilon = args.test_epsilon
        self.epsilon = self.schedule(0)

    def select(self, q: np.ndarray, avail: np.ndarray, t_env: int, test_mode: bool = False
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        eps = self.test_epsilon if test_mode else self.schedule(t_env)
        if not test_mode:
            self.epsilon = eps
        greedy = np.where(avail, q, -np.inf).argmax(axis=-1)  # (k, n_agents)
        if eps <= 0.0:
            return greedy, {}
        explore = np.random.random_sample(greedy.shape) < eps  # (k, n_agents)
        return np.where(explore, uniform_available(avail), greedy), {}

    def probs(self, q: torch.Tensor, avail: torch.Tensor, t_env: int) -> torch.Tensor:
        """π(a) = (1 − ε)·[a = argmax] + ε/|available| over the available actions, at ε of step ``t_env``."""
        eps = self.schedule(t_env)
        greedy = F.one_hot(q.masked_fill(~avail, -float("inf")).argmax(dim=-1), q.shape[-1]).float()
        n_avail = avail.sum(dim=-1, keepdim=True).clamp(min=1).float()  # (..., 1)
        return (1.0 - eps) * greedy * avail + eps * avail.float() / n_avail

    def stats(self) -> dict[str, float]:
        return {"epsilon": self.epsilon}


@register_action_selector("multinomial")
class MultinomialSelector(ActionSelector):
    """Samples from the softmax of the agents' outputs (logits) over the available actions, storing the sampled
    action's log-probability as ``log_prob``; test episodes take the most probable action if ``test_greedy``."""

    def __init__(self, args: SimpleNamespace) -> None:
        self.test_greedy = args.test_greedy
        self._entropy_sum, self._entropy_n = 0.0, 0

    def select(self, logits: np.ndarray, avail: np.ndarray, t_env: int, test_mode: bool = False
               ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        masked = np.where(avail, logits.astype(np.float64), -np.inf)  # (k, n_agents, n_actions)
        none = ~avail.any(axis=-1, keepdims=True)
        masked = np.where(none, 0.0, masked)  # no available action (never in a live env): uniform, like training
        log_p = masked - masked.max(axis=-1, keepdims=True)
        log_p = log_p - np.log(np.exp(log_p).sum(axis=-1, keepdims=True))  # (k, n_agents, n_actions)
        p = np.exp(log_p)
        if test_mode and self.test_greedy:
            actions = log_p.argmax(axis=-1)
        else:
            cdf = np.cumsum(p, axis=-1)  # (k, n_agents, n_actions)
            u = np.random.random_sample(cdf.shape[:-1] + (1,)) * cdf[..., -1:]
            actions = np.minimum((cdf <= u).sum(axis=-1), p.shape[-1] - 1)
            # a draw can only land on an available action; guard the last-bin rounding case
            actions = np.where(np.take_along_axis(avail | none, actions[..., None], -1)[..., 0], actions,
                               log_p.argmax(axis=-1))
            ent = -(p * np.where(p > 0, log_p, 0.0)).sum(-1)  # (k, n_agents)
            self._entropy_sum += float(ent.sum())
            self._entropy_n += ent.size
        chosen = np.take_along_axis(log_p, actions[..., None], -1)[..., 0].astype(np.float32)  # (k, n_agents)
        return actions, {"log_prob": chosen}

    def batch_fields(self, n_agents: int) -> Scheme:
        return {"log_prob": Field((n_agents,), np.float32)}

    def probs(self, logits: torch.Tensor, avail: torch.Tensor, t_env: int) -> torch.Tensor:
        return masked_log_softmax(logits, avail).exp()

    def stats(self) -> dict[str, float]:
        """Mean entropy of the training-mode policies sampled since the last call."""
        out = {"rollout_entropy": self._entropy_sum / self._entropy_n} if self._entropy_n else {}
        self._entropy_sum, self._entropy_n = 0.0, 0
        return out
