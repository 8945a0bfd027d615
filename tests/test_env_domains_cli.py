"""End-to-end: a short QMIX run through main.py on each of the papers' domains logs the domain's metric.

Tiny settings (a few hundred env steps, batches of 4 episodes, short episodes, small N) so that every domain
goes through the whole loop (env yaml, runner, buffer, learner updates, test episodes, JSON result) in a
second or two. The natively batched domains run with ``runner=parallel batch_size_run=2``, which steps both
envs as one array in process; Checkers is a single env and runs with the episode runner.
"""
from __future__ import annotations

import pytest

TINY = ["t_max=200", "batch_size=4", "buffer_size=16", "test_nepisode=2", "save_model=False",
        "use_tensorboard=False", "seed=1"]
BATCHED = ["runner=parallel", "batch_size_run=2"]

# env, its settings, (n_agents, n_actions, episode_limit), metric logged by the test episodes, its bounds
DOMAINS = [
    ("gaussian_squeeze", ["env_args.n_agents=10", *BATCHED], (10, 10, 1), "test_system_performance_mean",
     (0.0, 423.03)),  # GS(x) <= GS(445)
    ("coordination_game", ["env_args.n_agents=3", "env_args.episode_limit=10", *BATCHED], (3, 2, 10),
     "test_return_mean", (0.0, 3.0 * 10)),  # r(s) in {0, 1, 2, 3}
    ("aloha", ["env_args.episode_limit=10", *BATCHED], (10, 2, 10), "test_transmitted_mean", (0.0, 10 * 10)),
    ("mabc", ["env_args.episode_limit=10", *BATCHED], (2, 2, 10), "test_discounted_return_mean",
     (-0.8 / 0.1, 0.6 / 0.1)),  # per-step reward in [-0.8, 0.6], discounted with 0.9
    ("demand_response", ["env_args.n_agents=5", "env_args.episode_limit=10", *BATCHED], (5, 3, 10),
     "test_discounted_return_mean", (-10.0, 0.0)),  # cost and KL are >= 0; KL <= log(1 / 0.3) < 1.3
    ("warehouse", ["env_args.n_agents=4", "env_args.episode_limit=10", *BATCHED], (4, 6, 10),
     "test_completed_orders_mean", (0.0, 4.0)),  # 5 items then a station: at most one order per robot in 10 steps
    ("battle", ["env_args.n_agents=20", "env_args.episode_limit=10", *BATCHED], (20, 6, 10),
     "test_kills_minus_deaths_mean", (-20.0, 20.0)),
    ("checkers", ["env_args.episode_limit=10"], (2, 5, 10), "test_agent1_apples_mean", (0.0, 9.0)),
    ("po_spread", ["env_args.n_agents=3", "env_args.episode_limit=10", *BATCHED], (3, 5, 10),
     "test_occupied_landmarks_mean", (0.0, 3.0)),
]


@pytest.mark.parametrize(("env", "settings", "sizes", "metric", "bounds"), DOMAINS, ids=[d[0] for d in DOMAINS])
def test_qmix_runs_on_the_domain_and_logs_its_metric(run_main, env, settings, sizes, metric, bounds) -> None:
    code, result, err = run_main("qmix", env, *TINY, *settings)
    assert code == 0, err
    n_agents, n_actions, episode_limit = sizes
    assert f"n_agents={n_agents} n_actions={n_actions} " in err and f"episode_limit={episode_limit} " in err
    assert result["t_env"] >= 200 and "loss" in err  # the learner trained
    assert bounds[0] <= result[metric] <= bounds[1], result
