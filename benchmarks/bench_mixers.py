"""Value-factorisation mixers: parameter counts at SMAC/SMAX sizes and Q-learner updates per second on CPU.

Run by hand (prints figures): ``.venv/bin/python benchmarks/bench_mixers.py [--updates 20] [--maps 5m_vs_6m]``.

Parameter counts use each algorithm yaml's defaults. SMAC sizes: 5m_vs_6m has state 98 (38 + last actions 5·12),
5 agents, 12 actions; 27m_vs_30m has state 27·4 + 30·3 + 27·36 = 1170, 27 agents, 36 actions (both unit_dim 4).
SMAX sizes (no last actions, as smax.yaml): state 12·(allies + enemies), n_enemies + 5 actions, unit_dim 10.
Updates/s: one ``QLearner.train`` on a synthetic batch of 32 episodes (random observations, states, rewards and
actions; lengths uniform in [limit/2, limit]) at the SMAC map's sizes, single-threaded torch, after warm-up.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "src"), ROOT]

from concord.config import load_config, to_namespace  # noqa: E402
from concord.controllers.basic_mac import BasicMAC  # noqa: E402
from concord.learners.q_learner import QLearner  # noqa: E402

ALGS = ("qmix", "qtran", "qplex_sc2")
# SMAC maps: env state without last actions, obs, agents, actions, episode limit, unit_dim
SMAC = {"5m_vs_6m": (38, 55, 5, 12, 70, 4), "27m_vs_30m": (198, 285, 27, 36, 180, 4)}
# SMAX maps: allies, enemies
SMAX = {"3m": (3, 3), "5m_vs_6m": (5, 6), "27m_vs_30m": (27, 30)}


def smac_env_info(map_name: str) -> dict:
    state, obs, n, a, limit, unit_dim = SMAC[map_name]
    return {"n_agents": n, "n_actions": a, "obs_shape": obs, "state_shape": state, "episode_limit": limit,
            "unit_dim": unit_dim}


def build_learner(alg: str, env_info: dict, env: str, updates: list[str]) -> QLearner:
    args = to_namespace(load_config(alg, env, ["seed=1", "torch_threads=1", *updates]))
    mac = BasicMAC(env_info, args, torch.device("cpu"))
    return QLearner(mac, env_info, args, torch.device("cpu"))


def mixer_params(alg: str, env_info: dict, env: str, updates: list[str]) -> int:
    learner = build_learner(alg, env_info, env, updates)
    return sum(p.numel() for p in learner.mixer.parameters())


def synthetic_batch(env_info: dict, b: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    n, a, limit = env_info["n_agents"], env_info["n_actions"], env_info["episode_limit"]
    t = limit + 1
    lengths = rng.integers(limit // 2, limit + 1, size=b)
    steps = np.arange(t)[None, :]  # (1, T)
    filled = steps < lengths[:, None]  # (B, T)
    avail = rng.random((b, t, n, a)) < 0.7
    avail[..., 0] = True
    actions = np.where(filled[..., None], (rng.random((b, t, n, a)) * avail).argmax(-1), 0)  # available actions
    terminated = steps == (lengths - 1)[:, None]
    return {
        "obs": torch.from_numpy(rng.standard_normal((b, t, n, env_info["obs_shape"]), dtype=np.float32)),
        "state": torch.from_numpy(rng.standard_normal((b, t, env_info["state_shape"]), dtype=np.float32)),
        "avail_actions": torch.from_numpy(avail),
        "actions": torch.from_numpy(actions).long(),
        "reward": torch.from_numpy(rng.random((b, t), dtype=np.float32) * filled),
        "terminated": torch.from_numpy(terminated & filled).float(),
        "filled": torch.from_numpy(filled).float(),
    }


def updates_per_second(alg: str, map_name: str, n_updates: int) -> float:
    env_info = smac_env_info(map_name)
    learner = build_learner(alg, env_info, "sc2", [])
    batch = synthetic_batch(env_info, 32, np.random.default_rng(0))
    learner.train(batch, 0, 0)  # warm-up
    start = time.perf_counter()
    for i in range(n_updates):
        learner.train(batch, 0, i)
    return n_updates / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--updates", type=int, default=20, help="timed learner updates per (alg, map)")
    p.add_argument("--maps", nargs="+", default=list(SMAC), choices=list(SMAC), help="SMAC maps for updates/s")
    opts = p.parse_args()
    torch.set_num_threads(1)

    print("mixer parameters, SMAC sizes (state with last actions)")
    for map_name in SMAC:
        counts = {alg: mixer_params(alg, smac_env_info(map_name), "sc2", []) for alg in ALGS}
        print(f"  {map_name:12s} " + "  ".join(f"{alg} {c:>9,d}" for alg, c in counts.items()))
    print("mixer parameters, SMAX sizes (state without last actions, unit_dim 10)")
    for map_name, (allies, enemies) in SMAX.items():
        info = {"n_agents": allies, "n_actions": enemies + 5, "obs_shape": 10, "state_shape": 12 * (allies + enemies),
                "episode_limit": 100, "unit_dim": 10}
        counts = {alg: mixer_params(alg, info, "smax", []) for alg in ALGS}
        print(f"  {map_name:12s} " + "  ".join(f"{alg} {c:>9,d}" for alg, c in counts.items()))
    print(f"learner updates/s, batch 32 episodes, synthetic SMAC-sized batches, CPU, 1 torch thread, {opts.updates} updates")
    for map_name in opts.maps:
        rates = {alg: updates_per_second(alg, map_name, opts.updates) for alg in ALGS}
        print(f"  {map_name:12s} " + "  ".join(f"{alg} {r:7.2f}/s" for alg, r in rates.items()))


if __name__ == "__main__":
    main()
