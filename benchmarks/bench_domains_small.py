"""Env steps per second of the small paper domains (GaussianSqueeze, coordination game, Aloha, MABC,
demand response), single env (E = 1) and batched (E = 32).

Run by hand from the repo root:
``PYTHONPATH=src .venv/bin/python benchmarks/bench_domains_small.py [--envs 1 32] [--seconds 2]``.
An env step is one step of one env, so a batch of E envs stepped once counts E. Random actions are
drawn in advance; finished episodes are reset as the parallel runner would (the reset is timed too).
"""
from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from concord.envs.aloha import AlohaEnv
from concord.envs.base import VecEnv
from concord.envs.coordination_game import CoordinationGameEnv
from concord.envs.demand_response import DemandResponseEnv
from concord.envs.gaussian_squeeze import GaussianSqueezeEnv
from concord.envs.mabc import MABCEnv

DOMAINS: list[tuple[str, type[VecEnv], dict[str, Any]]] = [
    ("GaussianSqueeze[800]", GaussianSqueezeEnv, {"n_agents": 800}),
    ("GaussianSqueeze[200]", GaussianSqueezeEnv, {"n_agents": 200}),
    ("CoordinationGame[5]", CoordinationGameEnv, {"n_agents": 5}),
    ("Aloha[10]", AlohaEnv, {}),
    ("MABC", MABCEnv, {}),
    ("DemandResponse[100]", DemandResponseEnv, {}),
]


def bench(cls: type[VecEnv], kwargs: dict[str, Any], num_envs: int, seconds: float) -> float:
    """Env steps per second over about ``seconds`` of wall time."""
    env = cls(num_envs=num_envs, seed=0, **kwargs)
    info = env.get_env_info()
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
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    for name, cls, kwargs in DOMAINS:
        figures = ", ".join(f"E={e}: {bench(cls, kwargs, e, args.seconds):,.0f} steps/s" for e in args.envs)
        print(f"{name:22s} {figures}")


if __name__ == "__main__":
    main()
