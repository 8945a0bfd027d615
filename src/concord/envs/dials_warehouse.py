"""DIALS warehouse (Suau et al. 2022, App. D, F; spec sheet §2): robots collect items from shelves of overlapping
5×5 regions; a numpy port of the authors' pure-Python simulator (spec §2: "a numpy port can be exact").

Layout (§2.1): R = √N + 2 robots per side, robot (a, b) = a·R + b (row a grows downward) owns rows 4a..4a+4 and
cols 4b..4b+4 of a (4R+1)² grid, so adjacent regions share a row or column of shelf cells. Only the inner √N×√N
robots learn (the agents, row-major); the outer ring follows the paper-era heuristic (§2.5, §3 #7): the first step
of a BFS shortest path (actions tried UP, DOWN, LEFT, RIGHT) through the region graph to the region's oldest item
(ties: the first in shelf order, §4.6), a uniformly random action when the region holds none; standing on the
item, it takes a refused move and stays.

Region (region-relative (row, col), cell index 5·row + col): shelf cells, in the observation's order (§2.6), are
(0,1..3), (4,1..3), (1,0), (1,4), (2,0), (2,4), (3,0), (3,4). Actions (§2.3) 0 UP, 1 DOWN, 2 LEFT, 3 RIGHT; a
vertical move from the left/right boundary column, a horizontal move from the top/bottom row, or a move off the
region or onto a corner is refused. Step (§2.8 / §2.10): items age by 1; the robot moves; reward (§2.7) = the
waiting time of the item under it / the largest waiting time in its region (0 if none); the item under it is
removed; items on shared cells where a neighbour stands are removed (u_i); every empty shelf cell spawns an item
with p = ``item_prob``. Observation (37): one-hot position (25) and the 12 shelf bits. Horizon 100 (§2.12); reset:
robots at their region centres, shelves cleared then spawned once.

Influence sources (§2.9): 4 categorical variables [right, below, left, above neighbour], class k in {0, 1, 2} =
the neighbour stands on the k-th cell of the shared edge after moving, 3 = elsewhere (or no neighbour). The d-set
is the robot's observation history (a GRU AIP, App. I). Shared shelf cells hold one item in the GS; a region's
spawn draws are the GS's draws for its cells, so both regions sharing a cell see the same item (the GS stores the
items once, on the grid, and scatters every region's result back).
"""
from __future__ import annotations

from collections import deque
from typing import Any, Sequence

import numpy as np

from concord.envs.base import EnvObs, StepResult
from concord.envs.local_form import LocalFormEnv, LocalModel, LocalState
from concord.envs.seeding import Seed
from concord.errors import ConfigError
from concord.registry import register_env

SIDE = 5
SHELF = [(0, 1), (0, 2), (0, 3), (4, 1), (4, 2), (4, 3), (1, 0), (1, 4), (2, 0), (2, 4), (3, 0), (3, 4)]
CENTRE = 2 * SIDE + 2  # cell (2, 2)
DELTAS = [(-1, 0), (1, 0), (0, -1), (0, 1)]  # UP, DOWN, LEFT, RIGHT
CORNERS = {(0, 0), (0, 4), (4, 0), (4, 4)}
# shared edge cells per source [right, below, left, above], in class order, as indices into SHELF
SOURCE_CELLS = np.array([[7, 9, 11], [3, 4, 5], [6, 8, 10], [0, 1, 2]])
NOT_ON_EDGE = 3


def _move_table() -> np.ndarray:
    """``(25, 4)``: the cell a robot reaches from each cell with each action (§2.3 blocking rules)."""
    table = np.zeros((SIDE * SIDE, 4), np.int64)
    for r in range(SIDE):
        for c in range(SIDE):
            for a, (dr, dc) in enumerate(DELTAS):
                refused = (dr and c in (0, SIDE - 1)) or (dc and r in (0, SIDE - 1))
                nr, nc = r + dr, c + dc
                off = not (0 <= nr < SIDE and 0 <= nc < SIDE) or (nr, nc) in CORNERS
                table[r * SIDE + c, a] = r * SIDE + c if refused or off else nr * SIDE + nc
    return table


MOVE = _move_table()
SHELF_OF = np.full(SIDE * SIDE, -1, np.int64)  # (25,) cell -> shelf index, -1 elsewhere
for _i, (_r, _c) in enumerate(SHELF):
    SHELF_OF[_r * SIDE + _c] = _i


def _first_steps() -> np.ndarray:
    """``(25, 12)``: the first action of a shortest path from each cell to each shelf cell (BFS, §2.5, §4.6)."""
    out = np.zeros((SIDE * SIDE, len(SHELF)), np.int64)
    for s, (r, c) in enumerate(SHELF):
        dist = np.full(SIDE * SIDE, 10**6)
        dist[r * SIDE + c] = 0
        queue = deque([r * SIDE + c])
        while queue:  # the region graph is undirected: BFS from the target over reverse moves
            cell = queue.popleft()
            for src in range(SIDE * SIDE):
                if dist[src] > dist[cell] + 1 and cell in MOVE[src] and src != cell:
                    dist[src] = dist[cell] + 1
                    queue.append(src)
        for cell in range(SIDE * SIDE):
            if dist[cell] == 0:  # on the item: a refused move keeps the robot there
                stays = [a for a in range(4) if MOVE[cell, a] == cell]
                out[cell, s] = stays[0] if stays else 0
            else:
                out[cell, s] = next((a for a in range(4) if dist[MOVE[cell, a]] == dist[cell] - 1), 0)
    return out


FIRST_STEP = _first_steps()


def _neighbour_class() -> np.ndarray:
    """``(4, 25)``: for source s of region i, the class of the neighbour's cell (in the neighbour's frame)."""
    out = np.full((4, SIDE * SIDE), NOT_ON_EDGE, np.int64)
    for k in range(3):
        out[0, (k + 1) * SIDE + 0] = k  # right neighbour on its left column
        out[1, 0 * SIDE + k + 1] = k  # neighbour below on its top row
        out[2, (k + 1) * SIDE + SIDE - 1] = k  # left neighbour on its right column
        out[3, (SIDE - 1) * SIDE + k + 1] = k  # neighbour above on its bottom row
    return out


NEIGHBOUR_CLASS = _neighbour_class()


class WarehouseRegion(LocalModel):
    """One robot's 5×5 region (the module docstring's step)."""

    obs_shape = SIDE * SIDE + len(SHELF)
    n_actions = 4
    n_sources = 4
    n_classes = 4
    dset_shape = SIDE * SIDE + len(SHELF)
    noise_size = len(SHELF)
    reset_noise_size = len(SHELF)
    recurrent_dset = True

    def __init__(self, episode_limit: int = 100, item_prob: float = 0.02) -> None:
        self.episode_limit = int(episode_limit)
        self.item_prob = float(item_prob)

    def reset(self, noise: np.ndarray) -> LocalState:
        n = len(noise)
        return {"pos": np.full(n, CENTRE, np.int64), "item": noise < self.item_prob,
                "wait": np.zeros((n, len(SHELF)), np.int64)}

    def step(self, x: LocalState, a: np.ndarray, u: np.ndarray, noise: np.ndarray
             ) -> tuple[LocalState, np.ndarray, np.ndarray]:
        rows = np.arange(len(a))
        item = x["item"].copy()  # (n, 12)
        wait = x["wait"] + item  # (n, 12) items age by 1
        pos = MOVE[x["pos"], a]  # (n,)
        cell = SHELF_OF[pos]  # (n,) -1 off the shelves
        on_item = (cell >= 0) & item[rows, np.maximum(cell, 0)]
        oldest = np.where(item, wait, 0).max(1)  # (n,)
        reward = np.where(on_item, wait[rows, np.maximum(cell, 0)] / np.maximum(oldest, 1), 0.0)
        item[rows[on_item], cell[on_item]] = False
        for s in range(self.n_sources):
            hit = u[:, s] < NOT_ON_EDGE  # (n,) the neighbour stands on a shared cell
            item[rows[hit], SOURCE_CELLS[s, u[hit, s]]] = False
        spawn = ~item & (noise < self.item_prob)  # (n, 12)
        item |= spawn
        y = {"pos": pos, "item": item, "wait": np.where(item & ~spawn, wait, 0)}
        return y, reward.astype(np.float32), self.observe(y)

    def observe(self, x: LocalState) -> np.ndarray:
        n = len(x["pos"])
        onehot = np.zeros((n, SIDE * SIDE), np.float32)
        onehot[np.arange(n), x["pos"]] = 1.0
        return np.concatenate([onehot, x["item"].astype(np.float32)], 1)


def heuristic_actions(x: LocalState, uniforms: np.ndarray) -> np.ndarray:
    """The ring robots' rule (§2.5) for ``(n,)`` regions: towards the oldest item, else uniformly random."""
    has = x["item"].any(1)  # (n,)
    oldest = np.where(x["item"], x["wait"], -1).argmax(1)  # (n,) first in shelf order among ties
    towards = FIRST_STEP[x["pos"], oldest]
    return np.where(has, towards, np.minimum((uniforms * 4).astype(np.int64), 3))


@register_env("dials_warehouse")
class DialsWarehouseEnv(LocalFormEnv):
    """A batch of ``num_envs`` warehouses with N learning robots and the heuristic ring; team reward = their mean."""

    def __init__(self, num_envs: int = 1, seed: Seed = None, n_agents: int = 4, item_prob: float = 0.02,
                 episode_limit: int = 100) -> None:
        side = int(round(np.sqrt(n_agents)))
        if side * side != n_agents or side < 1:
            raise ConfigError(f"dials_warehouse: n_agents must be a perfect square (4, 25, 49, 100), got {n_agents}")
        if not 0.0 <= item_prob <= 1.0 or episode_limit < 1:
            raise ConfigError("dials_warehouse: item_prob must be in [0, 1] and episode_limit >= 1")
        super().__init__(num_envs, seed)
        self.local = self.local_model(n_agents=n_agents, item_prob=item_prob, episode_limit=episode_limit)
        self.n_agents, self.n_actions, self.episode_limit = int(n_agents), 4, int(episode_limit)
        self.obs_shape, self.state_shape = self.local.obs_shape, self.n_agents * self.local.obs_shape
        self.extras_shapes = {"influence": (self.n_agents, 4), "agent_reward": (self.n_agents,)}
        R = self.robots_per_side = side + 2
        a, b = np.divmod(np.arange(R * R), R)  # (R²,) region row and column
        self.learning = np.array([i for i in range(R * R) if 1 <= a[i] <= R - 2 and 1 <= b[i] <= R - 2])  # (N,)
        self.neighbours = np.stack([np.where(b < R - 1, np.arange(R * R) + 1, -1),
                                    np.where(a < R - 1, np.arange(R * R) + R, -1),
                                    np.where(b > 0, np.arange(R * R) - 1, -1),
                                    np.where(a > 0, np.arange(R * R) - R, -1)], 1)  # (R², 4)
        cells: dict[tuple[int, int], int] = {}
        idx = np.zeros((R * R, len(SHELF)), np.int64)
        for r in range(R * R):
            for s, (dr, dc) in enumerate(SHELF):
                idx[r, s] = cells.setdefault((4 * a[r] + dr, 4 * b[r] + dc), len(cells))
        self.shelf_index = idx  # (R², 12) region shelf cell -> global shelf cell
        self.n_shelves = len(cells)  # 6R(R+1)
        E = self.num_envs
        self.pos = np.full((E, R * R), CENTRE, np.int64)  # (E, R²) every robot's region cell
        self.item = np.zeros((E, self.n_shelves), bool)  # (E, S) one entry per global shelf cell
        self.wait = np.zeros((E, self.n_shelves), np.int64)  # (E, S)
        self.last_noise = np.zeros((E, R * R, len(SHELF)))  # the regions' spawn draws of the last step

    @classmethod
    def local_model(cls, n_agents: int = 4, item_prob: float = 0.02, episode_limit: int = 100) -> WarehouseRegion:
        return WarehouseRegion(episode_limit, item_prob)

    def get_env_info(self) -> dict[str, Any]:
        return {**super().get_env_info(), "state_is_obs_concat": True}

    def region_states(self, env_ids: Any) -> LocalState:
        """Every region's local state (ring included), ``(k, R², ...)``."""
        return {"pos": self.pos[env_ids].copy(), "item": self.item[env_ids][:, self.shelf_index],
                "wait": self.wait[env_ids][:, self.shelf_index]}

    def local_states(self, env_ids: Any) -> LocalState:
        return {k: v[:, self.learning] for k, v in self.region_states(env_ids).items()}

    # ----------------------------------------------------------------- interface
    def reset(self, env_ids: Sequence[int]) -> EnvObs:
        ids = np.asarray(env_ids, dtype=np.int64)
        self.pos[ids] = CENTRE
        self.item[ids] = self.rngs.uniform(ids, self.n_shelves) < self.local.item_prob
        self.wait[ids] = 0
        self.t[ids] = 0
        k, N = len(ids), self.n_agents
        obs = self.local.observe({k_: v.reshape(k * N, *v.shape[2:]) for k_, v in self.local_states(ids).items()})
        return self._env_obs(obs.reshape(k, N, self.obs_shape), np.zeros((k, N, 4), np.float32), np.zeros((k, N), np.float32))

    def influence(self, moved: np.ndarray) -> np.ndarray:
        """Every region's u_i ``(k, R², 4)`` from all robots' cells after moving ``(k, R²)``."""
        nb = np.maximum(self.neighbours, 0)  # (R², 4)
        cls = NEIGHBOUR_CLASS[np.arange(4), moved[:, nb]]  # (k, R², 4)
        return np.where(self.neighbours >= 0, cls, NOT_ON_EDGE)

    def step(self, env_ids: Sequence[int], actions: np.ndarray) -> StepResult:
        ids = np.asarray(env_ids, dtype=np.int64)
        k, N, RR = len(ids), self.n_agents, self.robots_per_side**2
        x = self.region_states(ids)  # (k, R², ...)
        draws = self.rngs.uniform(ids, RR + self.n_shelves)  # (k, R² + S): heuristic moves, item spawns
        flat = {key: v.reshape(k * RR, *v.shape[2:]) for key, v in x.items()}
        act = heuristic_actions(flat, draws[:, :RR].reshape(-1)).reshape(k, RR)
        act[:, self.learning] = np.asarray(actions, dtype=np.int64).reshape(k, N)
        u = self.influence(MOVE[x["pos"], act])  # (k, R², 4)
        noise = draws[:, RR:][:, self.shelf_index]  # (k, R², 12): a shared cell's draw reaches both regions
        y, reward, obs = self.local.step(flat, act.reshape(-1), u.reshape(k * RR, 4), noise.reshape(k * RR, len(SHELF)))
        self.last_noise[ids] = noise
        self.pos[ids] = y["pos"].reshape(k, RR)
        item, wait = np.zeros((k, self.n_shelves), bool), np.zeros((k, self.n_shelves), np.int64)
        item[:, self.shelf_index] = y["item"].reshape(k, RR, len(SHELF))
        wait[:, self.shelf_index] = y["wait"].reshape(k, RR, len(SHELF))
        self.item[ids], self.wait[ids] = item, wait
        reward = reward.reshape(k, RR)[:, self.learning]  # (k, N)
        obs = obs.reshape(k, RR, self.obs_shape)[:, self.learning]
        return self._time_limit_result(ids, self._env_obs(obs, u[:, self.learning].astype(np.float32), reward),
                                       reward.mean(1) if k else reward.sum(1), lambda e: {"episode_limit": True})

    def _env_obs(self, obs: np.ndarray, u: np.ndarray, reward: np.ndarray) -> EnvObs:
        k, N = obs.shape[:2]
        return EnvObs(obs=obs, state=obs.reshape(k, self.state_shape), avail_actions=np.ones((k, N, 4), bool),
                      extras={"influence": u, "agent_reward": reward.astype(np.float32)})
