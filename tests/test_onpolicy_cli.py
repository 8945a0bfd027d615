"""The on-policy algorithms end to end through main.py: MAPPO, IPPO and VAST's factorised actor-critic on SMAX 3m,
the coordination game and lbforaging (each updates at least once, logs its learner statistics, tests)."""
from __future__ import annotations

import pytest

from tests.conftest import require

ALGS = ["mappo", "ippo", "vast_ac"]
# two rounds of 4 episodes per update: every run below trains
SHORT = ["rollout_episodes=4", "save_model=False", "test_nepisode=4", "seed=2"]
LOSS_KEY = {"mappo": "policy_loss", "ippo": "policy_loss", "vast_ac": "critic_loss"}


@pytest.mark.parametrize("alg", ALGS)
def test_on_policy_algorithms_train_on_the_coordination_game(run_main, alg):
    code, result, err = run_main(alg, "coordination_game", "env_args.n_agents=3", "runner=parallel",
                                 "batch_size_run=4", "t_max=400", *SHORT)
    assert code == 0, err
    assert result["t_env"] >= 400 and "test_return_mean" in result and LOSS_KEY[alg] in err


@pytest.mark.parametrize("alg", ALGS)
def test_on_policy_algorithms_train_on_lbforaging(run_main, alg):
    require("lbforaging")
    code, result, err = run_main(alg, "gymma", "env_args.key=lbforaging:Foraging-8x8-2p-3f-v3",
                                 "env_args.time_limit=25", "t_max=300", *SHORT)
    assert code == 0, err
    assert result["t_env"] >= 300 and LOSS_KEY[alg] in err and "n_agents=2 n_actions=6" in err


@pytest.mark.parametrize("alg", ALGS)
def test_on_policy_algorithms_train_on_smax_3m(run_main, alg):
    require("jaxmarl")
    code, result, err = run_main(alg, "smax", "env_args.map_name=3m", "runner=parallel", "batch_size_run=4",
                                 "t_max=300", *SHORT)
    assert code == 0, err
    assert result["t_env"] >= 300 and 0.0 <= result["test_battle_won_mean"] <= 1.0 and LOSS_KEY[alg] in err
    if alg == "vast_ac":  # metagrad sub-teams over 3 agents (K = 1 at η = 1/4)
        assert "vast_policy_loss" in err
