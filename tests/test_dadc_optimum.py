"""Exact optima of DADC's domains (concord.tools): value iteration's policy, simulated in the decentralised env,
reaches the computed value within Monte-Carlo error; the 4-prescription MABC set does at least as well as the 3."""
from __future__ import annotations

import json

import numpy as np
import pytest

from concord.envs.demand_response import DemandResponseEnv
from concord.envs.mabc import MABCEnv
from concord.tools import dadc_optimum, mabc_belief_vi, mean_field_vi


@pytest.mark.parametrize("prescriptions,decimals", [("mabc3", 7), ("mabc4", 5)])
def test_mabc_belief_vi_policy_reaches_its_value_in_the_env(prescriptions, decimals):
    env = MABCEnv(num_envs=2000, seed=11)
    mdp = mabc_belief_vi.build_belief_mdp(env, prescriptions, decimals)
    assert np.allclose(mdp.beliefs.sum(1), 1.0) and np.allclose(mdp.prob.sum(-1), 1.0)
    v, policy = mabc_belief_vi.value_iteration(mdp, 0.9)
    ret = mabc_belief_vi.simulate(mdp, policy, env, 0.9)
    se = ret.std(ddof=1) / np.sqrt(len(ret))
    assert abs(ret.mean() - v[0]) < 3.5 * se, (ret.mean(), v[0], se)
    # a policy that is not optimal is worse by more than the MC error: always "both may transmit"
    worse = mabc_belief_vi.simulate(mdp, np.full_like(policy, 2), MABCEnv(num_envs=2000, seed=12), 0.9)
    assert worse.mean() < v[0] - 5 * se


def test_mabc_four_prescriptions_dominate_three_and_values_are_stable():
    env = MABCEnv(num_envs=1, seed=0)
    v3 = mabc_belief_vi.value_iteration(mabc_belief_vi.build_belief_mdp(env, "mabc3", 7), 0.9)[0][0]
    v3_fine = mabc_belief_vi.value_iteration(mabc_belief_vi.build_belief_mdp(env, "mabc3", 9), 0.9)[0][0]
    v4 = mabc_belief_vi.value_iteration(mabc_belief_vi.build_belief_mdp(env, "mabc4", 5), 0.9)[0][0]
    assert abs(v3 - v3_fine) < 1e-6  # merging beliefs at 1e-7 does not move the value
    assert v4 > v3 + 0.1  # "nobody transmits" is worth having (0.879 vs 0.616)


def test_mean_field_hull_and_vi_policy_reach_value_in_the_env():
    env = DemandResponseEnv(num_envs=300, seed=5)
    model = env.mean_field_model()
    row = mean_field_vi.row_choices(model, 0, grid=4)
    assert np.allclose(row.pi.sum(1), 1.0) and np.isclose(row.p.min(), 0.15) and np.isclose(row.p.max(), 0.95)
    assert np.isclose(row.cost[np.argmin(np.abs(row.p - 0.75))], 0.0)  # the natural dynamics are free
    coarse = mean_field_vi.value_iteration(model, 0.9, grid=1)  # pure actions only
    mdp = mean_field_vi.value_iteration(model, 0.9, grid=5)
    assert mdp.value0 > coarse.value0 + 0.02  # randomising helps
    ret = mean_field_vi.simulate(mdp, env, 0.9, seed=6)
    se = ret.std(ddof=1) / np.sqrt(len(ret))
    assert abs(ret.mean() - mdp.value0) < 3.5 * se, (ret.mean(), mdp.value0, se)
    nat = [int(np.argmin(r.cost)) for r in mdp.rows]  # the free choice of each row: the natural dynamics
    assert np.isclose(mdp.rows[0].p[nat[0]], 0.75) and np.isclose(mdp.rows[1].p[nat[1]], 0.625)
    natural = mean_field_vi.simulate(mean_field_vi.CountMDP(
        v=mdp.v, policy=np.tile(nat, (101, 1)), rows=mdp.rows, value0=0.0),
        DemandResponseEnv(num_envs=300, seed=7), 0.9, seed=8)
    assert natural.mean() < mdp.value0 - 5 * se


def test_optimum_command_prints_json(capsys):
    assert dadc_optimum.main(["--env", "demand_response", "--grid", "2", "--episodes", "50"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["env"] == "demand_response" and out["value"] < 0 and abs(out["mc_mean"] - out["value"]) < 5 * out["mc_se"]
