"""LAN (lan.md): size of its value network vs QMIX/QPLEX mixers, and short learning comparisons.

Run by hand from the repo root (prints figures; runs go through main.py, two at a time by default):
``PYTHONPATH=src .venv/bin/python benchmarks/bench_lan.py [--parts params checkers spread smax] [--workers 2]``.

- params: parameters of LAN's V, the QMIX mixer and (if ``config/algs/qplex_sc2.yaml`` exists) QPLEX's at SMAC's
  5m_vs_6m and 27m_vs_30m sizes (lan.md Table 1: LAN 56k/111k, QMIX 32k/283k, QPLEX 43k/709k) and on SMAX maps.
- checkers: LAN vs IQL, final greedy return and who ate what (agent 2 should eat the lemons blocking agent 1).
- spread: PO-spread N = 3 and 6, LAN vs QMIX vs IQL median final greedy return (App. G).
- smax: SMAX 3m LAN vs QMIX test win rate after the same budget, and wall-clock per 100k env steps.
Budgets are far below the papers' 2M steps so that everything fits in about 30 minutes on 2 shared cores;
ε is annealed over the first half of each budget for every algorithm. Curves: ``--out``/sacred (plot.py).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# SMAC (StarCraft II) sizes, from SMAC's feature layout for marine maps: obs 4 + 5·enemies + 5·allies + 1,
# actions 6 + enemies, state 4·agents + 3·enemies, plus agents·actions when the state carries last actions.
SMAC = {"5m_vs_6m": (5, 6), "27m_vs_30m": (27, 30)}
SMAX_MAPS = ["3m", "5m_vs_6m", "10m_vs_11m", "27m_vs_30m", "2s3z", "3s5z_vs_3s6z"]


def smac_info(n: int, m: int, last_action: bool) -> dict[str, Any]:
    a = 6 + m
    return {"n_agents": n, "n_actions": a, "obs_shape": 4 + 5 * m + 5 * (n - 1) + 1, "unit_dim": 4,
            "state_shape": 4 * n + 3 * m + (n * a if last_action else 0), "episode_limit": 70}


def n_params(alg: str, env_info: dict[str, Any]) -> int | None:
    """Parameters of ``alg``'s mixer (its yaml's settings) for these sizes; None if the yaml is missing."""
    from concord.config import load_config, to_namespace
    from concord.registry import MIXERS

    if not os.path.isfile(os.path.join(ROOT, "config", "algs", f"{alg}.yaml")):
        return None
    args = to_namespace(load_config(alg, "matrix_game"))
    mixer = MIXERS.get(args.mixer)(env_info, args)
    return sum(p.numel() for p in mixer.parameters())


def part_params() -> None:
    algs = ["lan", "qmix", "qplex_sc2"]
    print("\n== parameters of the centralised part (LAN's V, QMIX/QPLEX mixers) ==")
    print(f"{'sizes':<22}{'LAN':>10}{'QMIX':>10}{'QPLEX':>10}")
    rows = {}
    for name, (n, m) in SMAC.items():
        # LAN's V reads the state without last actions; QMIX and QPLEX use pymarl's sc2 state (with them)
        counts = [n_params("lan", smac_info(n, m, False))] + [n_params(a, smac_info(n, m, True)) for a in algs[1:]]
        rows[name] = counts
        print(f"{'SMAC ' + name:<22}" + "".join(f"{c:>10,}" if c else f"{'-':>10}" for c in counts))
    a, b = rows["5m_vs_6m"], rows["27m_vs_30m"]
    print(f"{'growth 5m -> 27m':<22}" + "".join(f"{y / x:>9.1f}x" if x else f"{'-':>10}" for x, y in zip(a, b)))
    from concord.registry import ENVS

    for map_name in SMAX_MAPS:
        env = ENVS.get("smax")(num_envs=1, seed=0, map_name=map_name)
        info = dict(env.get_env_info())
        info.setdefault("unit_dim", 10)
        env.close()
        counts = [n_params(alg, info) for alg in algs]  # SMAX: every method sees the env state (smax.yaml)
        print(f"{'SMAX ' + map_name:<22}" + "".join(f"{c:>10,}" if c else f"{'-':>10}" for c in counts)
              + f"   (n={info['n_agents']} obs={info['obs_shape']} actions={info['n_actions']} "
                f"state={info['state_shape']})")


def run(alg: str, env: str, out: str, seed: int, *updates: str) -> dict[str, Any]:
    """One main.py run; its final JSON, wall time and logged training speed."""
    cmd = [sys.executable, "main.py", f"--config={alg}", f"--env-config={env}", "with", f"seed={seed}",
           f"local_results_path={out}", "progress_bar=False", "save_model=False", "use_tensorboard=False", *updates]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{p.stderr[-2000:]}")
    res = json.loads(lines[-1])
    with open(os.path.join(res["results_dir"], "metrics.json")) as f:
        metrics = json.load(f)
    res["steps_per_second"] = metrics["steps_per_second"]["values"][-1]
    res["wall"] = wall
    return res


def run_all(jobs: list[tuple], workers: int) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda j: run(*j), jobs))


def budget(t_max: int) -> list[str]:
    return [f"t_max={t_max}", f"epsilon_anneal_time={t_max // 2}", f"log_interval={t_max}"]


def part_checkers(a: SimpleNamespace) -> None:
    algs, seeds = ["lan", "iql"], [1, 2, 3]
    jobs = [(alg, "checkers", a.out, s, *budget(a.checkers_steps), "test_nepisode=1",
             f"test_interval={a.checkers_steps // 5}") for alg in algs for s in seeds]
    res = run_all(jobs, a.workers)
    print(f"\n== Checkers, {a.checkers_steps} steps, greedy return per seed (random policy ≈ -2.4, "
          f"optimum: 9 apples by agent 1, the 6 lower lemons by agent 2, 84 minus step costs) ==")
    for i, alg in enumerate(algs):
        rs = res[3 * i:3 * i + 3]
        print(f"{alg:<5} returns {[round(r['test_return_mean'], 2) for r in rs]}  "
              f"agent1 apples/lemons {[(r['test_agent1_apples_mean'], r['test_agent1_lemons_mean']) for r in rs]}  "
              f"agent2 apples/lemons {[(r['test_agent2_apples_mean'], r['test_agent2_lemons_mean']) for r in rs]}")


def part_spread(a: SimpleNamespace) -> None:
    algs, seeds, sizes = ["lan", "qmix", "iql"], [1, 2, 3], [3, 6]
    jobs = [(alg, "po_spread", a.out, s, f"env_args.n_agents={n}", *budget(a.spread_steps), "test_nepisode=32",
             f"test_interval={a.spread_steps // 5}") for n in sizes for alg in algs for s in seeds]
    res = iter(run_all(jobs, a.workers))
    print(f"\n== PO-spread, {a.spread_steps} steps, one env: median (min, max) over 3 seeds of the final greedy return ==")
    for n in sizes:
        for alg in algs:
            rs = [next(res)["test_return_mean"] for _ in seeds]
            print(f"N={n} {alg:<5} {statistics.median(rs):9.2f}  ({min(rs):.2f}, {max(rs):.2f})")


def part_smax(a: SimpleNamespace) -> None:
    algs, seeds = ["lan", "qmix"], [1, 2]
    for map_name in a.smax_maps:
        jobs = [(alg, "smax", a.out, s, f"env_args.map_name={map_name}", "runner=parallel", "batch_size_run=8",
                 *budget(a.smax_steps), "test_nepisode=32", f"test_interval={a.smax_steps // 5}")
                for alg in algs for s in seeds]
        res = run_all(jobs, a.workers)
        print(f"\n== SMAX {map_name}, {a.smax_steps} steps, parallel runner with 8 envs, 2 seeds ==")
        for i, alg in enumerate(algs):
            rs = res[len(seeds) * i:len(seeds) * (i + 1)]
            per_100k = [1e5 / r["steps_per_second"] for r in rs]
            print(f"{alg:<5} test win rate {[round(r['test_battle_won_mean'], 3) for r in rs]}  "
                  f"return {[round(r['test_return_mean'], 3) for r in rs]}  "
                  f"wall per 100k env steps {[round(x) for x in per_100k]} s (training loop, incl. tests)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", nargs="+", default=["params", "checkers", "spread", "smax"])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default=os.path.join(ROOT, "results", "bench_lan"))
    p.add_argument("--checkers-steps", type=int, default=20000)
    p.add_argument("--spread-steps", type=int, default=10000)
    p.add_argument("--smax-steps", type=int, default=60000)
    p.add_argument("--smax-maps", nargs="+", default=["3m"])
    a = p.parse_args()
    t0 = time.perf_counter()
    for part in a.parts:
        t = time.perf_counter()
        part_params() if part == "params" else globals()[f"part_{part}"](a)
        print(f"({part}: {time.perf_counter() - t:.0f} s)", flush=True)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s; curves: python plot.py {a.out}/sacred --metric test_return_mean")


if __name__ == "__main__":
    main()
