"""Env steps per second of the grid domains (Battle[80], Warehouse[16], Checkers), single env
(E = 1) and batched (E = 8).

Run by hand from the repo root:
``PYTHONPATH=src .venv/bin/python benchmarks/bench_domains_grid.py [--envs 1 8] [--seconds 2]``.
An env step is one step of one env, so a batch of E envs stepped once counts E. Random actions are
drawn in advance (Battle ignores a dead learner's action); finished episodes are reset as the
parallel runner would (the reset is timed too). Checkers is a single env: its batch is a
``SerialVecEnv`` of E envs, as the runner builds it.
"""
from __future__ import annotations

import argparse
import time
from typing import Any, Callable

import numpy as np

from concord.envs.base import SerialVecEnv, VecEnv
from concord.envs.battle import BattleEnv
from concord.envs.checkers import CheckersEnv
from concord.envs.warehouse import WarehouseEnv

DOMAINS: list[tuple[str, Callable[[int], VecEnv]]] = [
    ("Battle[80]", lambda e: BattleEnv(num_envs=e, seed=0, n_agents=80)),
    ("Battle[20]", lambda e: BattleEnv(num_envs=e, seed=0, n_agents=20)),
    ("Warehouse[16]", lambda e: WarehouseEnv(num_envs=e, seed=0, n_agents=16)),
    ("Warehouse[4]", lambda e: WarehouseEnv(num_envs=e, seed=0, n_agents=4)),
    ("Checkers", lambda e: SerialVecEnv([CheckersEnv(seed=i) for i in range(e)])),
]


def bench(make: Callable[[int], VecEnv], num_envs: int, seconds: float) -> float:
    """Env steps per second over about ``seconds`` of wall time."""
    env = make(num_envs)
    info: dict[str, Any] = env.get_env_info()
    ids = np.arange(num_envs)
    actions = np.random.default_rng(0).integers(0, info["n_actions"], (50, num_envs, info["n_agents"]))  # (T, E, N)
    env.reset(ids)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for a in actions:
            res = env.step(ids, a)
            done = res.terminated | res.truncated
            if done.any():
                env.reset(ids[done])
        steps += len(actions) * num_envs
    return steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    for name, make in DOMAINS:
        figures = ", ".join(f"E={e}: {bench(make, e, args.seconds):,.0f} steps/s" for e in args.envs)
        print(f"{name:15s} {figures}")


if __name__ == "__main__":
    main()
