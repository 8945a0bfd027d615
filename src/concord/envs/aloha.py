"""Aloha (bn_dag_policies.md §7.1; the version of Wang et al. 2022), a batch of envs.

Ten islands in a 2x5 array [P], each with a message backlog, choose 0 = don't send or 1 = send [P].
A new message arrives at each island with probability 0.6 per step [P]. Team reward: +0.1 per
message sent without collision, -10 when a message collides with one sent by a neighbouring island
[P]. 25-step episodes [P Table 2], ended by truncation. Each island observes its own backlog
[P §7.4.3] (one raw count, as in the reference code); the state is every backlog. gamma is not
fixed by the paper [X] (the general default 0.99, MAPPO's, applies). Metric: the return (logged by
the runner); the last step's info also carries the episode's ``transmitted`` and ``collisions``.

Open details and the defaults taken (each a yaml key):
- neighbours: the 4-neighbourhood of the ``grid_shape`` grid, row-major island order [X, spec sheet];
  the reference code's extra edge between islands 4 and 5 is not reproduced;
- backlog starts at ``initial_backlog`` = 1 and is capped at ``max_backlog`` = 5; arrivals come
  after transmission, and one arriving at a full backlog is dropped [C];
- ``empty_send``: what "send" with an empty backlog does. ``"collide"`` [C]: nothing is delivered
  but the carrier still collides with neighbours' messages; ``"noop"``: nothing happens;
  ``"mask"``: the action is unavailable while the backlog is empty (and acts as "noop");
- ``collision_penalty_per``: ``"sender"`` [C], -10 for every sender whose message collides; or
  ``"event"``, -10 per pair of neighbours that both transmit while at least one carries a message.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from concord.envs.base import EnvObs, StepResult
from concord.envs.numpy_vec import NumpyVecEnv
from concord.envs.seeding import Seed
from concord.errors import ConfigError
from concord.registry import register_env

EMPTY_SEND = ("collide", "noop", "mask")
PENALTY_PER = ("sender", "event")


def grid_adjacency(rows: int, cols: int) -> np.ndarray:
    """``(rows*cols, rows*cols)`` bool 4-neighbour adjacency of a grid, islands in row-major order."""
    idx = np.arange(rows * cols).reshape(rows, cols)
    adj = np.zeros((rows * cols, rows * cols), dtype=bool)
    for a, b in ((idx[:, :-1], idx[:, 1:]), (idx[:-1, :], idx[1:, :])):
        adj[a.ravel(), b.ravel()] = True
        adj[b.ravel(), a.ravel()] = True
    return adj


@register_env("aloha")
class AlohaEnv(NumpyVecEnv):
    """``num_envs`` Aloha games; env i draws from its own stream (``numpy_vec``'s seeding)."""

    def __init__(
        self,
        num_envs: int,
        seed: Seed = None,
        grid_shape: Sequence[int] = (2, 5),
        arrival_prob: float = 0.6,
        success_reward: float = 0.1,
        collision_penalty: float = 10.0,
        initial_backlog: int = 1,
        max_backlog: int = 5,
        empty_send: str = "collide",
        collision_penalty_per: str = "sender",
        episode_limit: int = 25,
    ) -> None:
        if len(grid_shape) != 2 or min(grid_shape) < 1:
            raise ConfigError(f"aloha: grid_shape must be [rows, cols] >= 1, got {list(grid_shape)}")
        if num_envs < 1 or episode_limit < 1 or not 0 <= initial_backlog <= max_backlog:
            raise ConfigError("aloha needs num_envs, episode_limit >= 1 and 0 <= initial_backlog <= max_backlog")
        if not 0.0 <= arrival_prob <= 1.0:
            raise ConfigError(f"aloha: arrival_prob must lie in [0, 1], got {arrival_prob}")
        if empty_send not in EMPTY_SEND:
            raise ConfigError(f"aloha: empty_send must be one of {EMPTY_SEND}, got '{empty_send}'")
        if collision_penalty_per not in PENALTY_PER:
            raise ConfigError(
                f"aloha: collision_penalty_per must be one of {PENALTY_PER}, got '{collision_penalty_per}'")
        super().__init__(num_envs, seed)
        self.adj = grid_adjacency(*grid_shape)  # (N, N) bool
        self.edges = np.argwhere(np.triu(self.adj))  # (n_edges, 2) each neighbour pair once
        self.n_agents = self.adj.shape[0]
        self.n_actions = 2
        self.episode_limit = episode_limit
        self.obs_shape, self.state_shape = 1, self.n_agents
        self.arrival_prob = float(arrival_prob)
        self.success_reward = float(success_reward)
        self.collision_penalty = float(collision_penalty)
        self.initial_backlog = initial_backlog
        self.max_backlog = max_backlog
        self.empty_send = empty_send
        self.collision_penalty_per = collision_penalty_per
        self.backlog = np.full((num_envs, self.n_agents), initial_backlog, dtype=np.int64)  # (E, N)
        self.transmitted = np.zeros(num_envs, dtype=np.int64)  # (E,) messages delivered this episode
        self.collisions = np.zeros(num_envs, dtype=np.int64)  # (E,) penalties charged this episode

    def _obs(self, ids: np.ndarray) -> EnvObs:
        b = self.backlog[ids].astype(np.float32)  # (k, N)
        avail = np.ones((len(ids), self.n_agents, 2), dtype=bool)  # (k, N, 2)
        if self.empty_send == "mask":
            avail[:, :, 1] = self.backlog[ids] > 0
        return EnvObs(obs=b[:, :, None], state=b, avail_actions=avail)  # obs (k, N, 1), state (k, N)

    def reset(self, env_ids: Sequence[int]) -> EnvObs:
        ids = np.asarray(env_ids, dtype=np.intp)
        self.backlog[ids] = self.initial_backlog
        self.t[ids] = 0
        self.transmitted[ids] = 0
        self.collisions[ids] = 0
        return self._obs(ids)

    def step(self, env_ids: Sequence[int], actions: np.ndarray) -> StepResult:
        ids = np.asarray(env_ids, dtype=np.intp)
        send = np.asarray(actions).astype(bool)  # (k, N)
        if send.shape != (len(ids), self.n_agents):
            raise ValueError(f"aloha: actions have shape {send.shape}, expected {(len(ids), self.n_agents)}")
        backlog = self.backlog[ids]  # (k, N)
        has_msg = send & (backlog > 0)  # (k, N) a real message goes out
        on_air = send if self.empty_send == "collide" else has_msg  # (k, N) occupies the channel
        jammed = (on_air.astype(np.int64) @ self.adj.astype(np.int64)) > 0  # (k, N) a neighbour is on air
        collided = has_msg & jammed  # (k, N)
        success = has_msg & ~jammed  # (k, N)
        if self.collision_penalty_per == "sender":
            n_pen = collided.sum(axis=1)  # (k,)
        else:
            i, j = self.edges[:, 0], self.edges[:, 1]
            n_pen = (on_air[:, i] & on_air[:, j] & (has_msg[:, i] | has_msg[:, j])).sum(axis=1)  # (k,)
        n_ok = success.sum(axis=1)  # (k,)
        reward = self.success_reward * n_ok - self.collision_penalty * n_pen  # (k,)
        arrivals = self.rngs.uniform(ids, self.n_agents) < self.arrival_prob  # (k, N), after transmission [C]
        self.backlog[ids] = np.minimum(backlog - success + arrivals, self.max_backlog)
        self.transmitted[ids] += n_ok
        self.collisions[ids] += n_pen
        return self._time_limit_result(
            ids, self._obs(ids), reward,
            lambda i: {"transmitted": int(self.transmitted[i]), "collisions": int(self.collisions[i])},
        )
