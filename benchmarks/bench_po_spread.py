"""Env steps per second of the po_spread VecEnv (LAN App. G), single env and batched.

Run by hand from the repo root:
``PYTHONPATH=src .venv/bin/python benchmarks/bench_po_spread.py [--n-agents 9] [--envs 1 32] [--seconds 3]``.
An env step is one step of one env, so a batch of E envs stepped once counts E. Random actions are
drawn in advance and episodes are reset on truncation, as the parallel runner would.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from concord.envs.po_spread import POSpreadVecEnv


def bench(n_agents: int, num_envs: int, seconds: float) -> float:
    """Env steps per second over about ``seconds`` of wall time."""
    env = POSpreadVecEnv(num_envs=num_envs, seed=0, n_agents=n_agents)
    ids = list(range(num_envs))
    actions = np.random.default_rng(0).integers(0, 5, (100, num_envs, n_agents))  # (T, E, N)
    env.reset(ids)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for a in actions:
            res = env.step(ids, a)
            if res.truncated.any():
                env.reset(list(np.flatnonzero(res.truncated)))
        steps += 100 * num_envs
    return steps / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-agents", type=int, default=9)
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    for e in args.envs:
        print(f"po_spread N={args.n_agents} E={e}: {bench(args.n_agents, e, args.seconds):,.0f} env steps/s")


if __name__ == "__main__":
    main()
