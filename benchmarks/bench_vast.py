"""GaussianSqueeze[N] final system performance as a fraction of the optimum (423.03 at x = 445) for QMIX, QTRAN,
VAST(QTRAN, MetaGrad, η = 1/4) and VAST(η = 1/2) (vast.md §6.2, Fig. 4c/f), trained by the Q-learner.

Run by hand from the repo root (each run is a ``main.py`` process; ``--jobs`` of them at a time):
``.venv/bin/python benchmarks/bench_vast.py [--sizes 200 800] [--seeds 1 2 3] [--episodes 200:2048 800:1024]``.
Every run collects 8 one-step episodes per round (``runner=parallel batch_size_run=8``), makes one update on a batch
of 8 replayed episodes (each holds N agent transitions), anneals ε from 1 to
0.05 over the first half of its episodes and ends with a greedy test; the figure is that test's GS(x) / 423.03
(mean ± std over seeds). The budgets are tiny next to the paper's (its Q_i are critics of actor-critic learners):
the point is the comparison at a fixed budget, not the paper's curves.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

OPTIMUM = 423.03  # GS(445) with mu = 400, sigma = 200 (vast.md §5.1)
COMMON = ["optimizer=adam", "lr=0.001", "standardise_rewards=True"]  # Adam 1e-3 as the paper (§5.2)
ALGS: dict[str, tuple[str, list[str]]] = {
    "QMIX": ("qmix", []),
    "QTRAN": ("qtran", []),
    "VAST(eta=1/4)": ("vast", ["vast_eta=0.25"]),
    "VAST(eta=1/2)": ("vast", ["vast_eta=0.5"]),
}


def run_one(alg: str, extra: list[str], n_agents: int, episodes: int, seed: int, batch_size: int,
            batch_size_run: int, common: list[str]) -> dict[str, Any]:
    """One training run; returns its final greedy test statistics and wall time."""
    cmd = [sys.executable, "main.py", f"--config={alg}", "--env-config=gaussian_squeeze", "with",
           f"env_args.n_agents={n_agents}", "runner=parallel", f"batch_size_run={batch_size_run}", f"t_max={episodes}",
           f"batch_size={batch_size}", f"epsilon_anneal_time={episodes // 2}", f"test_interval={10 * episodes}",
           f"log_interval={10 * episodes}", "test_nepisode=32", "save_model=False", "use_tensorboard=False",
           "local_results_path=/tmp/concord_bench_vast", "progress_bar=False", f"seed={seed}", *common, *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    result = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])
    return {"perf": result["test_system_performance_mean"] / OPTIMUM, "x": result["test_allocation_mean"],
            "seconds": time.perf_counter() - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 800])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--episodes", nargs="+", default=["200:2048", "800:1024"],
                        help="N:episodes budget per size")
    parser.add_argument("--batch-size", type=int, default=8, help="episodes per gradient update")
    parser.add_argument("--batch-size-run", type=int, default=8, help="episodes per round (one update each)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--with", dest="common", nargs="*", default=COMMON,
                        help="config overrides for every run (default: %(default)s)")
    args = parser.parse_args()
    budget = {int(k): int(v) for k, v in (e.split(":") for e in args.episodes)}
    jobs = [(name, n, seed) for n in args.sizes for name in ALGS for seed in args.seeds]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {job: pool.submit(run_one, *ALGS[job[0]], job[1], budget[job[1]], job[2], args.batch_size,
                                   args.batch_size_run, args.common)
                   for job in jobs}
        results = {job: f.result() for job, f in futures.items()}
    print(f"GaussianSqueeze final greedy GS(x)/{OPTIMUM} (mean ± std over seeds {args.seeds}), rounds of "
          f"{args.batch_size_run} episodes, batch {args.batch_size}, with {' '.join(args.common)}, "
          f"{time.perf_counter() - t0:.0f} s wall")
    for n in args.sizes:
        print(f"N={n} ({budget[n]} episodes):")
        for name in ALGS:
            rs = [results[(name, n, s)] for s in args.seeds]
            perf = [r["perf"] for r in rs]
            std = statistics.stdev(perf) if len(perf) > 1 else 0.0
            xs = ", ".join(f"{r['x']:.0f}" for r in rs)
            secs = statistics.mean(r["seconds"] for r in rs)
            print(f"  {name:14s} {statistics.mean(perf):.3f} ± {std:.3f}   (x = {xs}; {secs:.0f} s/run)")


if __name__ == "__main__":
    main()
