"""GaussianSqueeze[N] (vast.md §5.1; HolmesParker et al. 2014), a batch of one-step allocation games.

N agents each pick a_i in {0..9}; the allocation x = sum_i a_i earns the team reward (and the
"system performance" metric, §5.2) GS(x) = x * exp(-(x - mu)^2 / sigma^2) [P] with mu = 400,
sigma = 200 [P]; the denominator is sigma^2, not 2 sigma^2. The optimum is x* = 445,
GS(445) ~ 423.03 (continuous optimum (mu + sqrt(mu^2 + 2 sigma^2)) / 2 = 444.95).

Every episode is a single step that ends *terminated* (a true terminal: nothing to bootstrap), so
gamma is irrelevant (the authors' code uses 1 [C]). There is no state and no randomness.

Observation [X] (the paper is silent), key ``obs_type``:
- ``"constant"`` (default): one feature equal to 1. With the framework's ``obs_agent_id=true`` the
  agent network receives the one-hot agent id, which is exactly the authors' observation; the env
  itself does not repeat it because an (N, N) one-hot per env step is 2.6 MB at N = 800 and would
  dominate the replay buffer (5000 episodes x 2 steps x 2.6 MB);
- ``"agent_id"``: the authors' observation [C], a one-hot agent id of length N.
The global state is one zero feature (the authors' code: an all-zero state [C]).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from concord.envs.base import EnvObs, StepResult
from concord.envs.numpy_vec import NumpyVecEnv
from concord.envs.seeding import Seed
from concord.errors import ConfigError
from concord.registry import register_env

N_ACTIONS = 10  # a_i in {0, ..., 9} [P §5.1]
OBS_TYPES = ("constant", "agent_id")


def squeeze_value(x: np.ndarray | float, mu: float, sigma: float) -> np.ndarray:
    """GS(x) = x exp(-(x - mu)^2 / sigma^2) (vast.md §5.1), elementwise."""
    x = np.asarray(x, dtype=np.float64)
    return x * np.exp(-((x - mu) ** 2) / sigma**2)


@register_env("gaussian_squeeze")
class GaussianSqueezeEnv(NumpyVecEnv):
    """``num_envs`` independent GaussianSqueeze[N] games stepped as one batch."""

    def __init__(
        self,
        num_envs: int,
        seed: Seed = None,
        n_agents: int = 200,
        mu: float = 400.0,
        sigma: float = 200.0,
        obs_type: str = "constant",
    ) -> None:
        if num_envs < 1 or n_agents < 1:
            raise ConfigError(f"gaussian_squeeze needs num_envs >= 1 and n_agents >= 1, got {num_envs}, {n_agents}")
        if sigma <= 0:
            raise ConfigError(f"gaussian_squeeze: sigma must be > 0, got {sigma}")
        if obs_type not in OBS_TYPES:
            raise ConfigError(f"gaussian_squeeze: obs_type must be one of {OBS_TYPES}, got '{obs_type}'")
        super().__init__(num_envs, seed)  # the game draws nothing from its streams
        self.n_agents = n_agents
        self.n_actions = N_ACTIONS
        self.episode_limit = 1
        self.obs_shape = n_agents if obs_type == "agent_id" else 1
        self.state_shape = 1
        self.mu, self.sigma = float(mu), float(sigma)
        self.obs_type = obs_type

    def optimum(self) -> tuple[int, float]:
        """The best feasible allocation x* in {0..9N} and GS(x*), from the closed-form stationary point."""
        x_cont = (self.mu + np.sqrt(self.mu**2 + 2 * self.sigma**2)) / 2  # root of 2x^2 - 2 mu x - sigma^2
        candidates = np.clip([np.floor(x_cont), np.ceil(x_cont)], 0, (N_ACTIONS - 1) * self.n_agents)
        values = squeeze_value(candidates, self.mu, self.sigma)
        best = int(np.argmax(values))
        return int(candidates[best]), float(values[best])

    def _obs(self, k: int) -> EnvObs:
        if self.obs_type == "agent_id":
            obs = np.tile(np.eye(self.n_agents, dtype=np.float32), (k, 1, 1))  # (k, N, N)
        else:
            obs = np.ones((k, self.n_agents, 1), dtype=np.float32)  # (k, N, 1)
        return EnvObs(
            obs=obs,
            state=np.zeros((k, 1), dtype=np.float32),  # (k, 1)
            avail_actions=np.ones((k, self.n_agents, N_ACTIONS), dtype=bool),  # (k, N, 10)
        )

    def reset(self, env_ids: Sequence[int]) -> EnvObs:
        return self._obs(len(env_ids))

    def step(self, env_ids: Sequence[int], actions: np.ndarray) -> StepResult:
        k = len(env_ids)
        actions = np.asarray(actions)
        if actions.shape != (k, self.n_agents):
            raise ValueError(f"gaussian_squeeze: actions have shape {actions.shape}, expected {(k, self.n_agents)}")
        if k and (actions.min() < 0 or actions.max() >= N_ACTIONS):
            raise ValueError("gaussian_squeeze: actions must lie in 0..9")
        x = actions.sum(axis=1, dtype=np.int64)  # (k,)
        gs = squeeze_value(x, self.mu, self.sigma)  # (k,)
        return StepResult(
            obs=self._obs(k),
            reward=gs.astype(np.float32),
            terminated=np.ones(k, dtype=bool),
            truncated=np.zeros(k, dtype=bool),
            infos=[{"system_performance": float(g), "allocation": int(xi)} for g, xi in zip(gs, x)],
        )
