"""Checkpoints resume exactly, for every learner family: N steps + resume to 2N equals 2N steps straight."""
from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import pytest
import torch

from concord.utils.checkpoint import find_checkpoint, load_checkpoint

COMMON = ["plugins=[tests.chain_env]", "env=test_chain", "env_args.limit=4", "env_args.terminate_at=0",
          "env_args.crash_at=0", "env_args.crash_exit=False", "env_args.crash_file=''",
          "test_interval=40", "test_nepisode=2", "log_interval=24", "use_tensorboard=False", "seed=5"]
# per learner family: its keys, and its logged series that must match after the checkpoint
CASES = {
    "qmix": (["batch_size=4", "epsilon_anneal_time=100", "target_update_interval=3", "standardise_rewards=True"],
             ("return_mean", "test_return_mean", "loss", "epsilon")),
    # 7 episodes per update with 1 per round (30 by the checkpoint): the checkpoint falls between updates, with rollouts in storage
    "mappo": (["rollout_episodes=7", "ppo_epochs=2", "ppo_minibatches=2", "standardise_rewards=True"],
              ("return_mean", "test_return_mean", "loss", "rollout_entropy", "approx_kl")),
    "ippo": (["rollout_episodes=7", "value_norm=popart", "critic_use_rnn=False"],
             ("return_mean", "test_return_mean", "loss", "value_loss")),
    # BN-DAG: learned DAG nets and their stored noise, density annealing over t_max, the decentralised test phase
    "bn_dag": (["runner=episode", "batch_size_run=1", "rollout_episodes=7", "ppo_epochs=2", "bn_perm_net=mlp"],
               ("return_mean", "test_return_mean", "loss", "aux_density_reg", "dag_density", "bn_kl_empty",
                "test_decentralised_return_mean")),
    "vast_ac": (["rollout_episodes=7", "vast_eta=0.5"],
                ("return_mean", "test_return_mean", "loss", "critic_loss", "vast_policy_loss")),
}


def _metrics(result):
    with open(os.path.join(result["results_dir"], "metrics.json")) as f:
        return json.load(f)


def _series_after(metrics, key, t0):
    m = metrics[key]
    return [(s, v) for s, v in zip(m["steps"], m["values"]) if s > t0]


def assert_same(a: Any, b: Any, where: str = "learner") -> None:
    """Nested state dicts are identical: tensors and arrays bit for bit."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif torch.is_tensor(a):
        assert torch.equal(a, b), f"{where} differs"
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), f"{where} differs"
    else:
        assert a == b, f"{where} differs"


@pytest.mark.parametrize("alg", list(CASES))
def test_resume_is_identical_to_an_uninterrupted_run(run_main, alg):
    keys, series = CASES[alg]
    n = 120
    args = [*COMMON, *keys, f"t_max={2 * n}", f"save_model_interval={n}"]
    code, straight, err = run_main(alg, "chain_test", *args)
    assert code == 0, err
    first_ck = find_checkpoint(straight["models_dir"], n)
    t_first = int(os.path.basename(first_ck))
    assert n <= t_first < 2 * n
    code, resumed, err = run_main(alg, "chain_test", *args, f"checkpoint_path={straight['models_dir']}",
                                  f"load_step={n}")
    assert code == 0, err
    assert resumed["t_env"] == straight["t_env"]
    assert_same(load_checkpoint(find_checkpoint(straight["models_dir"], 0))["learner"],
                load_checkpoint(find_checkpoint(resumed["models_dir"], 0))["learner"])
    ma, mb = _metrics(straight), _metrics(resumed)
    for key in series:
        sa, sb = _series_after(ma, key, t_first), _series_after(mb, key, t_first)
        assert sa and sa == sb, key
    assert straight["test_return_mean"] == resumed["test_return_mean"]
    if alg != "qmix":  # the on-policy storage held episodes at the checkpoint, and they resumed
        assert load_checkpoint(first_ck)["learner"]["storage"]["rounds"]
