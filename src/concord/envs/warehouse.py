"""Warehouse[N] (VAST, Phan et al. 2021, §5.1, Fig. 2a-b): N robots deliver 5-item orders.

Rules [P] (vast.md §5.1): an order holds 5 items b_w in {1, 2, 3, 4}; item b_w goes to a drop-off
location numbered b_w. Robots start at random work stations; after delivering all items of an
order a robot returns to any work station for a new order. Actions: no-op, move N/S/W/E, drop off.
No two robots share a cell and obstacles cannot be entered. Team reward: +1 per delivered item,
+1 per completed order, -0.5 per collision with another robot, -0.01 time penalty. 5x5 field of
view; 50 steps. Metric: completed orders per episode.

Defaults from the authors' code [C] or chosen [X] (env_spec_sheet.md §2):
- layouts [C]: the authors' maps (below; the paper draws only N = 16, which matches the code's);
  ``n_agents`` selects one. ``#`` obstacle, ``W`` work station, ``.`` floor, ``1``-``4`` drop-offs;
- items are drawn uniformly with replacement [C] (5 items from 4 kinds cannot be distinct);
- one DROPOFF action [C]: at a drop-off whose number the order still needs it delivers one such
  item (+1, in any order); with all 5 delivered, a DROPOFF at any work station completes the
  order (+1) and the robot gets a new order on the spot [C]; a DROPOFF anywhere else does nothing;
- a collision [C] is a move blocked by another robot (-0.5, the robot stays); a move into an
  obstacle or off the map is a silent no-op (the code's move graph forbids exactly those moves);
- moves and drop-offs are resolved one robot at a time in a fresh random order each step [C],
  so a robot may enter a cell that a robot earlier in the order has just left;
- ``time_penalty_per_agent`` = true [C]: -0.01 per robot per step (false: once per step) [X];
- start [X]: the paper wants both random work stations and no shared cells, but the authors'
  maps have fewer work stations than robots (2 for N=4, 4 for N=8, 12 for N=16; the code stacks
  robots on them). Robots take distinct random work stations first; the surplus robots start on
  distinct random cells among the remaining walkable cells;
- observation [C]: 5 channels of 5x5 centred on the robot: self (centre), non-walkable (obstacle
  or off the map), other robots, the current targets (the drop-offs of the items still to
  deliver, each weighted by how many such items remain, or the work stations once all are
  delivered) and the next targets (the work stations while items remain);
- state [X]: per robot (row / (H-1), col / (W-1), remaining items of kinds 1-4 / 5, "return to a
  work station" flag), concatenated; the map is fixed so it is left out.
Every action is always available [C]. Per-step extras: ``positions`` ``(n_agents, 2)`` (row, col).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from concord.envs.base import EnvObs, StepResult
from concord.envs.gridworld import MOVE_DELTAS, gather_windows, parse_layout
from concord.envs.numpy_vec import NumpyVecEnv
from concord.envs.seeding import Seed
from concord.errors import ConfigError
from concord.registry import register_env

DROPOFF = 5
N_ACTIONS = 6  # no-op, N, S, W, E, drop off
VIEW = 5  # [P] 5x5 field of view
ORDER_SIZE = 5  # [P] items per order
N_KINDS = 4  # [P] drop-off numbers 1..4
ITEM_REWARD = 1.0  # [P]
ORDER_REWARD = 1.0  # [P]
COLLISION_PENALTY = 0.5  # [P]
TIME_PENALTY = 0.01  # [P]
N_OBS_CHANNELS = 5

# The authors' layouts [C] (vast code, WAREHOUSE_LAYOUTS), row 0 at the top.
LAYOUTS = {
    # 3 x 5, 2 work stations
    4: """
        # W #
        . 1 .
        3 # 4
        . 2 .
        # W #
    """,
    # 5 x 5, 4 work stations
    8: """
        . W . W .
        . 1 . 2 .
        3 # 4 # 3
        . 2 . 1 .
        . W . W .
    """,
    # 13 x 9, 12 work stations: Fig. 2a of the paper
    16: """
        # # # W # W # W # W # # #
        # . . . . . . . . . . . #
        # . . 1 . 2 . 1 . 2 . . #
        W . 3 # 4 # 3 # 4 # 3 . W
        # . . 2 . 1 . 2 . 1 . . #
        W . 3 # 4 # 3 # 4 # 3 . W
        # . . 2 . 1 . 2 . 1 . . #
        # . . . . . . . . . . . #
        # # # W # W # W # W # # #
    """,
}


@register_env("warehouse")
class WarehouseEnv(NumpyVecEnv):
    """A batch of ``num_envs`` Warehouse[``n_agents``] instances stepped together."""

    def __init__(
        self,
        num_envs: int = 1,
        seed: Seed = None,
        n_agents: int = 4,
        time_penalty_per_agent: bool = True,
        episode_limit: int = 50,
    ) -> None:
        if n_agents not in LAYOUTS:
            raise ConfigError(f"warehouse: n_agents must be one of {sorted(LAYOUTS)}, got {n_agents}")
        if num_envs < 1 or episode_limit < 1:
            raise ConfigError("warehouse: num_envs and episode_limit must be >= 1")
        super().__init__(num_envs, seed)
        self.n_agents = int(n_agents)
        self.n_actions = N_ACTIONS
        self.episode_limit = int(episode_limit)
        self.obs_shape = N_OBS_CHANNELS * VIEW * VIEW
        self.state_shape = self.n_agents * (3 + N_KINDS)
        self.extras_shapes = {"positions": (self.n_agents, 2)}
        self.time_penalty = TIME_PENALTY * (self.n_agents if time_penalty_per_agent else 1)

        grid = parse_layout(LAYOUTS[self.n_agents])
        self.height, self.width = grid.shape
        self.walkable = grid != "#"  # (H, W)
        self.station = grid == "W"  # (H, W)
        self.kind = np.zeros(grid.shape, dtype=np.int64)  # (H, W) drop-off number 1..4, 0 elsewhere
        for b in range(1, N_KINDS + 1):
            self.kind[grid == str(b)] = b
        self.station_cells = np.argwhere(self.station)  # (S, 2)
        self.other_cells = np.argwhere(self.walkable & ~self.station)  # (F, 2)
        if self.n_agents > len(self.station_cells) + len(self.other_cells):
            raise ConfigError("warehouse: more robots than walkable cells")
        # static view layers, padded by the view radius: non-walkable, station, drop-off 1..4
        r = VIEW // 2
        layers = np.stack([~self.walkable, self.station] + [self.kind == b for b in range(1, N_KINDS + 1)], -1)
        self.layers = np.pad(layers.astype(np.float32), [(r, r), (r, r), (0, 0)])  # (Hp, Wp, 6)
        self.layers[:r, :, 0] = self.layers[-r:, :, 0] = 1.0  # off the map is non-walkable
        self.layers[:, :r, 0] = self.layers[:, -r:, 0] = 1.0
        self.layer_windows = np.lib.stride_tricks.sliding_window_view(self.layers, (VIEW, VIEW), axis=(0, 1))
        # (H, W, 6, 5, 5): the static view from every cell

        E, N = self.num_envs, self.n_agents
        self.pos = np.zeros((E, N, 2), dtype=np.int64)  # (E, N, 2)
        self.need = np.zeros((E, N, N_KINDS), dtype=np.int64)  # items of each kind still to deliver
        self.returning = np.zeros((E, N), dtype=bool)  # all items delivered: go to a work station
        self.completed = np.zeros(E, dtype=np.int64)  # completed orders this episode
        self.delivered = np.zeros(E, dtype=np.int64)  # delivered items this episode

    # ----------------------------------------------------------------- interface
    def reset(self, env_ids: Sequence[int]) -> EnvObs:
        ids = np.asarray(env_ids, dtype=np.int64)
        N, S, F = self.n_agents, len(self.station_cells), len(self.other_cells)
        u = self.rngs.uniform(ids, S + F + N * ORDER_SIZE)  # (k, S + F + N*5)
        on_station = np.argsort(u[:, :S], 1)[:, : min(N, S)]  # (k, min(N, S)) distinct stations
        pos = self.station_cells[on_station]
        if N > S:
            elsewhere = np.argsort(u[:, S : S + F], 1)[:, : N - S]  # (k, N - S) distinct other cells
            pos = np.concatenate([pos, self.other_cells[elsewhere]], 1)
        self.pos[ids] = pos
        self.need[ids] = self._orders(u[:, S + F :].reshape(len(ids), N, ORDER_SIZE))
        self.returning[ids] = False
        self.t[ids] = 0
        self.completed[ids] = 0
        self.delivered[ids] = 0
        return self._observe(ids)

    def step(self, env_ids: Sequence[int], actions: np.ndarray) -> StepResult:
        ids = np.asarray(env_ids, dtype=np.int64)
        k, N = len(ids), self.n_agents
        act = np.asarray(actions, dtype=np.int64).reshape(k, N)  # (k, N)
        pos, need, returning = self.pos[ids], self.need[ids], self.returning[ids]
        u = self.rngs.uniform(ids, N + N * ORDER_SIZE)  # (k, N + N*5): robot order, new orders
        e = np.arange(k)

        # --- drop-offs: they touch only the robot's own order, so the random order is irrelevant
        drop = act == DROPOFF  # (k, N)
        kind = self.kind[pos[..., 0], pos[..., 1]]  # (k, N) 0 = not a drop-off
        wanted = np.take_along_axis(need, np.maximum(kind - 1, 0)[..., None], -1)[..., 0] > 0
        deliver = drop & ~returning & (kind > 0) & wanted  # (k, N)
        need = need - deliver[..., None] * (np.arange(1, N_KINDS + 1) == kind[..., None])
        complete = drop & returning & self.station[pos[..., 0], pos[..., 1]]  # (k, N)
        returning = (returning | (need.sum(-1) == 0)) & ~complete
        new_orders = self._orders(u[:, N:].reshape(k, N, ORDER_SIZE))  # (k, N, 4)
        need = np.where(complete[..., None], new_orders, need)

        # --- moves, one robot at a time in a random order [C]
        occupied = np.zeros((k, self.height, self.width), dtype=bool)
        occupied[e[:, None], pos[..., 0], pos[..., 1]] = True
        order = np.argsort(u[:, :N], 1)  # (k, N)
        collisions = np.zeros(k, dtype=np.int64)
        moving = (act >= 1) & (act <= 4)
        for j in range(N):
            i = order[:, j]  # (k,) the robot acting now in each env
            if not moving[e, i].any():
                continue
            here = pos[e, i]  # (k, 2)
            there = here + MOVE_DELTAS[np.where(moving[e, i], act[e, i], 0)]  # (k, 2)
            inside = (there >= 0).all(1) & (there[:, 0] < self.height) & (there[:, 1] < self.width)
            there = np.where(inside[:, None], there, here)
            free_cell = inside & self.walkable[there[:, 0], there[:, 1]] & moving[e, i]
            blocked = free_cell & occupied[e, there[:, 0], there[:, 1]]
            go = free_cell & ~blocked  # (k,)
            collisions += blocked
            occupied[e[go], here[go, 0], here[go, 1]] = False
            occupied[e[go], there[go, 0], there[go, 1]] = True
            pos[e[go], i[go]] = there[go]

        n_deliver, n_complete = deliver.sum(1), complete.sum(1)  # (k,)
        reward = (
            ITEM_REWARD * n_deliver + ORDER_REWARD * n_complete - COLLISION_PENALTY * collisions - self.time_penalty
        )  # (k,)
        self.pos[ids], self.need[ids], self.returning[ids] = pos, need, returning
        self.delivered[ids] += n_deliver
        self.completed[ids] += n_complete
        return self._time_limit_result(  # the time limit is the only way an episode ends
            ids, self._observe(ids), reward,
            lambda e: {"completed_orders": int(self.completed[e]), "delivered_items": int(self.delivered[e]),
                       "episode_limit": True},
        )

    # ----------------------------------------------------------------- helpers
    @staticmethod
    def _orders(u: np.ndarray) -> np.ndarray:
        """``(k, N, 5)`` uniforms -> ``(k, N, 4)`` item counts per drop-off number (with replacement)."""
        items = np.minimum((u * N_KINDS).astype(np.int64), N_KINDS - 1)  # (k, N, 5) in 0..3
        return (items[..., None] == np.arange(N_KINDS)).sum(-2)  # (k, N, 4)

    def _observe(self, ids: np.ndarray) -> EnvObs:
        k, N = len(ids), self.n_agents
        pos, need, returning = self.pos[ids], self.need[ids], self.returning[ids]
        r = VIEW // 2
        rows, cols = pos[..., 0], pos[..., 1]  # (k, N)
        static = self.layer_windows[rows, cols]  # (k, N, 6, 5, 5): non-walkable, station, drop-off 1..4
        robots = np.zeros((k, self.height + 2 * r, self.width + 2 * r), dtype=np.float32)
        robots[np.arange(k)[:, None], rows + r, cols + r] = 1.0
        others = gather_windows(robots, rows, cols, VIEW)  # (k, N, 5, 5)
        others[:, :, r, r] = 0.0
        ret = returning[..., None, None].astype(np.float32)  # (k, N, 1, 1)
        weights = need.astype(np.float32)[:, :, :, None, None]  # (k, N, 4, 1, 1)
        obs = np.zeros((k, N, N_OBS_CHANNELS, VIEW, VIEW), dtype=np.float32)
        obs[:, :, 0, r, r] = 1.0
        obs[:, :, 1] = static[:, :, 0]
        obs[:, :, 2] = others
        obs[:, :, 3] = ret * static[:, :, 1] + (1 - ret) * (static[:, :, 2:] * weights).sum(2)
        obs[:, :, 4] = (1 - ret) * static[:, :, 1]

        state = np.concatenate(
            [
                rows[..., None] / max(self.height - 1, 1),
                cols[..., None] / max(self.width - 1, 1),
                need / ORDER_SIZE,
                returning[..., None],
            ],
            -1,
        )  # (k, N, 7)
        return EnvObs(
            obs=obs.reshape(k, N, -1),
            state=state.reshape(k, -1).astype(np.float32),
            avail_actions=np.ones((k, N, N_ACTIONS), dtype=bool),
            extras={"positions": pos.astype(np.float32)},
        )
