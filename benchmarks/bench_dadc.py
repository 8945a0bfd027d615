"""DADC (dadc.md §6, Fig. 2): learning curves of every back end against the value-iteration optimum.

Run from the repo root (runs go through main.py in subprocesses, ``--workers`` at a time):
``PYTHONPATH=src .venv/bin/python benchmarks/bench_dadc.py --seeds 5 --workers 1 --out docs/results/dadc``
then ``--plot-only`` re-draws the figures and the table from ``<out>/runs.json``. Each run logs
``test_discounted_return_mean`` (Monte-Carlo evaluation: the coordination policy sampled; NAF's coordinator
without exploration noise); a figure shows the median and quartiles over seeds per back end, with the optimum
from ``concord.tools.dadc_optimum``. The table (stdout) gives per case the median over seeds of the mean of the
last ``--tail`` evaluation points, its quartiles, the gap to the optimum, and the wall time per run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# name -> (alg, env, extra updates, figure)
CASES: dict[str, tuple[str, str, list[str], str]] = {
    "mabc3 actor-critic": ("dadc", "mabc", ["dadc_backend=ac"], "mabc"),
    "mabc3 PPO": ("dadc", "mabc", ["dadc_backend=ppo"], "mabc"),
    "mabc3 NAF": ("dadc", "mabc", ["dadc_backend=naf"], "mabc"),
    "mabc3 TRPO": ("dadc", "mabc", ["dadc_backend=trpo"], "mabc"),
    "mabc4 actor-critic": ("dadc", "mabc", ["dadc_backend=ac", "dadc_prescriptions=mabc4"], "mabc"),
    "mabc4 PPO": ("dadc", "mabc", ["dadc_backend=ppo", "dadc_prescriptions=mabc4"], "mabc"),
    "demand response PPO": ("dadc_dr", "demand_response", ["dadc_backend=ppo"], "demand_response"),
    "demand response TRPO": ("dadc_dr", "demand_response", ["dadc_backend=trpo"], "demand_response"),
    "demand response NAF": ("dadc_dr", "demand_response", ["dadc_backend=naf"], "demand_response"),
    # a diagnostic, not a back end: PPO evaluated at the mean of ψ (θ without the Gaussian's noise)
    "demand response PPO, greedy test": ("dadc_dr", "demand_response", ["dadc_backend=ppo", "dadc_test_greedy=true"],
                                         "demand_response"),
}
REFERENCE = {case: ("mabc4" if "mabc4" in case else "mabc3" if fig == "mabc" else "demand_response")
             for case, (_, _, _, fig) in CASES.items()}
OPTIMUM_ARGS = {"mabc3": ["--env", "mabc", "--prescriptions", "mabc3"],
                "mabc4": ["--env", "mabc", "--prescriptions", "mabc4", "--decimals", "7"],
                "demand_response": ["--env", "demand_response", "--grid", "20"],
                "demand_response_pure": ["--env", "demand_response", "--grid", "1"]}  # deterministic prescriptions


def _main_py(args: list[str]) -> dict[str, Any]:
    """Run main.py with ``args``; its last JSON line."""
    out = subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), *args], capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    if out.returncode != 0:
        raise RuntimeError(f"main.py {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1])


def run_one(case: str, seed: int, budget: dict[str, list[str]], tuning: list[str], final_episodes: int = 0
            ) -> dict[str, Any]:
    """One training run; with ``final_episodes``, also the final policy's return on that many test episodes."""
    alg, env, extra, fig = CASES[case]
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        base = [f"--config={alg}", f"--env-config={env}", "with", f"local_results_path={tmp}", "progress_bar=False",
                "use_tensorboard=False", f"seed={seed}", *extra, *tuning]
        t_max = [u for u in budget[fig] if u.startswith("t_max=")][0].split("=")[1]
        save = [f"save_model={bool(final_episodes)}", f"save_model_interval={t_max}"]
        result = _main_py([*base, *budget[fig], *save])
        with open(os.path.join(result["results_dir"], "metrics.json")) as f:
            m = json.load(f)["test_discounted_return_mean"]
        row = {"case": case, "seed": seed, "steps": m["steps"], "values": m["values"]}
        if final_episodes:
            ev = _main_py([*base, "evaluate=True", f"checkpoint_path={result['models_dir']}",
                           f"test_nepisode={final_episodes}"])
            row.update(final=ev["test_discounted_return_mean"], final_episodes=final_episodes)
    return {**row, "seconds": time.time() - start}


def optimum(name: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "concord.tools.dadc_optimum", *OPTIMUM_ARGS[name]],
                         capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout)


def plot(data: dict[str, Any], out: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for fig_name, refs in (("mabc", ["mabc3", "mabc4"]), ("demand_response", ["demand_response", "demand_response_pure"])):
        cases = [c for c in CASES if CASES[c][3] == fig_name and any(r["case"] == c for r in data["runs"])]
        if not cases:
            continue
        fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.2))  # the whole curve, and a zoom on the optimum
        opts = [data["optimum"][r]["value"] for r in refs if r in data["optimum"]]
        for ax in axes:
            for i, case in enumerate(cases):
                runs = [r for r in data["runs"] if r["case"] == case]
                n = min(len(r["steps"]) for r in runs)
                steps = runs[0]["steps"][:n]
                vals = np.array([r["values"][:n] for r in runs])  # (seeds, points)
                q1, med, q3 = np.percentile(vals, [25, 50, 75], axis=0)
                ax.plot(steps, med, color=f"C{i}", label=f"{case} (median of {len(runs)})")
                ax.fill_between(steps, q1, q3, color=f"C{i}", alpha=0.2)
            for j, ref in enumerate(refs):
                if ref not in data["optimum"]:
                    continue
                v = data["optimum"][ref]["value"]
                ax.axhline(v, color="k", ls=["--", ":"][j], lw=1, label=f"VI optimum {ref}: {v:.3f}")
            ax.set_xlabel("env steps")
        axes[0].set_ylabel("discounted return (test, Monte Carlo)")
        axes[0].set_title(f"DADC on {fig_name}: median and quartiles over seeds", fontsize=9)
        axes[1].set_title("zoom on the optima", fontsize=9)
        if opts:
            span = max(opts) - min(opts)
            axes[1].set_ylim(min(opts) - max(0.25, 3 * span), max(opts) + max(0.1, span))
        axes[1].legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        path = os.path.join(out, f"dadc_{fig_name}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def table(data: dict[str, Any], tail: int) -> str:
    """Per case: median [quartiles] over seeds of each run's mean over its last ``tail`` points; gap; seconds."""
    lines = [f"| case | seeds | env steps | last-{tail}-point mean: median [q1, q3] | per seed | mean ± s.e. over seeds "
             "| VI optimum | gap of the median | s / run |", "|---|---|---|---|---|---|---|---|---|"]
    for case in CASES:
        runs = [r for r in data["runs"] if r["case"] == case]
        if not runs:
            continue
        finals = np.array([np.mean(r["values"][-tail:]) for r in runs])
        q1, med, q3 = np.percentile(finals, [25, 50, 75])
        opt = data["optimum"][REFERENCE[case]]["value"]
        secs = np.mean([r.get("seconds", np.nan) for r in runs])
        se = finals.std(ddof=1) / np.sqrt(len(finals)) if len(finals) > 1 else float("nan")
        if all("final" in r for r in runs):  # the final policy's long evaluation replaces the last points
            finals = np.array([r["final"] for r in runs])
            q1, med, q3 = np.percentile(finals, [25, 50, 75])
            se = finals.std(ddof=1) / np.sqrt(len(finals)) if len(finals) > 1 else float("nan")
            case = f"{case} (final policy, {runs[0]['final_episodes']} episodes)"
        lines.append(f"| {case} | {len(runs)} | {runs[0]['steps'][-1]} | {med:.3f} [{q1:.3f}, {q3:.3f}] | "
                     f"{', '.join(f'{v:.3f}' for v in finals)} | {finals.mean():.3f} ± {se:.3f} | {opt:.4f} | "
                     f"{opt - med:.3f} | {secs:.0f} |")
    return "\n".join(lines) + "\n"


def ais_check(seeds: list[int], targets: list[str], updates: int, every: int) -> None:
    """The AIS check (docs/results/dadc.md): train the MABC actor-critic learner (``updates`` batches of 300 steps)
    with each ν target and print, every ``every`` updates on one held-out batch: the variance of X_t across
    histories (sum and smallest per dimension), the reward loss with X_t and with X_t replaced by its batch mean,
    the same for the prediction of Z_{t+1} (target z), the R² of a least-squares probe of the true state
    (B1, B2, S) on X_t, and the AIS loss parts. One JSON line per point."""
    import torch
    import torch.nn.functional as F

    sys.path[:0] = [os.path.join(ROOT, "src"), ROOT]
    from concord.learners.dadc import DADCLearner
    from tests.conftest import build_parts

    torch.set_num_threads(1)

    def probe_r2(xs: torch.Tensor, ys: torch.Tensor) -> list[float]:
        a = torch.cat([xs, torch.ones(len(xs), 1)], 1)
        res = ((a @ torch.linalg.lstsq(a, ys).solution - ys) ** 2).sum(0)
        return (1 - res / ((ys - ys.mean(0)) ** 2).sum(0).clamp(min=1e-9)).tolist()

    for target in targets:
        for seed in seeds:
            args, runner, mac = build_parts("dadc", "mabc", "env_args.episode_limit=100", "batch_size_run=3",
                                            f"seed={seed}", f"dadc_ais_target={target}")
            learner = DADCLearner(mac, runner.env_info, args, torch.device("cpu"))
            data = runner.run(learner.mac, learner.scheme, 0)[0].to_torch("cpu")
            held, state = learner.common_batch(data), data["state"]
            for k in range(updates + 1):
                if k % every == 0:
                    with torch.no_grad():
                        x, _, st = learner.ais(held)
                        m = held["filled"][:, :-1].bool()
                        xs, th = x[:, :-1][m], held["theta"][:, :-1]
                        xbar = xs.mean(0).expand_as(x[:, :-1])
                        (rh, mu), (rb, mub) = learner.net.predict(x[:, :-1], th), learner.net.predict(xbar, th)
                        r, z1 = held["reward"][:, :-1], held["z"][:, 1:]
                        z_mse = (lambda p: round(((p - z1) ** 2).sum(-1)[m].mean().item(), 4)
                                 if target == "z" else None)
                        row = {"target": target, "seed": seed, "update": k,
                               "x_var_sum": round(xs.var(0).sum().item(), 4),
                               "x_var_min": round(xs.var(0).min().item(), 5),
                               "r_loss": round(F.smooth_l1_loss(rh[m], r[m]).item(), 4),
                               "r_loss_meanX": round(F.smooth_l1_loss(rb[m], r[m]).item(), 4),
                               "z_mse": z_mse(mu), "z_mse_meanX": z_mse(mub),
                               "state_probe_r2": [round(v, 3) for v in probe_r2(xs, state[:, :-1][m])],
                               **{kk: round(v, 4) for kk, v in st.items()}}
                    sys.stdout.write(json.dumps(row) + "\n")
                    sys.stdout.flush()
                learner.update(runner.run(learner.mac, learner.scheme, 0)[0], 0, 0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--cases", nargs="*", default=list(CASES))
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--mabc-steps", type=int, default=15000)
    p.add_argument("--dr-steps", type=int, default=20000)
    p.add_argument("--mabc-test-episodes", type=int, default=30)
    p.add_argument("--mabc-test-interval", type=int, default=3000)
    p.add_argument("--dr-test-interval", type=int, default=4000)
    p.add_argument("--tail", type=int, default=3, help="evaluation points averaged per run in the table")
    p.add_argument("--tuning", nargs="*", default=[], help="extra key=value updates for every run (say which)")
    p.add_argument("--final-episodes", type=int, default=0,
                   help="also evaluate each run's final policy on this many test episodes (column 'final')")
    p.add_argument("--append", action="store_true", help="add these cases' runs to an existing runs.json")
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "results", "dadc"))
    p.add_argument("--plot-only", action="store_true")
    p.add_argument("--ais-check", action="store_true", help="run the AIS check instead (see ais_check)")
    p.add_argument("--ais-updates", type=int, default=200)
    a = p.parse_args()
    if a.ais_check:
        ais_check(list(range(3, 3 + a.seeds)), ["x", "z"], a.ais_updates, 40)
        return 0
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "runs.json")
    if not a.plot_only:
        budget = {"mabc": [f"t_max={a.mabc_steps}", f"test_interval={a.mabc_test_interval}",
                           f"log_interval={a.mabc_test_interval}", f"test_nepisode={a.mabc_test_episodes}"],
                  "demand_response": [f"t_max={a.dr_steps}", f"test_interval={a.dr_test_interval}",
                                      f"log_interval={a.dr_test_interval}"]}
        jobs = [(c, s) for c in a.cases for s in range(a.seeds)]
        with ThreadPoolExecutor(a.workers) as pool:
            runs = list(pool.map(lambda job: run_one(job[0], job[1], budget, a.tuning, a.final_episodes), jobs))
        old = {}
        if a.append and os.path.exists(path):
            with open(path) as f:
                old = json.load(f)
        refs = dict(old.get("optimum", {}))
        refs.update({name: optimum(name) for name in OPTIMUM_ARGS if name not in refs})
        data = {"runs": runs, "optimum": refs,
                "settings": {c: {"budget": budget[CASES[c][3]], "extra": CASES[c][2], "tuning": a.tuning}
                             for c in a.cases}}
        if old:
            data["runs"] = [r for r in old["runs"] if r["case"] not in a.cases] + data["runs"]
            data["settings"] = {**old.get("settings", {}), **data["settings"]}
        with open(path, "w") as f:
            json.dump(data, f, indent=1)
    with open(path) as f:
        data = json.load(f)
    for fig in plot(data, a.out):
        sys.stdout.write(fig + "\n")
    sys.stdout.write(table(data, a.tail))
    return 0


if __name__ == "__main__":
    sys.exit(main())
