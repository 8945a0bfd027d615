"""The on-policy learner family's one implementation: rollout storage, epochs over minibatches of whole episodes,
optimisation. PPO (MAPPO/IPPO) and the factorised actor-critic differ only in the hooks ``prepare`` (quantities
fixed before the epochs: old values, advantages, return targets) and ``loss`` (one minibatch's objective).

The learner stores each collected round; once it holds ``rollout_episodes`` episodes it trains on exactly those
and empties the storage. Minibatches are whole episodes (recurrent networks unroll from t = 0), drawn by torch's
global generator, which checkpoints save. Parameter groups (e.g. actor and critic) have their own learning rate
and are clipped to ``grad_norm_clip`` separately.
"""
from __future__ import annotations

from abc import abstractmethod
from types import SimpleNamespace
from typing import Any, Mapping

import torch

from concord.components.rollout_storage import RolloutStorage
from concord.errors import ConfigError
from concord.learners.base import Learner, mean_stats

Batch = dict[str, torch.Tensor]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over entries where ``mask`` (broadcastable to x) is 1. Entries outside the mask are selected
    away, not multiplied by 0: a step after an episode's end may hold log π = −inf (its stored action is not
    available there), and −inf · 0 would make the mean NaN."""
    m = mask.expand_as(x)
    return torch.where(m > 0, x, torch.zeros_like(x)).sum() / m.sum().clamp(min=1.0)


def select_rows(d: Mapping[str, torch.Tensor], idx: torch.Tensor) -> Batch:
    return {k: v[idx] for k, v in d.items()}


class OnPolicyLearner(Learner):
    """Base of learners that train on their latest rollouts only."""

    def __init__(self, mac: Any, env_info: Mapping[str, Any], args: SimpleNamespace, device: torch.device,
                 epochs: int = 1, minibatches: int = 1) -> None:
        super().__init__(mac, env_info, args, device)
        if "log_prob" not in self.scheme:
            raise ConfigError(f"learner '{args.learner}' needs a stochastic policy that stores its log-probabilities "
                              f"(action_selector=multinomial), got action_selector={args.action_selector}")
        self.storage = RolloutStorage(self.scheme, args.rollout_episodes, self.max_seq_length)
        self.epochs, self.minibatches = epochs, minibatches
        self.optimiser: torch.optim.Optimizer | None = None  # built by subclasses with ``make_optimiser``

    def make_optimiser(self, groups: list[tuple[str, list[torch.nn.Parameter], float]]) -> None:
        """One Adam over named parameter groups ``(name, params, lr)``."""
        self.group_names = [g[0] for g in groups]
        self.optimiser = torch.optim.Adam([{"params": p, "lr": lr} for _, p, lr in groups],
                                          eps=self.args.optim_eps, foreach=True)

    # --- the schedule ---------------------------------------------------------------------------
    def update(self, batch: Any, t_env: int, episode: int) -> dict[str, float]:
        self.storage.add(batch)
        if not self.storage.full():
            return {}
        data = self.storage.take().to_torch(self.device)
        return self.train(data, t_env)

    def train(self, data: Batch, t_env: int) -> dict[str, float]:
        """``epochs`` passes over ``data`` in ``minibatches`` shuffled minibatches of episodes."""
        with torch.no_grad():
            prep = self.prepare(data, t_env)
        n = data["filled"].shape[0]
        steps = []
        for _ in range(self.epochs):
            order = torch.randperm(n)
            for idx in torch.chunk(order, min(self.minibatches, n)):
                steps.append(self.step(select_rows(data, idx), select_rows(prep, idx), t_env))
        return {**mean_stats(steps), **self.after_train(data, prep, t_env)}

    def step(self, mb: Batch, prep: Batch, t_env: int) -> dict[str, float]:
        loss, stats = self.loss(mb, prep, t_env)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        for name, group in zip(self.group_names, self.optimiser.param_groups):
            stats[f"grad_norm_{name}"] = float(torch.nn.utils.clip_grad_norm_(group["params"], self.args.grad_norm_clip))
        self.optimiser.step()
        self.n_updates += 1
        stats["loss"] = loss.item()
        return stats

    # --- hooks -------------------------------------------------------------------------------------
    @abstractmethod
    def prepare(self, data: Batch, t_env: int) -> Batch:
        """Per-episode tensors fixed for all epochs (advantages, returns, old values), under ``no_grad``."""

    @abstractmethod
    def loss(self, mb: Batch, prep: Batch, t_env: int) -> tuple[torch.Tensor, dict[str, float]]:
        """The objective of one minibatch and its statistics."""

    def after_train(self, data: Batch, prep: Batch, t_env: int) -> dict[str, float]:
        """Anything trained once per update on the whole rollout (e.g. a mixer's on-policy part); none by default."""
        return {}

    # --- checkpoints ------------------------------------------------------------------------------
    def networks(self) -> dict[str, torch.nn.Module]:
        return {"agent": self.mac.agent}

    def modules(self) -> dict[str, torch.nn.Module]:
        """Every trained module besides the controller's agent, by name (for checkpoints)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"agent": self.mac.state_dict(), "modules": {k: m.state_dict() for k, m in self.modules().items()},
                "optimiser": self.optimiser.state_dict(), "storage": self.storage.state_dict(),
                "n_updates": self.n_updates}

    def load_state_dict(self, s: Mapping[str, Any]) -> None:
        self.mac.load_state_dict(s["agent"])
        for k, m in self.modules().items():
            m.load_state_dict(s["modules"][k])
        self.optimiser.load_state_dict(s["optimiser"])
        self.storage.load_state_dict(s["storage"])
        self.n_updates = s["n_updates"]
