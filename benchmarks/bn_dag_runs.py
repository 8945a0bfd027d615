"""Plots of BN-DAG training runs (bn_dag_policies.md Fig. 4): test return over training per run label, with the
decentralised (empty-DAG) test return and the logged DAG density.

Reads every sacred run under ``RESULTS/sacred`` (``main.py ... with label=... local_results_path=RESULTS``). On the
coordination game the return is also shown as a price of anarchy, the test return over the optimal expected
``episode_limit``-step return J*_H (finite-horizon dynamic programming on ``tabular_model()``, uniform μ).

    .venv/bin/python benchmarks/bn_dag_runs.py /tmp/bn_runs/results --out docs/results/bn_dag_cg.png
    .venv/bin/python benchmarks/bn_dag_runs.py /tmp/bn_runs/aloha_results --out docs/results/bn_dag_aloha.png \
        --keys return_mean test_return_mean
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from collections import defaultdict

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))

from concord.envs.coordination_game import CoordinationGameEnv


def finite_horizon_optimum(n_agents: int, horizon: int, comparator: str = "<=") -> float:
    """J*_H = max over policies of E[Σ_{t<H} r(s_t)] with s_0 ~ μ (the optimal test return of an episode)."""
    m = CoordinationGameEnv(1, 0, n_agents=n_agents, comparator=comparator).tabular_model()
    v = np.zeros(m.n_states)
    for _ in range(horizon):
        v = (m.R + m.T @ v).max(axis=1)
    return float(m.mu @ v)


def load_runs(results: str) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = defaultdict(list)
    for d in sorted(glob.glob(os.path.join(results, "sacred", "*"))):
        if not os.path.isfile(os.path.join(d, "metrics.json")):
            continue
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        with open(os.path.join(d, "metrics.json")) as f:
            metrics = json.load(f)
        runs[f"{cfg['env']}:{cfg.get('label') or cfg['name']}"].append({"config": cfg, "metrics": metrics})
    return runs


def series(metrics: dict, key: str) -> tuple[np.ndarray, np.ndarray]:
    if key not in metrics:
        return np.array([]), np.array([])
    return np.array(metrics[key]["steps"]), np.array(metrics[key]["values"], dtype=float)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results")
    p.add_argument("--out", required=True)
    p.add_argument("--keys", nargs="+", default=["test_return_mean", "test_decentralised_return_mean"],
                   help="logged return series of the top row (solid, dotted, dashed)")
    a = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = load_runs(a.results)
    groups: dict[str, list[str]] = defaultdict(list)  # env/N -> labels
    for label, rs in runs.items():
        cfg = rs[0]["config"]
        n = cfg["env_args"].get("n_agents") or int(np.prod(cfg["env_args"].get("grid_shape", [0]))) or ""
        groups[f"{cfg['env']} N={n}" if n else cfg["env"]].append(label)
    fig, axes = plt.subplots(2, len(groups), figsize=(5 * len(groups), 7), squeeze=False)
    table = []
    for col, (group, labels) in enumerate(sorted(groups.items())):
        for label in sorted(labels):
            rs = runs[label]
            cfg = rs[0]["config"]
            scale, ylabel = 1.0, "return"
            if cfg["env"] == "coordination_game":
                scale = finite_horizon_optimum(cfg["env_args"]["n_agents"], cfg["env_args"]["episode_limit"],
                                               cfg["env_args"].get("comparator", "<="))
                ylabel = "PoA = test return / J*_H"
            colour = None
            for key, style in zip(a.keys, ("-", ":", "--")):
                xs, ys = zip(*(series(r["metrics"], key) for r in rs))
                k = min(len(v) for v in ys)  # seeds' common length
                y = np.mean([v[:k] / scale for v in ys], axis=0)
                line = axes[0, col].plot(xs[0][:k], y, style, color=colour, label=f"{cfg['bn_dag']} {key}")
                colour = line[0].get_color()
            x, dens = series(rs[0]["metrics"], "dag_density")
            axes[1, col].plot(x, dens, label=cfg["bn_dag"])
            final = {k: float(np.mean([series(r["metrics"], k)[1][-1] for r in rs])) / scale
                     for k in ("test_return_mean", "test_decentralised_return_mean")}
            table.append((group, label, len(rs), final["test_return_mean"], final["test_decentralised_return_mean"],
                          float(dens[-1]) if len(dens) else float("nan")))
            axes[0, col].set_ylabel(ylabel)
        axes[0, col].set_title(group)
        axes[0, col].legend(fontsize=7)
        axes[1, col].legend(fontsize=7)
        axes[1, col].set_ylabel("DAG density (training rollouts)")
        axes[1, col].set_xlabel("env steps")
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print("| env | run | seeds | final test (PoA on CG) | final empty-DAG test | final DAG density |")
    print("|---|---|---|---|---|---|")
    for row in table:
        print(f"| {row[0]} | {row[1]} | {row[2]} | {row[3]:.4f} | {row[4]:.4f} | {row[5]:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
