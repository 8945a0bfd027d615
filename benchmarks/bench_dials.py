"""DIALS benchmarks (docs/results/dials.md).

(a) Single-core cost per agent-step of the GS vs one IALS (local simulator + AIP), as N grows.
GS: one env, all N agents stepped with random actions; cost per agent-step = wall time / (steps * N).
IALS: one agent's local simulator with an untrained AIP of the domain's Table 4 architecture (the AIP's cost does
not depend on its weights); cost per agent-step = wall time / steps. Policies are not included in either.

    .venv/bin/python benchmarks/bench_dials.py --steps 300 --ns 4 25 49 100

(b) ``--scaling``: parallel scaling of the worker backends. For each domain, N, backend and worker count, the
``dials`` workers of ``--config=dials`` (Table 5 policies, Table 4 AIPs, PPO updates included) run ``--rounds``
timed rounds of IALS training (``AgentGroup.train``: every agent one ``--episode-limit``-step episode and one PPO
update), after one untimed warm-up round; throughput = agent-steps (N x steps) per wall-second of the timed
rounds; speed-up = throughput / that of 1 worker on the same backend. Worker start-up is not timed.

    nice -n 10 .venv/bin/python benchmarks/bench_dials.py --scaling            # < 5 min on 2 idle cores

(c) ``--phases DIR``: where the wall-clock of the runs of a sweep went (the ``dials_seconds_*`` totals each run
logs last: GS data collection, AIP training, agent training, GS evaluation) and the AIPs' cross-entropy at the
last retraining, median over the seeds of each group.

    .venv/bin/python benchmarks/bench_dials.py --phases results/sweeps/dials_traffic_curves
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import time
from collections import defaultdict

import numpy as np
import torch

from concord.config import load_config
from concord.dials.aip import AIP, AIPPredictor
from concord.dials.backends import make_backend
from concord.dials.ials import IALSVecEnv
from concord.envs.dials_traffic import DialsTrafficEnv
from concord.envs.dials_warehouse import DialsWarehouseEnv
from concord.runners.dials import agent_groups

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


def training_throughput(domain: str, n: int, backend: str, workers: int, episode_limit: int, rounds: int,
                        ray_address: str = "") -> float:
    """(b) Agent-steps of IALS training per wall-second: ``rounds`` timed ``AgentGroup.train`` rounds on every
    worker at once (after one warm-up round), N agents split into ``workers`` groups on ``backend``."""
    config = load_config("dials", f"dials_{domain}", [f"env_args.n_agents={n}", "seed=1", "use_tensorboard=False",
                                                     f"env_args.episode_limit={episode_limit}"])
    groups = agent_groups(n, workers)
    be = make_backend(backend, config, groups, ray_address)
    try:
        be.call("train", [(1, 0)] * len(groups))  # warm-up: first forward/backward passes, allocator
        steps = 0
        t0 = time.perf_counter()
        for r in range(rounds):
            res = be.call("train", [(1, (r + 1) * episode_limit)] * len(groups))
            steps += sum(out["steps"] for group in res for out in group.values())
        return steps / (time.perf_counter() - t0)
    finally:
        be.close()


def scaling(a: argparse.Namespace) -> None:
    """(b) The table of ``training_throughput`` over domains x N x backends x {1, 2} workers."""
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} cores; "
          f"episode_limit={a.episode_limit}, {a.rounds} timed rounds", flush=True)
    print("| domain | N | backend | workers | agent-steps / s | speed-up vs 1 worker |\n|---|---|---|---|---|---|",
          flush=True)
    try:
        for domain in a.domains:
            for n in a.scaling_ns:
                for backend in a.backends:
                    base = None
                    for w in a.workers:
                        sps = training_throughput(domain, n, backend, w, a.episode_limit, a.rounds, a.ray_address)
                        base = base or sps
                        print(f"| {domain} | {n} | {backend} | {w} | {sps:.0f} | {sps / base:.2f} |", flush=True)
    finally:
        if "ray" in a.backends:
            import ray

            ray.shutdown()
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)


PHASES = ["dials_seconds_collect", "dials_seconds_aip", "dials_seconds_agents", "dials_seconds_eval"]


def phases(root: str) -> None:
    """(c) The table of per-phase seconds and final AIP cross-entropies of the sacred runs under ``root``."""
    groups: dict[str, list[dict[str, float]]] = defaultdict(list)
    for path in sorted(glob.glob(os.path.join(root, "**", "metrics.json"), recursive=True)):
        with open(path) as f:
            m = json.load(f)
        with open(os.path.join(os.path.dirname(path), "config.json")) as f:
            label = json.load(f)["label"]
        if all(k in m for k in PHASES):
            groups[label].append({k: m[k]["values"][-1] for k in [*PHASES, "aip_ce_fresh", "aip_ce_test"] if k in m})
    cols = ["collect", "aip", "agents", "eval"]
    print("| group | runs | " + " | ".join(f"{c} s" for c in cols) + " | aip_ce_fresh | aip_ce_test |")
    print("|---|---|" + "---|" * (len(cols) + 2))
    for label, runs in sorted(groups.items()):
        med = {k: float(np.median([r[k] for r in runs])) if all(k in r for r in runs) else float("nan")
               for k in [*PHASES, "aip_ce_fresh", "aip_ce_test"]}
        print(f"| {label} | {len(runs)} | " + " | ".join(f"{med[k]:.1f}" for k in PHASES)
              + f" | {med['aip_ce_fresh']:.2f} | {med['aip_ce_test']:.2f} |")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=300, help="(a) steps per measurement")
    p.add_argument("--ns", type=int, nargs="+", default=[4, 25, 49, 100], help="(a) numbers of agents")
    p.add_argument("--scaling", action="store_true", help="(b) the backends' parallel scaling instead of (a)")
    p.add_argument("--domains", nargs="+", choices=list(DOMAINS), default=list(DOMAINS), help="(b)")
    p.add_argument("--scaling-ns", type=int, nargs="+", default=[4, 25], help="(b) numbers of agents")
    p.add_argument("--backends", nargs="+", choices=["processes", "ray"], default=["processes", "ray"], help="(b)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="(b) worker counts (the first is the base)")
    p.add_argument("--episode-limit", type=int, default=25, help="(b) IALS episode length (steps per round)")
    p.add_argument("--rounds", type=int, default=2, help="(b) timed rounds per measurement")
    p.add_argument("--ray-address", default="", help="(b) a Ray cluster to join (default: a local instance)")
    p.add_argument("--phases", metavar="DIR", help="(c) per-phase seconds of the sacred runs under DIR instead")
    a = p.parse_args()
    torch.set_num_threads(1)
    if a.phases:
        phases(a.phases)
        return
    if a.scaling:
        scaling(a)
        return
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
