"""QMIX on SMAX: batch runner vs subprocess runner, learner updates/s, replay bytes per episode, 1M-step wall-clock.

Run by hand (prints figures): ``.venv/bin/python benchmarks/bench_smax_qmix.py [--full]``.
``--full`` also trains QMIX on SMAX 3m for 1M env steps with ``batch_size_run=8`` through main.py and reports
the wall-clock and the test win rate reached (about 10 minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from concord.envs.base import MultiAgentEnv  # noqa: E402


class OneSMAX(MultiAgentEnv):
    """One SMAX battle behind the single-env interface, so the subprocess runner can host it (comparison only)."""

    def __init__(self, seed: int, map_name: str) -> None:
        from concord.envs.smax import SMAXVecEnv

        super().__init__(seed)
        self.vec = SMAXVecEnv(num_envs=1, seed=seed, map_name=map_name)
        info = self.vec.get_env_info()
        self.n_agents, self.n_actions, self.episode_limit = info["n_agents"], info["n_actions"], info["episode_limit"]
        self.cur = None

    def get_env_info(self):
        return self.vec.get_env_info()

    def reset(self) -> None:
        self.cur = self.vec.reset([0])

    def step(self, actions):
        res = self.vec.step([0], np.asarray(actions)[None])
        self.cur = res.obs
        info = dict(res.infos[0])
        if res.truncated[0]:
            info["episode_limit"] = True
        return float(res.reward[0]), bool(res.terminated[0] or res.truncated[0]), info

    def get_obs(self):
        return self.cur.obs[0]

    def get_state(self):
        return self.cur.state[0]

    def get_avail_actions(self):
        return self.cur.avail_actions[0]

    def get_extras(self):
        return {k: v[0] for k, v in self.cur.extras.items()}


def _make_one(map_name: str, seed: int) -> OneSMAX:
    return OneSMAX(seed, map_name)


def rollout_speed(map_name: str, n_envs: int, subprocess_envs: bool, seconds: float) -> float:
    """Env steps/s of rounds collected by the runner with a QMIX GRU policy in the loop (no training)."""
    from concord.components.episode_buffer import build_scheme
    from concord.config import load_config, to_namespace
    from concord.envs.base import SerialVecEnv
    from concord.envs.subproc import SubprocVecEnv
    from concord.registry import MACS
    from concord.runners.runner import Runner

    args = to_namespace(load_config("qmix", "smax", [f"env_args.map_name={map_name}", f"batch_size_run={n_envs}"]))
    runner = Runner.__new__(Runner)
    runner.args = args
    if subprocess_envs:
        runner.vec_env = SubprocVecEnv(functools.partial(_make_one, map_name), n_envs, seed=0)
    else:
        from concord.envs.smax import SMAXVecEnv

        runner.vec_env = SMAXVecEnv(num_envs=n_envs, seed=0, map_name=map_name)
    runner.env_info = runner.vec_env.get_env_info()
    runner.n_envs, runner.episode_limit = n_envs, runner.env_info["episode_limit"]
    mac = MACS.get("basic_mac")(runner.env_info, args, torch.device("cpu"))
    scheme = build_scheme(runner.env_info, True)
    runner.run(mac, scheme, 0)  # warm-up (compilation)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        batch, _ = runner.run(mac, scheme, 0)
        steps += int(batch.episode_lengths().sum())
    rate = steps / (time.perf_counter() - t0)
    runner.close()
    return rate


def learner_speed(map_name: str, n_updates: int = 30) -> float:
    """QMIX gradient updates per second at batch 32 on episodes collected from SMAX."""
    from concord.components.episode_buffer import ReplayBuffer, build_scheme
    from concord.config import load_config, to_namespace
    from concord.registry import LEARNERS, MACS
    from concord.runners.runner import ParallelRunner

    args = to_namespace(load_config("qmix", "smax", [f"env_args.map_name={map_name}", "batch_size_run=32"]))
    runner = ParallelRunner(args, seed=0)
    mac = MACS.get("basic_mac")(runner.env_info, args, torch.device("cpu"))
    learner = LEARNERS.get("q_learner")(mac, runner.env_info, args, torch.device("cpu"))
    scheme = build_scheme(runner.env_info, True)
    buf = ReplayBuffer(scheme, 64, runner.episode_limit + 1, seed=0)
    buf.insert(runner.run(mac, scheme, 0)[0])
    runner.close()
    learner.train(buf.sample(32).to_torch("cpu"), 0, 0)
    t0 = time.perf_counter()
    for _ in range(n_updates):
        learner.train(buf.sample(32).to_torch("cpu"), 0, 0)
    return n_updates / (time.perf_counter() - t0)


def buffer_bytes(map_name: str) -> tuple[float, float, int]:
    """(bytes per stored episode with float16 observations, with float32, episode_limit)."""
    from concord.components.episode_buffer import ReplayBuffer, build_scheme
    from concord.envs.smax import SMAXVecEnv

    info = SMAXVecEnv(num_envs=1, seed=0, map_name=map_name).get_env_info()
    full, compact = ReplayBuffer.memory_estimate(build_scheme(info, True), 1, info["episode_limit"] + 1)
    return compact, full, info["episode_limit"]


def full_run(t_max: int) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, os.path.join(ROOT, "main.py"), "--config=qmix", "--env-config=smax", "with",
                          "env_args.map_name=3m", "runner=parallel", "batch_size_run=8", f"t_max={t_max}",
                          "test_interval=50000", "save_model=False", "progress_bar=False", "seed=1"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_clock_s"] = time.perf_counter() - t0
    return result


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--full", action="store_true")
    p.add_argument("--t-max", type=int, default=1_000_000)
    a = p.parse_args()
    torch.set_num_threads(1)
    for n in (8,):
        batch = rollout_speed("3m", n, False, a.seconds)
        sub = rollout_speed("3m", n, True, a.seconds)
        print(f"3m rollout with QMIX policy, {n} envs: batch runner {batch:,.0f} steps/s, subprocess runner {sub:,.0f} steps/s")
    for m in ("3m", "27m_vs_30m"):
        print(f"{m}: QMIX learner {learner_speed(m):.1f} updates/s at batch 32")
        compact, full, limit = buffer_bytes(m)
        print(f"{m}: replay {compact / 1024:.1f} KiB per stored episode ({full / 1024:.1f} KiB with float32 obs), "
              f"episode_limit {limit}; 5000 episodes = {5000 * compact / 2**30:.2f} GiB")
    if a.full:
        r = full_run(a.t_max)
        print(f"QMIX SMAX 3m, {a.t_max} env steps, batch_size_run=8: {r['wall_clock_s'] / 60:.1f} min wall-clock, "
              f"test win rate {r['test_battle_won_mean']:.2f}, test return {r['test_return_mean']:.3f}")


if __name__ == "__main__":
    main()
