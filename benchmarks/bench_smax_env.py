"""Env steps per second of the SMAX VecEnv (JaxMARL 0.2.0 under jit + vmap), and its compile time.

Run by hand from the repo root:
``PYTHONPATH=src .venv/bin/python benchmarks/bench_smax_env.py [--maps 3m 27m_vs_30m] [--envs 1 8 32] [--seconds 5]``.
An env step is one step of one env, so a batch of E envs stepped once counts E. Actions are drawn uniformly
from the available ones (on the host, as a runner's random policy would), and envs whose episode ended are
reset at once, so every call steps the whole batch. Compile time (the first reset + step, which jit-compile
both functions) is measured separately and excluded from the rate. ``cpu/wall`` is process CPU time over wall
time while stepping: about 1 means jax kept to one core (``jax_cpu_threads=1``).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from concord.envs.smax import SMAXVecEnv


def random_actions(rng: np.random.Generator, avail: np.ndarray) -> np.ndarray:
    """Uniform over each agent's available actions: (E, n_agents, n_actions) bool -> (E, n_agents)."""
    scores = rng.random(avail.shape)
    scores[~avail] = -1.0
    return scores.argmax(-1)


def bench(map_name: str, num_envs: int, seconds: float, threads: int) -> dict[str, float]:
    """Compile seconds, env steps/s, ms per batched step and CPU/wall over about ``seconds`` of stepping."""
    env = SMAXVecEnv(num_envs=num_envs, seed=0, map_name=map_name, jax_cpu_threads=threads)
    rng = np.random.default_rng(0)
    ids = np.arange(num_envs)
    t0 = time.perf_counter()
    avail = env.reset(ids).avail_actions
    res = env.step(ids, random_actions(rng, avail))
    compile_s = time.perf_counter() - t0
    avail = res.obs.avail_actions
    ended = res.terminated | res.truncated
    calls, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall0 < seconds:
        if ended.any():
            avail[ended] = env.reset(ids[ended]).avail_actions
        res = env.step(ids, random_actions(rng, avail))
        avail, ended = res.obs.avail_actions, res.terminated | res.truncated
        calls += 1
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"compile_s": compile_s, "steps_per_s": calls * num_envs / wall, "ms_per_call": 1e3 * wall / calls,
            "cpu_per_wall": cpu / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", nargs="+", default=["3m", "27m_vs_30m"])
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=1, help="jax_cpu_threads (0: XLA's default)")
    args = parser.parse_args()
    for m in args.maps:
        for e in args.envs:
            r = bench(m, e, args.seconds, args.threads)
            print(f"smax {m} E={e}: {r['steps_per_s']:,.0f} env steps/s ({r['ms_per_call']:.2f} ms per batched step, "
                  f"cpu/wall {r['cpu_per_wall']:.2f}); compile {r['compile_s']:.1f} s")


if __name__ == "__main__":
    main()
