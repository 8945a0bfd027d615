"""DIALS (a): single-core cost per agent-step of the GS vs one IALS (local simulator + AIP), as N grows.

GS: one env, all N agents stepped with random actions; cost per agent-step = wall time / (steps * N).
IALS: one agent's local simulator with an untrained AIP of the domain's Table 4 architecture (the AIP's cost does
not depend on its weights); cost per agent-step = wall time / steps. Policies are not included in either.

    .venv/bin/python benchmarks/bench_dials.py --steps 300 --ns 4 25 49 100
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from concord.dials.aip import AIP, AIPPredictor
from concord.dials.ials import IALSVecEnv
from concord.envs.dials_traffic import DialsTrafficEnv
from concord.envs.dials_warehouse import DialsWarehouseEnv

DOMAINS = {"traffic": (DialsTrafficEnv, "fnn", [128, 128]), "warehouse": (DialsWarehouseEnv, "gru", [64, 64])}


def gs_cost(cls: type, n: int, steps: int) -> float:
    env = cls(num_envs=1, seed=0, n_agents=n)
    rng = np.random.default_rng(0)
    env.reset([0])
    acts = rng.integers(0, env.n_actions, (steps, 1, n))
    t0 = time.perf_counter()
    for t in range(steps):
        if env.step([0], acts[t]).truncated[0]:
            env.reset([0])
    return (time.perf_counter() - t0) / (steps * n)


def ials_cost(cls: type, arch: str, hidden: list[int], steps: int) -> float:
    local = cls.local_model()
    aip = AIP(local.dset_shape, local.n_sources, local.n_classes, arch, hidden)
    env = IALSVecEnv(local, AIPPredictor(aip, 1), 1, seed=0, agent=0)
    rng = np.random.default_rng(0)
    env.reset([0])
    acts = rng.integers(0, local.n_actions, (steps, 1, 1))
    t0 = time.perf_counter()
    for t in range(steps):
        if env.step([0], acts[t]).truncated[0]:
            env.reset([0])
    return (time.perf_counter() - t0) / steps


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--ns", type=int, nargs="+", default=[4, 25, 49, 100])
    a = p.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name, (cls, arch, hidden) in DOMAINS.items():
        local_us = 1e6 * ials_cost(cls, arch, hidden, a.steps)
        for n in a.ns:
            gs_us = 1e6 * gs_cost(cls, n, a.steps)
            rows.append({"domain": name, "N": n, "gs_us_per_agent_step": round(gs_us, 2),
                         "ials_us_per_agent_step": round(local_us, 2), "gs_over_ials": round(gs_us / local_us, 3)})
            print(json.dumps(rows[-1]))


if __name__ == "__main__":
    main()
