"""Exact finite models of small Markov games, for tabular experiments on domains that also run as envs.

A domain with a small joint state and action space (the coordination game, MABC) exposes its exact
model as a ``TabularModel``: the transition tensor ``T[s, a, s']``, the expected team reward
``R[s, a]`` and the initial distribution ``mu[s]``. Exact policy gradients, value iteration, the
price of anarchy and the Nash gap (bn_dag_policies.md §7.1, dadc.md §6) are computed from it.

Index convention (shared by every model): a joint state made of factors with sizes
``state_shape`` has the flat index ``np.ravel_multi_index(factors, state_shape)`` (C order, the
first factor is the most significant); joint actions likewise with ``action_shape``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class TabularModel:
    """``T (S, A, S)``, ``R (S, A)``, ``mu (S,)`` and, if some joint actions are masked, ``avail (S, A)``."""

    T: np.ndarray  # (S, A, S) float64, T[s, a, s'] = P(s' | s, a)
    R: np.ndarray  # (S, A) float64, expected team reward of joint action a in state s
    mu: np.ndarray  # (S,) float64, initial state distribution
    state_shape: tuple[int, ...]  # sizes of the state factors, most significant first
    action_shape: tuple[int, ...]  # sizes of the agents' actions, agent 0 most significant
    state_factors: tuple[str, ...]  # a name per state factor, e.g. ("B1", "B2", "S")
    avail: np.ndarray | None = None  # (S, A) bool; None: every joint action is available

    def __post_init__(self) -> None:
        n_s, n_a = int(np.prod(self.state_shape)), int(np.prod(self.action_shape))
        if self.T.shape != (n_s, n_a, n_s) or self.R.shape != (n_s, n_a) or self.mu.shape != (n_s,):
            raise ValueError(f"tabular model shapes T{self.T.shape} R{self.R.shape} mu{self.mu.shape} "
                             f"do not fit {n_s} states x {n_a} joint actions")
        if len(self.state_factors) != len(self.state_shape):
            raise ValueError("tabular model: one name per state factor is needed")
        if not np.allclose(self.T.sum(-1), 1.0) or not np.isclose(self.mu.sum(), 1.0):
            raise ValueError("tabular model: T[s, a, :] and mu must be probability distributions")
        if self.avail is not None and self.avail.shape != (n_s, n_a):
            raise ValueError(f"tabular model: avail has shape {self.avail.shape}, expected {(n_s, n_a)}")

    @property
    def n_states(self) -> int:
        return self.T.shape[0]

    @property
    def n_joint_actions(self) -> int:
        return self.T.shape[1]

    def state_index(self, factors: np.ndarray) -> np.ndarray:
        """Flat state index of ``factors (..., n_factors)``."""
        f = np.asarray(factors)
        return np.ravel_multi_index(tuple(np.moveaxis(f, -1, 0)), self.state_shape)

    def action_index(self, actions: np.ndarray) -> np.ndarray:
        """Flat joint-action index of per-agent ``actions (..., n_agents)``."""
        a = np.asarray(actions)
        return np.ravel_multi_index(tuple(np.moveaxis(a, -1, 0)), self.action_shape)

    def state_of(self, index: np.ndarray | int) -> np.ndarray:
        """Factors ``(..., n_factors)`` of flat state ``index``."""
        return np.stack(np.unravel_index(index, self.state_shape), axis=-1)

    def action_of(self, index: np.ndarray | int) -> np.ndarray:
        """Per-agent actions ``(..., n_agents)`` of flat joint-action ``index``."""
        return np.stack(np.unravel_index(index, self.action_shape), axis=-1)
