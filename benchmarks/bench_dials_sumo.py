"""DIALS traffic GS: cost per agent-step of the SUMO model (``traffic_model=sumo``) beside the cellular-automaton
surrogate, as N grows.

One env in this process (``--num-envs`` > 1: a batch, each SUMO env in its own worker process), all N agents
stepped with random actions (uniform keep / switch) at the default
``inflow_prob`` 0.1, episodes of 300 steps run back to back (each SUMO episode starts with ``libsumo.load``, which
is included); cost per agent-step = wall time / (steps * N * num_envs), the median of ``--repeats`` timings. Network
generation (``netgenerate``, once per env) is not included. Needs ``pip install 'concord-marl[sumo]'``.

    nice -n 10 .venv/bin/python benchmarks/bench_dials_sumo.py --steps 600 --ns 4 25 --repeats 5
    nice -n 10 .venv/bin/python benchmarks/bench_dials_sumo.py --steps 600 --ns 4 25 --repeats 3 --num-envs 2
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from concord.envs.dials_traffic import DialsTrafficEnv


def gs_cost(model: str, n: int, steps: int, repeats: int, num_envs: int = 1) -> float:
    """Median seconds per agent-step of ``repeats`` runs of ``steps`` random-action steps of ``num_envs`` envs."""
    env = DialsTrafficEnv(num_envs=num_envs, seed=0, n_agents=n, traffic_model=model)
    rng = np.random.default_rng(0)
    ids = list(range(num_envs))
    times = []
    try:
        for _ in range(repeats):
            acts = rng.integers(0, 2, (steps, num_envs, n))
            t0 = time.perf_counter()
            env.reset(ids)
            for t in range(steps):
                if env.step(ids, acts[t]).truncated[0]:
                    env.reset(ids)
            times.append((time.perf_counter() - t0) / (steps * n * num_envs))
    finally:
        env.close()
    return float(np.median(times))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--ns", type=int, nargs="+", default=[4, 25])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--num-envs", type=int, default=1, help="envs per batch (> 1: one SUMO worker process each)")
    a = p.parse_args()
    for n in a.ns:
        ca = 1e6 * gs_cost("surrogate", n, a.steps, a.repeats, a.num_envs)
        sumo = 1e6 * gs_cost("sumo", n, a.steps, a.repeats, a.num_envs)
        print(json.dumps({"N": n, "num_envs": a.num_envs, "surrogate_us_per_agent_step": round(ca, 2),
                          "sumo_us_per_agent_step": round(sumo, 2), "sumo_over_surrogate": round(sumo / ca, 1)}))


if __name__ == "__main__":
    main()
