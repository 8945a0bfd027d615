"""Rollout cost of BN-DAG sampling against the basic controller (bn_dag_policies.md §6: agents act in topological
order, so a step takes up to N sequential agent passes instead of one).

For N agents on the coordination game (natively batched, ``batch_size_run`` envs per step), times training-mode
rounds of ``Runner.run`` with the same actor (bn_dag.yaml: MLP 2 x 64 ReLU) under ``mac=basic_mac`` and under
``mac=bn_dag`` with each DAG option, and prints the wall-clock ms per rollout step (one step = all envs acting;
the median over ``--rounds`` rounds).
bn_dag's training steps include its logging pass (KL to the empty-DAG policy, one extra batched agent pass).

    .venv/bin/python benchmarks/bench_bn_dag.py --n 5 10 27 --envs 32 --rounds 10
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))

from concord.components.episode_buffer import build_scheme
from concord.config import load_config, to_namespace
from concord.registry import MACS, RUNNERS

VARIANTS = {"basic_mac": ["mac=basic_mac"], "bn_dag uncorrelated": ["bn_dag=uncorrelated"],
            "bn_dag line": ["bn_dag=line"], "bn_dag fully": ["bn_dag=fully"], "bn_dag learned": ["bn_dag=learned"]}


def ms_per_step(n: int, envs: int, rounds: int, updates: list[str]) -> float:
    args = to_namespace(load_config("bn_dag", "coordination_game", [
        f"env_args.n_agents={n}", "runner=parallel", f"batch_size_run={envs}", "seed=0", *updates]))
    runner = RUNNERS.get(args.runner)(args, args.seed)
    mac = MACS.get(args.mac)(runner.env_info, args, torch.device("cpu"))
    scheme = build_scheme(runner.env_info, False, mac.batch_fields())
    runner.run(mac, scheme, 0)  # warm-up
    per_step = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        batch, _ = runner.run(mac, scheme, 0)
        per_step.append((time.perf_counter() - t0) / int(batch.episode_lengths().max()) * 1e3)
    runner.close()
    return float(np.median(per_step))  # the median round: robust to other processes on a shared machine


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[5, 10, 27])
    p.add_argument("--envs", type=int, default=32)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--json", default="", help="also write the table to this file")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    np.random.seed(0)
    table: dict[str, dict[str, float]] = {}
    print(f"ms per rollout step ({a.envs} envs per step, coordination game)")
    print(f"{'controller':22s}" + "".join(f"N={n:<8d}" for n in a.n))
    for name, updates in VARIANTS.items():
        table[name] = {str(n): ms_per_step(n, a.envs, a.rounds, updates) for n in a.n}
        print(f"{name:22s}" + "".join(f"{table[name][str(n)]:<10.2f}" for n in a.n), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"envs": a.envs, "rounds": a.rounds, "ms_per_step": table}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
