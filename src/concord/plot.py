"""Learning curves over seeds from sacred run directories, drawn as the papers draw them.

``median_iqr``: median with the 1st/3rd quartiles (LAN, DADC); ``mean_ci95``: mean with a 95% confidence
interval of the mean (Student t; VAST). Runs are selected with ``--filter KEY=VALUE`` on their config
(``name=qmix``, ``env_args.map_name=3m``, ``label=...``), grouped by algorithm, env and map (or env key) and
label (the seeds of one configuration), and drawn one figure per experiment (env and map), one curve per group.
A run resumed from a checkpoint (``info.json`` ``resumed_from``) is joined to the run it continues: one curve.
Each run is interpolated onto a common grid of env steps before aggregating, up to the shortest run of its
group (the legend says so when runs differ in length).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
from collections import defaultdict
from typing import Any

import numpy as np


Series = tuple[np.ndarray, np.ndarray]


def _read_json(path: str) -> dict[str, Any]:
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def config_value(cfg: dict[str, Any], dotted: str) -> Any:
    from concord.config import dotted_get

    return dotted_get(cfg, dotted)


def matches(cfg: dict[str, Any], filters: list[str]) -> bool:
    """Every ``KEY=VALUE`` filter holds (values compared as text; dotted keys reach into env_args)."""
    for f in filters:
        key, _, want = f.partition("=")
        if str(config_value(cfg, key.strip())) != want.strip():
            return False
    return True


def _runs(roots: list[str], metric: str) -> dict[str, tuple[dict[str, Any], Series, dict[str, Any]]]:
    """Sacred run dir -> (config, series of ``metric``, info) for every run that logged it."""
    out = {}
    for root in roots:
        for cfg_path in sorted(glob.glob(os.path.join(root, "**", "config.json"), recursive=True)):
            run_dir = os.path.abspath(os.path.dirname(cfg_path))
            metrics = _read_json(os.path.join(run_dir, "metrics.json"))
            if metric not in metrics or not metrics[metric]["steps"]:
                continue
            series = (np.asarray(metrics[metric]["steps"], dtype=float),
                      np.asarray(metrics[metric]["values"], dtype=float))
            out[run_dir] = (_read_json(cfg_path), series, _read_json(os.path.join(run_dir, "info.json")))
    return out


def join_resumed(runs: dict[str, tuple[dict[str, Any], Series, dict[str, Any]]]) -> dict[str, tuple[dict[str, Any], Series]]:
    """One entry per run from its start: a resumed run's points after its checkpoint replace the points of the
    run it continues from there on (chains of resumes included)."""
    parent = {d: os.path.abspath(info["resumed_from"]["sacred_dir"]) for d, (_, _, info) in runs.items()
              if info.get("resumed_from", {}).get("sacred_dir") and
              os.path.abspath(info["resumed_from"]["sacred_dir"]) in runs}
    children: dict[str, list[str]] = defaultdict(list)
    for child, par in parent.items():
        children[par].append(child)
    out = {}
    for d in runs:
        if d in parent:
            continue
        cfg, (steps, values), _ = runs[d]
        node = d
        while children.get(node):
            node = max(children[node], key=lambda c: runs[c][2]["resumed_from"]["t_env"])  # the latest resume
            t0 = runs[node][2]["resumed_from"]["t_env"]
            s2, v2 = runs[node][1]
            keep, keep2 = steps <= t0, s2 > t0
            steps, values = np.concatenate([steps[keep], s2[keep2]]), np.concatenate([values[keep], v2[keep2]])
        out[d] = (cfg, (steps, values))
    return out


def load_runs(roots: list[str], metric: str, filters: list[str] = ()) -> dict[str, list[Series]]:
    """group label -> list of (steps, values) for every sacred run under ``roots`` that logged ``metric`` and
    passes ``filters`` (resumed runs joined to the run they continue)."""
    groups: dict[str, list[Series]] = defaultdict(list)
    for cfg, series in join_resumed(_runs(roots, metric)).values():
        if matches(cfg, list(filters)):
            groups[group_label(cfg)].append(series)
    return groups


def experiment_label(group: str) -> str:
    """``"qmix / smax / 3m / label"`` -> ``"smax / 3m"``: the figure a group is drawn in."""
    parts = group.split(" / ")
    return " / ".join(parts[1:3]) if len(parts) > 2 and parts[2] else parts[1] if len(parts) > 1 else group


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


def plot(roots: list[str], metric: str, style: str, out: str, filters: list[str] = ()) -> list[str]:
    """One PNG per experiment: ``out`` itself for one, else ``<out stem>_<env>_<map>.png``; their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = load_runs(roots, metric, filters)
    if not groups:
        raise SystemExit(f"no runs under {', '.join(roots)} logged '{metric}'"
                         + (f" and match {' '.join(filters)}" if filters else ""))
    figures: dict[str, list[str]] = defaultdict(list)
    for label in sorted(groups):
        figures[experiment_label(label)].append(label)
    paths = []
    stem, ext = os.path.splitext(out)
    for experiment, labels in sorted(figures.items()):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for label in labels:
            runs = groups[label]
            grid, centre, low, high = aggregate(runs, style)
            ends = [steps[-1] for steps, _ in runs]
            note = f", to {min(ends):.3g} steps: runs end between {min(ends):.3g} and {max(ends):.3g}" \
                if max(ends) > min(ends) else ""
            ax.plot(grid, centre, label=f"{label} (n={len(runs)}{note})")
            ax.fill_between(grid, low, high, alpha=0.25)
        ax.set_xlabel("env steps")
        ax.set_ylabel(metric)
        ax.set_title(f"{experiment}: " + {"median_iqr": "median and interquartile range",
                                           "mean_ci95": "mean and 95% CI"}[style])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out if len(figures) == 1 else f"{stem}_{experiment.replace(' / ', '_').replace('/', '_')}{ext or '.png'}"
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> str:
    """Command line of ``plot.py``; returns the PNGs' paths, one a line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("roots", nargs="*", default=["results/sacred"], help="directories holding sacred runs")
    p.add_argument("--metric", default="test_return_mean")
    p.add_argument("--style", choices=["median_iqr", "mean_ci95"], default="median_iqr")
    p.add_argument("--out", default="results/curves.png",
                   help="the PNG; with several experiments, <stem>_<env>_<map>.png each")
    p.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help="only runs whose config has KEY=VALUE (repeatable; e.g. name=qmix env_args.map_name=3m)")
    a = p.parse_args(argv)
    return "\n".join(plot(a.roots, a.metric, a.style, a.out, a.filter))
