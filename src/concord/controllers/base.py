"""The contract every controller (multi-agent controller, "MAC") honours.

A controller owns the agent network(s) and turns observations into actions. Rollouts call ``select_actions`` on
the envs still running; it returns the actions **and** a dict of per-step outputs (log-probabilities, a sampled
DAG, parents' actions, ...) under the fields the controller declared in ``batch_fields``: the runner writes them
into the episode batch at the step they were taken, so a learner can recompute anything under what was sampled.
Learners call ``forward_seq`` to unroll stored episodes. Controllers receive the whole ``EnvObs`` (observations,
state, available actions and the env's extras), not only observations.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import numpy as np
import torch

if TYPE_CHECKING:
    from concord.components.episode_buffer import Scheme
    from concord.envs.base import EnvObs


class Controller(ABC):
    """Base class of registered controllers, constructed as ``cls(env_info, args, device)``."""

    agent: torch.nn.Module

    def __init__(self, env_info: Mapping[str, Any], args: SimpleNamespace, device: torch.device) -> None:
        self.n_agents = env_info["n_agents"]
        self.n_actions = env_info["n_actions"]
        self.args = args
        self.device = device

    def batch_fields(self) -> "Scheme":
        """Per-step outputs of ``select_actions`` that the runner stores (name -> ``Field``); none by default."""
        return {}

    @abstractmethod
    def init_hidden(self, n_envs: int) -> None:
        """Reset the rollout state (recurrent hidden states) for a round of ``n_envs`` episodes."""

    @abstractmethod
    def reset_hidden(self, env_ids: np.ndarray) -> None:
        """Reset the rollout state of envs ``env_ids`` only (their episode was restarted)."""

    @abstractmethod
    def select_actions(self, obs: "EnvObs", last_actions: np.ndarray, env_ids: np.ndarray, t_env: int,
                       test_mode: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Actions (k, n_agents) for the running envs ``env_ids`` (rows of ``obs``), and the per-step outputs,
        each of shape (k, *field.shape) for a field of ``batch_fields``."""

    @abstractmethod
    def forward_seq(self, batch: Mapping[str, torch.Tensor], agent: torch.nn.Module | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Unroll stored episodes from t = 0: outputs (B, T, n_agents, n_actions), hiddens (B, T, n_agents, H)."""

    def policy_losses(self, batch: Mapping[str, torch.Tensor], t_env: int) -> dict[str, torch.Tensor]:
        """Extra actor-loss terms on a training minibatch (a DAG-density regulariser, ...), added by policy-gradient
        learners to their loss and logged as ``aux_<name>``; none by default."""
        return {}

    def stats(self) -> dict[str, float]:
        """Statistics of the latest action selection (e.g. ε), logged by the trainer."""
        return {}

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        return self.agent.parameters()

    def state_dict(self) -> dict[str, Any]:
        return self.agent.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.agent.load_state_dict(state)
