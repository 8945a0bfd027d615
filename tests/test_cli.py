"""End-to-end runs through main.py: training, errors, plugins, evaluation."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, require

# Uniform exploration (ε = 1) on the non-monotonic matrix game, 32 episodes per round, ~300 updates.
UNIFORM = ["epsilon_start=1.0", "epsilon_finish=1.0", "batch_size_run=32", "t_max=9600", "test_interval=100000",
           "log_interval=100000", "save_model=False", "lr=0.005", "target_update_interval=64", "use_tensorboard=False"]


@pytest.mark.parametrize("alg", ["iql", "vdn", "qmix"])
def test_value_methods_train_on_matrix_game(run_main, alg):
    code, result, err = run_main(alg, "matrix_game", "t_max=300", "seed=1")
    assert code == 0, err
    assert result["t_env"] == 300 and "test_return_mean" in result and "test_optimal_mean" in result
    assert os.path.isdir(result["results_dir"]) and os.path.isdir(result["models_dir"])
    assert "parameters: agent RNNAgent =" in err


def test_vdn_misses_the_optimum_under_uniform_exploration(run_main):
    """The textbook failure: VDN's least-squares fit of the non-monotonic payoff prefers (1|2, 1|2), worth 0."""
    code, result, err = run_main("vdn", "matrix_game", *UNIFORM, "seed=3")
    assert code == 0, err
    assert result["test_return_mean"] == 0.0 and result["test_optimal_mean"] == 0.0


def test_bad_input_is_a_one_line_error_before_work(run_main):
    code, result, err = run_main("qmix", "matrix_game", "mixer=nope")
    assert code == 2 and result is None
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert lines == ["error: unknown mixer 'nope'; known mixers: " + lines[0].split("known mixers: ")[1]]
    assert "qmix" in lines[0] and "vdn" in lines[0]
    code, _, err = run_main("qmix", "matrix_game", "lr=fast")
    assert code == 2 and "error: config key 'lr' must be float" in err


def test_plugin_mixer_from_outside_src_trains(run_main):
    code, result, err = run_main("vdn", "matrix_game", "plugins=[examples.weighted_mixer]", "mixer=weighted",
                                 "t_max=200")
    assert code == 0, err
    assert "parameters: mixer WeightedMixer = 6" in err  # state_dim 1: Linear(1,2) + Linear(1,1)


def test_evaluate_from_checkpoint_writes_json(run_main, tmp_path):
    code, result, err = run_main("qmix", "matrix_game", "t_max=200", "seed=2")
    assert code == 0, err
    code, ev, err = run_main("qmix", "matrix_game", "evaluate=True", f"checkpoint_path={result['models_dir']}",
                             "test_nepisode=3")
    assert code == 0, err
    assert ev["t_env"] == 200
    path = [ln.split("evaluation written to ")[1] for ln in err.splitlines() if "evaluation written to" in ln][0]
    with open(path) as f:
        saved = json.load(f)
    assert saved["test_return_mean"] == ev["test_return_mean"] and saved["t_env"] == 200


def test_main_py_as_a_process_prints_one_json_line(tmp_path):
    proc = subprocess.run([sys.executable, "main.py", "--config=iql", "--env-config=matrix_game", "with",
                           f"local_results_path={tmp_path}", "t_max=50", "save_model=False"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["t_env"] == 50
    bad = subprocess.run([sys.executable, "main.py", "--config=iql", "--env-config=matrix_game", "with", "t_maxx=5"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: unknown config key 't_maxx'")


@pytest.mark.parametrize("alg", ["iql", "vdn", "qmix"])
def test_value_methods_train_on_lbforaging(run_main, alg):
    require("lbforaging")
    code, result, err = run_main(alg, "gymma", "env_args.key=lbforaging:Foraging-8x8-2p-3f-v3",
                                 "env_args.time_limit=25", "t_max=400", "batch_size=4", "test_nepisode=2",
                                 "save_model=False", "seed=4")
    assert code == 0, err
    assert result["t_env"] >= 400 and "test_return_mean" in result
    assert "n_agents=2 n_actions=6" in err and "loss" in err


@pytest.mark.parametrize("alg", ["iql", "vdn", "qmix"])
def test_value_methods_train_on_smax_3m(run_main, alg):
    require("jaxmarl")
    code, result, err = run_main(alg, "smax", "env_args.map_name=3m", "runner=parallel", "batch_size_run=4",
                                 "t_max=300", "batch_size=4", "test_nepisode=4", "save_model=False", "seed=2")
    assert code == 0, err
    assert result["t_env"] >= 300 and 0.0 <= result["test_battle_won_mean"] <= 1.0
    assert "n_agents=3 n_actions=8" in err
