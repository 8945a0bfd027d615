"""MAPPO on lbforaging with epymarl's settings (``--config=mappo_epymarl``): env steps per CPU-second of the whole
process tree, learner ms per update, peak RSS of the main process, final test return.

Run by hand (prints figures): ``.venv/bin/python benchmarks/bench_mappo_gymma.py [--t-max 100000] [--seed 1]``.
It runs exactly::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 .venv/bin/python main.py --config=mappo_epymarl --env-config=gymma with \
      env_args.key=lbforaging:Foraging-8x8-2p-3f-v3 env_args.time_limit=50 runner=parallel batch_size_run=10 \
      t_max=T seed=S test_interval=50000 test_nepisode=100 save_model=False use_tensorboard=False \
      progress_bar=False local_results_path=OUT

as a child process (``--extra k=v ...`` appends overrides) and measures it from outside:

- CPU: user+sys of the child *and every descendant it reaped* (``os.wait4`` rusage, the same accounting as
  ``/usr/bin/time -v``, which is what epymarl's peer figure uses; the env workers are spawn-context
  multiprocessing children that Concord joins at close). A psutil sample of the live tree (main + workers) is
  printed beside it as a cross-check, in case a worker is not reaped.
- env steps per CPU-second = t_env at the end / tree user+sys. Test episodes are not counted in t_env (as in
  epymarl), but their CPU is.
- peak RSS: the *main process's* high-water mark (``VmHWM`` from /proc, polled every 0.2 s; the last value read
  before exit), and separately the largest single process of the tree (wait4 ``ru_maxrss``).
- update_ms, Concord's own steps_per_cpu_second (main process only) and the test returns come from the run's
  sacred ``metrics.json`` (its ``results_dir`` is in the final JSON line the run prints).

Compare with ``bash /tmp/epymarl_mappo_run.sh T_MAX`` (see benchmarks/peers_epymarl_mappo.md) run in the same
time window, interleaved A B A B, with ``uptime`` before and after each run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV_ARGS = ["env_args.key=lbforaging:Foraging-8x8-2p-3f-v3", "env_args.time_limit=50", "runner=parallel",
            "batch_size_run=10"]


def _vm_hwm_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def run_once(t_max: int, seed: int, out: str, extra: list[str]) -> dict:
    cmd = [sys.executable, os.path.join(ROOT, "main.py"), "--config=mappo_epymarl", "--env-config=gymma", "with",
           *ENV_ARGS, f"t_max={t_max}", f"seed={seed}", "test_interval=50000", "test_nepisode=100",
           "save_model=False", "use_tensorboard=False", "progress_bar=False", f"local_results_path={out}", *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    load_before = os.getloadavg()
    stdout_path = os.path.join(out, "stdout.txt")
    os.makedirs(out, exist_ok=True)
    wall0 = time.perf_counter()
    with open(stdout_path, "w") as so:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=so, stderr=subprocess.STDOUT)
        ps = psutil.Process(proc.pid)
        hwm, tree_cpu = 0, {}
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            h = _vm_hwm_kb(proc.pid)
            if h:
                hwm = max(hwm, h)
            try:
                for p in [ps, *ps.children(recursive=True)]:
                    try:
                        c = p.cpu_times()
                        tree_cpu[p.pid] = c.user + c.system
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            time.sleep(0.2)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - wall0
    load_after = os.getloadavg()
    text = open(stdout_path).read()
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}); see {stdout_path}:\n{text[-3000:]}")
    final = json.loads([ln for ln in text.splitlines() if ln.startswith("{")][-1])
    metrics = json.load(open(os.path.join(final["results_dir"], "metrics.json"))) if "results_dir" in final else {}

    def series(k: str) -> list:
        m = metrics.get(k, {})
        return list(zip(m.get("steps", []), m.get("values", [])))

    t_env = final.get("t_env") or (series("update_ms")[-1][0] if series("update_ms") else t_max)
    cpu = ru.ru_utime + ru.ru_stime
    upd = series("update_ms")
    return {
        "cmd": " ".join(cmd),
        "t_env": t_env,
        "wall_s": wall,
        "tree_user_plus_sys_s": cpu,
        "env_steps_per_cpu_second_tree": t_env / cpu,
        "env_steps_per_wall_second": t_env / wall,
        "psutil_tree_cpu_s_last_sample": sum(tree_cpu.values()),
        "psutil_tree_n_processes_seen": len(tree_cpu),
        "concord_steps_per_cpu_second_main_only": (series("steps_per_cpu_second") or [(0, None)])[-1][1],
        "update_ms_last": upd[-1][1] if upd else None,
        "update_ms_mean_over_logs": sum(v for _, v in upd) / len(upd) if upd else None,
        "peak_rss_main_mb": hwm / 1024,
        "peak_rss_largest_process_mb": ru.ru_maxrss / 1024,
        "test_return_mean_final": final.get("test_return_mean"),
        "test_return_mean_curve": series("test_return_mean"),
        "return_mean_curve": series("return_mean"),
        "load_before": load_before,
        "load_after": load_after,
        "results_dir": final.get("results_dir"),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--t-max", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default=None, help="local_results_path (default: a fresh temp dir)")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    p.add_argument("--extra", nargs="*", default=[], help="extra sacred overrides k=v")
    a = p.parse_args()
    out = a.out or tempfile.mkdtemp(prefix="bench_mappo_gymma_")
    s = run_once(a.t_max, a.seed, out, a.extra)
    for k, v in s.items():
        if k.endswith("_curve"):
            print(f"{k:<40s} {[(t, round(x, 4)) for t, x in v]}")
        elif isinstance(v, float):
            print(f"{k:<40s} {v:.4g}")
        else:
            print(f"{k:<40s} {v}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(s, f, indent=1)


if __name__ == "__main__":
    main()
