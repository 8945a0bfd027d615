"""QMIX on Gymnasium envs with epymarl's settings: env steps per CPU-second, learner ms/update, peak RSS, replay bytes.

Run by hand (prints figures): ``.venv/bin/python benchmarks/bench_qmix_gymma.py [--t-max 100000]``.
The envs are configured as epymarl configures them (no action masks, the step limit stored as a terminal). The
A/B against epymarl itself, with its command and the figures, is ``docs/results/onpolicy.md`` §4; on rware-tiny-2ag-v2
(time_limit 500) epymarl preallocates its 5000-episode buffer: 3.45 GiB peak RSS.
Each configuration runs in a fresh process so that its peak RSS is its own.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CASES = {
    "lbforaging": ["env_args.key=lbforaging:Foraging-8x8-2p-3f-v3", "env_args.time_limit=50",
                   "env_args.use_action_masks=False", "env_args.env_limit_kwarg=none"],
    "rware": ["env_args.key=rware:rware-tiny-2ag-v2", "env_args.time_limit=500", "env_args.use_action_masks=False",
              "env_args.env_limit_kwarg=none"],
}


def child(case: str, t_max: int) -> None:
    sys.path.insert(0, os.path.join(ROOT, "src"))
    sys.path.insert(0, ROOT)
    import logging

    logging.disable(logging.INFO)
    from concord.config import load_config
    from concord.run import Experiment

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config("qmix_epymarl", "gymma", CASES[case] + [
            f"t_max={t_max}", "save_model=False", "use_tensorboard=False", "progress_bar=False",
            f"local_results_path={tmp}", f"test_interval={t_max * 2}", f"log_interval={t_max}", "seed=1"])
        exp = Experiment(cfg)
        exp.train()
        stats = {k: exp.logger.latest(k) for k in ("steps_per_cpu_second", "steps_per_second", "update_ms",
                                                      "rollout_ms_per_step")}
        buf = exp.learner.buffer  # the Q-learner owns its replay buffer
        full, compact = buf.memory_estimate(buf.scheme, buf.capacity, buf.max_seq_length)
        stats.update({
            "replay_bytes_per_episode": buf.nbytes() / buf.capacity,
            "replay_gib_5000_episodes": buf.nbytes() / 2**30,
            "replay_gib_if_float32_obs": full / 2**30,
            "obs_dtype": str(buf.data["obs"].dtype),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        })
        exp.close()
    print(json.dumps(stats))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--t-max", type=int, default=100_000)
    p.add_argument("--rware-t-max", type=int, default=20_000)
    p.add_argument("--child", choices=list(CASES))
    a = p.parse_args()
    if a.child:
        child(a.child, a.t_max)
        return
    for case, t_max in (("lbforaging", a.t_max), ("rware", a.rware_t_max)):
        out = subprocess.run([sys.executable, __file__, "--child", case, "--t-max", str(t_max)], capture_output=True,
                             text=True, check=True)
        stats = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{case} (t_max {t_max}):")
        for k, v in stats.items():
            print(f"  {k:<28s} {v:.4g}" if isinstance(v, float) else f"  {k:<28s} {v}")


if __name__ == "__main__":
    main()
