"""DADC (dadc.md §6, Fig. 2): learning curves of every back end against the value-iteration optimum.

Run from the repo root (runs go through main.py in subprocesses, ``--workers`` at a time):
``PYTHONPATH=src .venv/bin/python benchmarks/bench_dadc.py --seeds 3 --out docs/results/dadc``
then ``--plot-only`` re-draws the figures from ``<out>/runs.json``. Each run logs
``test_discounted_return_mean`` (Monte-Carlo evaluation with the sampled coordination policy); a figure shows the
median and quartiles over seeds per back end, with the optimum from ``concord.tools.dadc_optimum``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# name -> (alg, env, extra updates, figure)
CASES: dict[str, tuple[str, str, list[str], str]] = {
    "mabc3 actor-critic": ("dadc", "mabc", ["dadc_backend=ac"], "mabc"),
    "mabc3 PPO": ("dadc", "mabc", ["dadc_backend=ppo"], "mabc"),
    "mabc4 actor-critic": ("dadc", "mabc", ["dadc_backend=ac", "dadc_prescriptions=mabc4"], "mabc"),
    "demand response PPO": ("dadc_dr", "demand_response", [], "demand_response"),
}
OPTIMUM_ARGS = {"mabc3": ["--env", "mabc", "--prescriptions", "mabc3"],
                "mabc4": ["--env", "mabc", "--prescriptions", "mabc4", "--decimals", "7"],
                "demand_response": ["--env", "demand_response", "--grid", "20"]}


def run_one(case: str, seed: int, budget: dict[str, list[str]]) -> dict[str, Any]:
    alg, env, extra, fig = CASES[case]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, os.path.join(ROOT, "main.py"), f"--config={alg}", f"--env-config={env}", "with",
               f"local_results_path={tmp}", "progress_bar=False", "use_tensorboard=False", "save_model=False",
               f"seed={seed}", *extra, *budget[fig]]
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        if out.returncode != 0:
            raise RuntimeError(f"{case} seed {seed} failed:\n{out.stderr[-2000:]}")
        result = json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1])
        with open(os.path.join(result["results_dir"], "metrics.json")) as f:
            m = json.load(f)["test_discounted_return_mean"]
    return {"case": case, "seed": seed, "steps": m["steps"], "values": m["values"]}


def optimum(name: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "concord.tools.dadc_optimum", *OPTIMUM_ARGS[name]],
                         capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout)


def plot(data: dict[str, Any], out: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for fig_name, refs in (("mabc", ["mabc3", "mabc4"]), ("demand_response", ["demand_response"])):
        cases = [c for c in CASES if CASES[c][3] == fig_name and any(r["case"] == c for r in data["runs"])]
        if not cases:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for i, case in enumerate(cases):
            runs = [r for r in data["runs"] if r["case"] == case]
            steps = runs[0]["steps"]
            vals = np.array([r["values"][: len(steps)] for r in runs])  # (seeds, points)
            q1, med, q3 = np.percentile(vals, [25, 50, 75], axis=0)
            ax.plot(steps, med, color=f"C{i}", label=f"{case} (median of {len(runs)})")
            ax.fill_between(steps, q1, q3, color=f"C{i}", alpha=0.2)
        for j, ref in enumerate(refs):
            v = data["optimum"][ref]["value"]
            ax.axhline(v, color="k", ls=["--", ":"][j], lw=1, label=f"VI optimum {ref}: {v:.3f}")
        ax.set_xlabel("env steps")
        ax.set_ylabel("discounted return (test, Monte Carlo)")
        ax.set_title(f"DADC on {fig_name}: median and quartiles over seeds")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = os.path.join(out, f"dadc_{fig_name}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--cases", nargs="*", default=list(CASES))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--mabc-steps", type=int, default=15000)
    p.add_argument("--dr-steps", type=int, default=20000)
    p.add_argument("--mabc-test-episodes", type=int, default=30)
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "results", "dadc"))
    p.add_argument("--plot-only", action="store_true")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "runs.json")
    if not a.plot_only:
        budget = {"mabc": [f"t_max={a.mabc_steps}", "test_interval=3000", "log_interval=3000",
                           f"test_nepisode={a.mabc_test_episodes}"],
                  "demand_response": [f"t_max={a.dr_steps}", "test_interval=4000", "log_interval=4000"]}
        jobs = [(c, s) for c in a.cases for s in range(a.seeds)]
        with ThreadPoolExecutor(a.workers) as pool:
            runs = list(pool.map(lambda job: run_one(job[0], job[1], budget), jobs))
            refs = list(pool.map(optimum, list(OPTIMUM_ARGS)))
        data = {"runs": runs, "optimum": dict(zip(OPTIMUM_ARGS, refs)), "budget": budget}
        with open(path, "w") as f:
            json.dump(data, f, indent=1)
    with open(path) as f:
        data = json.load(f)
    for fig in plot(data, a.out):
        sys.stdout.write(fig + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
