"""Helpers shared by the numpy grid-world domains (Warehouse, Battle, Checkers).

- the common action encoding (no-op and four moves, as in the VAST authors' code);
- ASCII layout parsing;
- gathering square view windows for a batch of agents in one fancy-indexing call;
- one random generator per env of a batch, so that env ``i`` of a batch draws exactly what a
  single env (``num_envs=1``) seeded ``seed + i`` draws: batched and single stepping agree.

Coordinates are ``(row, col)``; north is row - 1 (up on the printed map), east is col + 1.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

NOOP, NORTH, SOUTH, WEST, EAST = 0, 1, 2, 3, 4
MOVE_DELTAS = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], dtype=np.int64)  # (5, 2) (drow, dcol)


def parse_layout(text: str) -> np.ndarray:
    """An ASCII map (one line per row, optional blanks between cells) -> ``(H, W)`` array of characters."""
    rows = [line.replace(" ", "") for line in text.strip().splitlines() if line.strip()]
    if len({len(r) for r in rows}) != 1:
        raise ValueError("layout rows have different lengths")
    return np.array([list(r) for r in rows])


def gather_windows(grid: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """View windows of ``size x size`` centred on each agent.

    ``grid`` is ``(k, Hp, Wp)`` or ``(k, Hp, Wp, C)``, already padded by ``size // 2`` on every side;
    ``rows``/``cols`` are ``(k, n)`` unpadded positions (= the windows' top-left corners in the
    padded grid). Returns ``(k, n, size, size)`` or ``(k, n, C, size, size)``.
    """
    windows = np.lib.stride_tricks.sliding_window_view(grid, (size, size), axis=(1, 2))  # (k, H, W, [C,] s, s)
    return windows[np.arange(grid.shape[0])[:, None], rows, cols]


def resolve_seed(seed: int | None) -> int:
    """The base seed of a batch; ``None`` draws one from OS entropy."""
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    return int(seed)


class EnvRngs:
    """One ``np.random.Generator`` per env of a batch (env ``i`` seeded ``seed + i``).

    Every draw goes through :meth:`uniform`, which asks each env's own generator for exactly the
    numbers that env needs. What an env draws therefore never depends on which other envs are in
    the batch or are stepped with it.
    """

    def __init__(self, num_envs: int, seed: int | None) -> None:
        base = resolve_seed(seed)
        self.gens = [np.random.default_rng(base + i) for i in range(num_envs)]

    def uniform(self, env_ids: Sequence[int], sizes: int | Sequence[int]) -> np.ndarray:
        """``(k, max(sizes))`` U[0,1) draws; env ``env_ids[j]`` draws ``sizes[j]`` numbers (rest 0)."""
        if isinstance(sizes, (int, np.integer)):
            return np.stack([self.gens[e].random(int(sizes)) for e in env_ids])  # (k, size)
        width = int(max(sizes)) if len(sizes) else 0
        out = np.zeros((len(env_ids), width))  # (k, width)
        for j, (e, n) in enumerate(zip(env_ids, sizes)):
            if n:
                out[j, : int(n)] = self.gens[e].random(int(n))
        return out

    def get_state(self) -> list[dict[str, Any]]:
        return [g.bit_generator.state for g in self.gens]

    def set_state(self, state: Sequence[dict[str, Any]]) -> None:
        if len(state) != len(self.gens):
            raise ValueError(f"rng state holds {len(state)} envs, this batch has {len(self.gens)}")
        for g, s in zip(self.gens, state):
            g.bit_generator.state = s


def pick_one_per_group(group: np.ndarray, valid: np.ndarray, keys: np.ndarray, n_groups: int) -> np.ndarray:
    """Choose one member uniformly at random in each (env, group) among the valid members.

    ``group`` ``(k, n)`` int in ``[0, n_groups)``, ``valid`` ``(k, n)`` bool, ``keys`` ``(k, n)``
    i.i.d. U[0,1). The member with the smallest key wins, which is a uniform choice. Returns the
    ``(k, n)`` bool mask of chosen members.
    """
    k = group.shape[0]
    flat = group + n_groups * np.arange(k)[:, None]  # (k, n) global group id
    best = np.full(k * n_groups, np.inf)
    np.minimum.at(best, flat[valid], keys[valid])
    return valid & (keys == best[flat])
