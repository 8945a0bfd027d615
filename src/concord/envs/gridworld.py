"""Helpers shared by the numpy grid-world domains (Warehouse, Battle, Checkers).

- the common action encoding (no-op and four moves, as in the VAST authors' code);
- ASCII layout parsing;
- gathering square view windows for a batch of agents in one fancy-indexing call;
- a uniform choice of one member per group (Battle's hits on a shared cell).

Warehouse and Battle draw their random numbers through ``numpy_vec.EnvRngs`` (one stream per env).

Coordinates are ``(row, col)``; north is row - 1 (up on the printed map), east is col + 1.
"""
from __future__ import annotations

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
