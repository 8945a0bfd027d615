"""Partially observable simple spread (LAN App. G), a numpy batch of envs with MPE's physics.

N agents and N landmarks on an unbounded plane. The team reward is minus the sum, over
landmarks, of the distance to the closest agent, minus collision penalties [P App. G]. Each
agent observes only the landmarks and other agents within ``obs_radius`` [P]; hidden entities
are zeroed and flagged. The spawn square grows with N so that the environment size keeps a
constant ratio to the agent count [P], with scale factor 1 at N = 3.

Physics, spawn and per-agent reward terms are those of ``mpe2==1.1.1`` ``simple_spread_v3``
(``_mpe_utils/core.py``, ``simple_spread.py``, ``simple_env.py``) [C]; the parity test drives
both envs side by side. Choices (spec sheet §5):
- landmarks: N [X];
- ``world_scaling`` [X]: "area" (default; side ∝ √N, constant density of agents), "side"
  (side ∝ N) or "none" (MPE's fixed square at every N); spawn is U(−s, s)² with s = 1 at N = 3;
- ``obs_radius`` [X]: 1.0 by default (half the side of the N = 3 square); ``.inf`` gives MPE's
  full observability; an entity at distance ≤ radius is visible;
- ``collision_penalty`` [X]: each agent pays this per other agent within 2 × 0.15 (MPE's local
  reward, so a colliding pair costs twice the penalty); team reward = global + Σ_i local_i,
  i.e. mpe2's Σ_i reward_i · (N + 1) / N at ``local_ratio = N / (N + 1)``;
- observation [X]: MPE's vector without its always-zero communication slots, followed by one
  visibility flag per landmark and per other agent:
  ``[own vel (2), own pos (2), landmark rel pos (2N), other agents' rel pos (2(N−1)),
  landmark flags (N), other-agent flags (N−1)]``;
- state [X]: all agent positions, agent velocities and landmark positions (6N values);
- ``episode_limit`` [C]: MPE's 25 cycles, a truncation.
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from concord.envs.base import EnvObs, StepResult
from concord.envs.numpy_vec import NumpyVecEnv
from concord.envs.seeding import Seed
from concord.errors import ConfigError
from concord.registry import register_env

logger = logging.getLogger(__name__)

# MPE constants [C]: World (core.py) and Scenario.make_world / SimpleEnv._set_action (simple_spread_v3).
DT = 0.1  # World.dt
DAMPING = 0.25  # World.damping
MASS = 1.0  # Entity.initial_mass
ACCEL = 5.0  # SimpleEnv._set_action "sensitivity" (Agent.accel is None)
CONTACT_FORCE = 100.0  # World.contact_force
CONTACT_MARGIN = 1e-3  # World.contact_margin (softplus width k)
AGENT_SIZE = 0.15  # agent radius; landmarks do not collide
COLLISION_DIST = 2 * AGENT_SIZE  # Scenario.is_collision: dist < sum of sizes
OCCUPY_DIST = 0.1  # Scenario.benchmark_data: a landmark is occupied by an agent closer than this
N_ACTIONS = 5
# Discrete action -> unit force direction: 0 noop, 1 −x, 2 +x, 3 −y, 4 +y (SimpleEnv._set_action).
ACTION_DIRS = np.array([[0.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]])  # (5, 2)
WORLD_SCALINGS = ("area", "side", "none")


def world_scale(n_agents: int, world_scaling: str) -> float:
    """Half side of the spawn square: 1 at N = 3, side ∝ √N ("area"), side ∝ N ("side"), or 1 ("none")."""
    if world_scaling == "area":
        return float(np.sqrt(n_agents / 3))
    if world_scaling == "side":
        return n_agents / 3
    if world_scaling == "none":
        return 1.0
    raise ConfigError(f"env_args.world_scaling must be one of {', '.join(WORLD_SCALINGS)}, got {world_scaling!r}")


def agent_pairs(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets ``rel[:, a, b] = p_b − p_a`` ``(k, N, N, 2)`` and distances ``(k, N, N)``, inf on the diagonal."""
    rel = pos[:, None] - pos[:, :, None]  # (k, N, N, 2)
    dist = np.sqrt(np.square(rel).sum(axis=-1))  # (k, N, N)
    n = pos.shape[1]
    dist[:, np.arange(n), np.arange(n)] = np.inf  # no self contact or self collision
    return rel, dist


def contact_forces(rel: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """MPE's soft contact force on each agent from every other agent (core.World.get_collision_force).

    Each pair pushes apart along the line between centres with magnitude
    ``CONTACT_FORCE · k · softplus(−(d − 0.3) / k)``, k = ``CONTACT_MARGIN``; ``rel``/``dist`` as
    returned by ``agent_pairs`` (an infinite distance gives no force).
    """
    penetration = np.logaddexp(0, -(dist - COLLISION_DIST) / CONTACT_MARGIN) * CONTACT_MARGIN  # (k, N, N)
    # mpe2 computes contact_force * (p_a − p_b) / dist * penetration; rel = p_b − p_a
    return -(CONTACT_FORCE * rel / dist[..., None] * penetration[..., None]).sum(axis=2)  # (k, N, 2)


@register_env("po_spread")
class POSpreadVecEnv(NumpyVecEnv):
    """A batch of ``num_envs`` partially observable simple-spread envs (LAN App. G), stepped together.

    World state is public so that tests can place entities by hand: ``agent_pos``, ``agent_vel``
    ``(num_envs, N, 2)``, ``landmark_pos`` ``(num_envs, N, 2)``, ``t`` ``(num_envs,)``. Env ``i``
    draws its spawns from its own generator, seeded ``env_seeds(seed, num_envs)[i]`` (``numpy_vec``'s
    seeding), so a batch equals single envs seeded one by one; at N = 3 the spawn equals mpe2's
    ``reset(seed=env_seeds(seed, num_envs)[i])``.
    """

    def __init__(
        self,
        num_envs: int,
        seed: Seed = None,
        n_agents: int = 3,
        obs_radius: float = 1.0,
        world_scaling: str = "area",
        collision_penalty: float = 1.0,
        episode_limit: int = 25,
    ) -> None:
        if num_envs < 1:
            raise ConfigError(f"num_envs must be at least 1, got {num_envs}")
        if n_agents < 1:
            raise ConfigError(f"env_args.n_agents must be at least 1, got {n_agents}")
        if not obs_radius > 0:
            raise ConfigError(f"env_args.obs_radius must be positive (.inf for full observability), got {obs_radius}")
        if episode_limit < 1:
            raise ConfigError(f"env_args.episode_limit must be at least 1, got {episode_limit}")
        super().__init__(num_envs, seed)
        self.n_agents = n_agents
        self.n_landmarks = n_agents
        self.n_actions = N_ACTIONS
        self.obs_radius = float(obs_radius)
        self.scale = world_scale(n_agents, world_scaling)
        self.collision_penalty = float(collision_penalty)
        self.episode_limit = episode_limit
        n, m = n_agents, self.n_landmarks
        # others[a] = indices of the other agents in MPE's order (agent index, skipping a)
        self._others = np.array([[b for b in range(n) if b != a] for a in range(n)], dtype=np.intp).reshape(n, n - 1)
        self._rows = np.arange(n)[:, None]  # (N, 1)
        self.obs_shape = 4 + 3 * m + 3 * (n - 1)
        self.state_shape = 4 * n + 2 * m
        self.extras_shapes = {"positions": (n, 2)}
        self.agent_pos = np.zeros((num_envs, n, 2))  # (E, N, 2)
        self.agent_vel = np.zeros((num_envs, n, 2))  # (E, N, 2)
        self.landmark_pos = np.zeros((num_envs, m, 2))  # (E, M, 2)
        self.collisions = np.zeros(num_envs, dtype=np.int64)  # (E,) colliding pairs summed over the episode
        logger.debug("po_spread: %d envs, N=%d, half side %.3f, radius %s", num_envs, n, self.scale, obs_radius)

    def reset(self, env_ids: Sequence[int]) -> EnvObs:
        """Spawn agents, then landmarks, uniformly in [−s, s]² at rest (mpe2's draw order)."""
        ids = np.asarray(env_ids, dtype=np.intp)
        for i in ids:
            rng = self.rngs.gens[i]
            self.agent_pos[i] = rng.uniform(-self.scale, self.scale, (self.n_agents, 2))
            self.landmark_pos[i] = rng.uniform(-self.scale, self.scale, (self.n_landmarks, 2))
        self.agent_vel[ids] = 0.0
        self.t[ids] = 0
        self.collisions[ids] = 0
        return self._observe(ids, self.agent_pos[ids], self.agent_vel[ids])[0]

    def step(self, env_ids: Sequence[int], actions: np.ndarray) -> StepResult:
        """One MPE world step (mpe2 1.1.1 ``World.step``), then the reward of the new positions."""
        ids = np.asarray(env_ids, dtype=np.intp)
        actions = np.asarray(actions)
        if actions.shape != (len(ids), self.n_agents):
            raise ConfigError(f"po_spread: actions must have shape {(len(ids), self.n_agents)}, got {actions.shape}")
        if actions.size and (actions.min() < 0 or actions.max() >= N_ACTIONS):
            raise ConfigError(f"po_spread: actions must lie in 0..{N_ACTIONS - 1}, got {actions.min()}..{actions.max()}")
        pos = self.agent_pos[ids]  # (k, N, 2)
        vel = self.agent_vel[ids]  # (k, N, 2)
        force = ACCEL * ACTION_DIRS[actions] + contact_forces(*agent_pairs(pos))  # (k, N, 2)
        # mpe2 1.1.1 World.integrate_state: position first, then damping, then the force.
        pos = pos + vel * DT
        vel = vel * (1 - DAMPING) + force / MASS * DT
        self.agent_pos[ids] = pos
        self.agent_vel[ids] = vel

        obs, (lm_dist, ag_dist) = self._observe(ids, pos, vel)
        nearest = lm_dist.min(axis=1)  # (k, M): each landmark's closest agent
        touching = (ag_dist < COLLISION_DIST).sum(axis=(1, 2))  # (k,) = Σ_i (other agents touching i)
        reward = -nearest.sum(axis=1) - self.collision_penalty * touching  # (k,)
        self.collisions[ids] += touching // 2

        row = {int(i): j for j, i in enumerate(ids)}  # env -> its row in this step's arrays

        def final_info(i: int) -> dict[str, Any]:
            j = row[i]
            return {
                "landmark_dist": float(nearest[j].sum()),
                "occupied_landmarks": int((nearest[j] < OCCUPY_DIST).sum()),
                "collisions": int(self.collisions[i]),
            }

        return self._time_limit_result(ids, obs, reward, final_info)

    def _observe(self, ids: np.ndarray, pos: np.ndarray, vel: np.ndarray) -> tuple[EnvObs, tuple[np.ndarray, np.ndarray]]:
        """Observations (hidden entities zeroed, visibility flags appended), state and extras of ``ids``.

        Also returns the agent-landmark ``(k, N, M)`` and agent-agent ``(k, N, N)`` distances for the reward.
        """
        k, n = len(ids), self.n_agents
        lms = self.landmark_pos[ids]  # (k, M, 2)
        lm_rel = lms[:, None] - pos[:, :, None]  # (k, N, M, 2): landmark − agent
        lm_dist = np.sqrt(np.square(lm_rel).sum(axis=-1))  # (k, N, M)
        ag_rel_all, ag_dist = agent_pairs(pos)  # (k, N, N, 2), (k, N, N)
        ag_rel = ag_rel_all[:, self._rows, self._others]  # (k, N, N−1, 2): other − agent, MPE's order
        lm_vis = lm_dist <= self.obs_radius  # (k, N, M)
        ag_vis = ag_dist[:, self._rows, self._others] <= self.obs_radius  # (k, N, N−1)
        obs = np.concatenate(
            [
                vel,
                pos,
                (lm_rel * lm_vis[..., None]).reshape(k, n, -1),
                (ag_rel * ag_vis[..., None]).reshape(k, n, -1),
                lm_vis,
                ag_vis,
            ],
            axis=-1,
            dtype=np.float32,
        )  # (k, N, obs_dim)
        state = np.concatenate([pos.reshape(k, -1), vel.reshape(k, -1), lms.reshape(k, -1)], axis=-1, dtype=np.float32)
        env_obs = EnvObs(
            obs=obs,
            state=state,  # (k, state_dim)
            avail_actions=np.ones((k, n, N_ACTIONS), dtype=bool),
            extras={"positions": pos.astype(np.float32)},  # (k, N, 2)
        )
        return env_obs, (lm_dist, ag_dist)
