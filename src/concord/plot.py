"""Learning curves over seeds from sacred run directories, drawn as the papers draw them.

``median_iqr``: median with the 1st/3rd quartiles (LAN, DADC); ``mean_ci95``: mean with a 95% confidence
interval of the mean (Student t; VAST). Runs are grouped by algorithm, env and map (or env key) and label;
each run is interpolated onto a common grid of env steps before aggregating.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
from collections import defaultdict
from typing import Any

import numpy as np


def load_runs(roots: list[str], metric: str) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """group label -> list of (steps, values) for every sacred run under ``roots`` that logged ``metric``."""
    groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for root in roots:
        for cfg_path in sorted(glob.glob(os.path.join(root, "**", "config.json"), recursive=True)):
            run_dir = os.path.dirname(cfg_path)
            metrics_path = os.path.join(run_dir, "metrics.json")
            if not os.path.isfile(metrics_path):
                continue
            with open(cfg_path) as f:
                cfg = json.load(f)
            with open(metrics_path) as f:
                metrics = json.load(f)
            if metric not in metrics or not metrics[metric]["steps"]:
                continue
            groups[group_label(cfg)].append((np.asarray(metrics[metric]["steps"], dtype=float),
                                             np.asarray(metrics[metric]["values"], dtype=float)))
    return groups


def group_label(cfg: dict[str, Any]) -> str:
    env_args = cfg.get("env_args", {})
    task = env_args.get("map_name") or env_args.get("key") or ""
    parts = [cfg.get("name", "?"), cfg.get("env", "?")] + ([str(task)] if task else [])
    if cfg.get("label"):
        parts.append(cfg["label"])
    return " / ".join(parts)


def aggregate(runs: list[tuple[np.ndarray, np.ndarray]], style: str, n_points: int = 100
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(grid, centre, low, high) over the step range every run covers."""
    from scipy import stats

    end = min(steps[-1] for steps, _ in runs)
    start = max(steps[0] for steps, _ in runs)
    grid = np.linspace(start, end, n_points) if end > start else np.array([start])
    ys = np.stack([np.interp(grid, s, v) for s, v in runs])  # (n_runs, n_points)
    if style == "median_iqr":
        return grid, np.median(ys, 0), np.percentile(ys, 25, 0), np.percentile(ys, 75, 0)
    mean = ys.mean(0)
    if len(runs) < 2:
        return grid, mean, mean, mean
    half = stats.t.ppf(0.975, len(runs) - 1) * ys.std(0, ddof=1) / np.sqrt(len(runs))
    return grid, mean, mean - half, mean + half


def plot(roots: list[str], metric: str, style: str, out: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = load_runs(roots, metric)
    if not groups:
        raise SystemExit(f"no runs under {', '.join(roots)} logged '{metric}'")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, runs in sorted(groups.items()):
        grid, centre, low, high = aggregate(runs, style)
        ax.plot(grid, centre, label=f"{label} (n={len(runs)})")
        ax.fill_between(grid, low, high, alpha=0.25)
    ax.set_xlabel("env steps")
    ax.set_ylabel(metric)
    ax.set_title({"median_iqr": "median and interquartile range", "mean_ci95": "mean and 95% CI"}[style])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> str:
    """Command line of ``plot.py``; returns the PNG's path."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("roots", nargs="*", default=["results/sacred"], help="directories holding sacred runs")
    p.add_argument("--metric", default="test_return_mean")
    p.add_argument("--style", choices=["median_iqr", "mean_ci95"], default="median_iqr")
    p.add_argument("--out", default="results/curves.png")
    a = p.parse_args(argv)
    return plot(a.roots, a.metric, a.style, a.out)
