"""Exact optima of DADC's domains, each checked by Monte Carlo in the decentralised env (dadc.md §6, App. D).

    python -m concord.tools.dadc_optimum --env mabc --prescriptions mabc3          # the paper's 3 prescriptions
    python -m concord.tools.dadc_optimum --env mabc --prescriptions mabc4          # with "nobody transmits"
    python -m concord.tools.dadc_optimum --env demand_response --grid 20

The env is built from ``config/envs/<env>.yaml`` (its ``env_args`` and ``gamma``). Prints one JSON line: the
optimal value V(b_0) from value iteration (``mabc_belief_vi`` / ``mean_field_vi``), the Monte-Carlo mean of the
discounted return of the optimal policy simulated in the env over ``--episodes`` episodes, and its standard error.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import numpy as np
import torch
import yaml

from concord.config import CONFIG_DIR
from concord.envs.demand_response import DemandResponseEnv
from concord.envs.mabc import MABCEnv
from concord.tools import mabc_belief_vi, mean_field_vi


def env_yaml(env: str) -> tuple[dict[str, Any], float]:
    """The env's ``env_args`` and ``gamma`` from its yaml."""
    with open(os.path.join(CONFIG_DIR, "envs", f"{env}.yaml")) as f:
        data = yaml.safe_load(f)
    return dict(data["env_args"]), float(data["gamma"])


def mabc_optimum(prescriptions: str = "mabc3", episodes: int = 2000, seed: int = 0, decimals: int = 9
                 ) -> dict[str, Any]:
    """V(b_0) of the belief MDP over the prescription set, and its policy's Monte-Carlo return in ``MABCEnv``."""
    env_args, gamma = env_yaml("mabc")
    env = MABCEnv(num_envs=episodes, seed=seed, **env_args)
    mdp = mabc_belief_vi.build_belief_mdp(env, prescriptions, decimals)
    v, policy = mabc_belief_vi.value_iteration(mdp, gamma)
    returns = mabc_belief_vi.simulate(mdp, policy, env, gamma)
    usage = np.bincount(policy, minlength=len(mdp.options))
    return {"env": "mabc", "prescriptions": prescriptions, "gamma": gamma, "value": float(v[0]),
            "mc_mean": float(returns.mean()), "mc_se": float(returns.std(ddof=1) / np.sqrt(episodes)),
            "episodes": episodes, "n_beliefs": len(mdp.beliefs),
            "beliefs_per_option": {str(o): int(c) for o, c in zip(mdp.options, usage)}}


def demand_response_optimum(grid: int = 20, episodes: int = 400, seed: int = 0) -> dict[str, Any]:
    """V of the count MDP over gridded randomised prescriptions, and its policy's Monte-Carlo return."""
    env_args, gamma = env_yaml("demand_response")
    env = DemandResponseEnv(num_envs=episodes, seed=seed, **env_args)
    mdp = mean_field_vi.value_iteration(env.mean_field_model(), gamma, grid=grid)
    returns = mean_field_vi.simulate(mdp, env, gamma, seed=seed + 1)
    return {"env": "demand_response", "grid": grid, "gamma": gamma, "value": mdp.value0,
            "mc_mean": float(returns.mean()), "mc_se": float(returns.std(ddof=1) / np.sqrt(episodes)),
            "episodes": episodes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=["mabc", "demand_response"], required=True)
    parser.add_argument("--prescriptions", choices=sorted(mabc_belief_vi.MABC_OPTIONS), default="mabc3")
    parser.add_argument("--grid", type=int, default=20, help="demand response: steps per hull segment")
    parser.add_argument("--episodes", type=int, default=None, help="Monte-Carlo episodes (2000 mabc, 400 dr)")
    parser.add_argument("--decimals", type=int, default=9, help="mabc: beliefs equal to this many decimals merge")
    parser.add_argument("--seed", type=int, default=0)
    a = parser.parse_args(argv)
    torch.set_num_threads(1)
    if a.env == "mabc":
        out = mabc_optimum(a.prescriptions, a.episodes or 2000, a.seed, a.decimals)
    else:
        out = demand_response_optimum(a.grid, a.episodes or 400, a.seed)
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
