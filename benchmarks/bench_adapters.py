"""Env steps per second of the gymma and pettingzoo adapters under uniformly random available actions.

Each step is what a runner does per env: ``step`` then ``get_obs``, ``get_state``, ``get_avail_actions``
(episodes are reset when they end; resets are counted in the time). Run by hand, one core::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_adapters.py --steps 5000
"""
from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "lbforaging 8x8-2p-3f": ("gymma", dict(key="lbforaging:Foraging-8x8-2p-3f-v3", time_limit=50)),
    "rware tiny-2ag": ("gymma", dict(key="rware:rware-tiny-2ag-v2", time_limit=500)),
    "mpe2 simple_spread N=3": ("pettingzoo", dict(key="mpe2.simple_spread_v3:parallel_env", time_limit=25)),
    "magent2 battle_v4 45x45 (red vs random blue)": ("pettingzoo", dict(
        key="magent2.environments.battle_v4:parallel_env", time_limit=1000, controlled_prefix="red_", noop_action=6)),
}


def bench(env_name: str, env_args: dict[str, Any], steps: int, seed: int) -> dict[str, Any]:
    """Steps/s of one adapter over ``steps`` env steps (after one warm-up episode start)."""
    from concord.registry import ENVS

    env = ENVS.get(env_name)(seed=seed, **env_args)
    info = env.get_env_info()
    rng = np.random.default_rng(seed)
    env.reset()
    episodes = 0
    start = time.perf_counter()
    for _ in range(steps):
        avail = env.get_avail_actions()  # (n_agents, n_actions)
        actions = np.argmax(np.where(avail, rng.random(avail.shape), -1.0), axis=1)  # uniform over available
        _, done, _ = env.step(actions)
        env.get_obs(), env.get_state(), env.get_avail_actions()
        if done:
            episodes += 1
            env.reset()
    elapsed = time.perf_counter() - start
    total_agents = len(env._env.possible_agents) if env_name == "pettingzoo" else info["n_agents"]
    env.close()
    return {"steps_per_s": steps / elapsed, "n_agents": info["n_agents"], "total_agents": total_agents,
            "obs_shape": info["obs_shape"], "state_shape": info["state_shape"], "episodes": episodes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="env steps per adapter")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="", help="run only cases whose name contains this")
    args = parser.parse_args()
    print(f"{'env':46s} {'agents (ctrl/all)':>17s} {'obs':>5s} {'state':>6s} {'episodes':>8s} {'steps/s':>9s}")
    for name, (env_name, env_args) in CASES.items():
        if args.only not in name:
            continue
        r = bench(env_name, env_args, args.steps, args.seed)
        print(f"{name:46s} {r['n_agents']:>8d}/{r['total_agents']:<8d} {r['obs_shape']:5d} {r['state_shape']:6d} "
              f"{r['episodes']:8d} {r['steps_per_s']:9.0f}")


if __name__ == "__main__":
    main()
