"""A tiny deterministic env for framework tests, registered from outside src/ like a user's plugin."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from concord.envs.base import MultiAgentEnv
from concord.registry import register_env


def _claim(path: str) -> bool:
    """Delete ``path``; True only for the one process that deleted it (workers step concurrently)."""
    try:
        os.remove(path)
        return True
    except FileNotFoundError:
        return False


@register_env("test_chain")
class ChainEnv(MultiAgentEnv):
    """Two agents, 3 actions; obs = [t, agent, noise]; reward = number of agents choosing action 1.

    Terminates after ``terminate_at`` steps (0: never, so the time limit truncates). If the file ``crash_file``
    exists at step ``crash_at``, the env deletes it and raises (or, with ``crash_exit``, kills its process):
    a file, so that exactly one crash happens across worker processes and their restarts. Likewise, if the file
    ``init_fail_file`` exists when an env is built, it is deleted and the constructor raises (a failing restart).
    """

    def __init__(self, seed: int | None = None, limit: int = 5, terminate_at: int = 0, crash_at: int = 0,
                 crash_exit: bool = False, crash_file: str = "", init_fail_file: str = "") -> None:
        super().__init__(seed)
        if init_fail_file and _claim(init_fail_file):
            raise RuntimeError("simulated failure while building the env")
        self.n_agents, self.n_actions, self.episode_limit = 2, 3, limit
        self.terminate_at, self.crash_at, self.crash_exit, self.crash_file = terminate_at, crash_at, crash_exit, crash_file
        self.t = 0
        self.episodes = 0
        self.noise = 0.0

    def reset(self) -> None:
        self.t = 0
        self.episodes += 1
        self.noise = float(self.rng.random())

    def step(self, actions: np.ndarray) -> tuple[float, bool, dict[str, Any]]:
        self.t += 1
        if self.crash_file and self.t == self.crash_at and _claim(self.crash_file):
            if self.crash_exit:
                os._exit(3)
            raise RuntimeError("simulated env crash")
        reward = float((np.asarray(actions) == 1).sum())
        terminated = self.terminate_at > 0 and self.t >= self.terminate_at
        info: dict[str, Any] = {"first_noise": self.noise}
        if not terminated and self.t >= self.episode_limit:
            info["episode_limit"] = True
        return reward, terminated, info

    def get_obs(self) -> np.ndarray:
        return np.array([[self.t, i, self.noise] for i in range(2)], dtype=np.float32)

    def get_state(self) -> np.ndarray:
        return np.array([self.t, self.noise], dtype=np.float32)

    def get_avail_actions(self) -> np.ndarray:
        avail = np.ones((2, 3), dtype=bool)
        avail[1, 2] = False
        return avail
