"""One-step cooperative matrix games (two or more players), with any payoff table."""
from __future__ import annotations

from typing import Any

import numpy as np

from concord.envs.base import MultiAgentEnv
from concord.errors import ConfigError
from concord.registry import register_env


@register_env("matrix_game")
class MatrixGame(MultiAgentEnv):
    """A single joint action earns ``payoff[a_1][a_2]...``; the episode then terminates.

    The observation and state are constant (a single 1), so a greedy policy's return is the payoff of its
    greedy joint action. The default payoff is the classic non-monotonic game [[8,-12,-12],[-12,0,0],[-12,0,0]]
    on which VDN and QMIX miss the optimum (8) under uniform exploration.
    """

    def __init__(self, payoff: list, seed: int | None = None) -> None:
        super().__init__(seed)
        self.payoff = np.asarray(payoff, dtype=np.float32)
        if self.payoff.ndim < 2 or self.payoff.dtype == object:
            raise ConfigError(f"env_args.payoff must be a rectangular table with one axis per agent, got {payoff!r}")
        self.n_agents = self.payoff.ndim
        self.n_actions = int(max(self.payoff.shape))
        self.episode_limit = 1
        self._avail = np.zeros((self.n_agents, self.n_actions), dtype=bool)
        for i, size in enumerate(self.payoff.shape):
            self._avail[i, :size] = True

    def reset(self) -> None:
        pass

    def step(self, actions: np.ndarray) -> tuple[float, bool, dict[str, Any]]:
        reward = float(self.payoff[tuple(int(a) for a in actions)])
        return reward, True, {"optimal": float(reward == self.payoff.max())}

    def get_obs(self) -> np.ndarray:
        return np.ones((self.n_agents, 1), dtype=np.float32)

    def get_state(self) -> np.ndarray:
        return np.ones(1, dtype=np.float32)

    def get_avail_actions(self) -> np.ndarray:
        return self._avail.copy()
