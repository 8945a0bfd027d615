"""Checkpoints resume exactly: N steps + resume to 2N equals 2N steps straight."""
from __future__ import annotations

import json
import os

import torch

from concord.utils.checkpoint import find_checkpoint, load_checkpoint

COMMON = ["plugins=[tests.chain_env]", "env=test_chain", "env_args.limit=4", "env_args.terminate_at=0",
          "env_args.crash_at=0", "env_args.crash_exit=False", "env_args.crash_file=''", "batch_size=4",
          "test_interval=40", "test_nepisode=2", "log_interval=24", "epsilon_anneal_time=100",
          "target_update_interval=3", "use_tensorboard=False", "seed=5", "standardise_rewards=True"]


def _metrics(result):
    with open(os.path.join(result["results_dir"], "metrics.json")) as f:
        return json.load(f)


def _series_after(metrics, key, t0):
    m = metrics[key]
    return [(s, v) for s, v in zip(m["steps"], m["values"]) if s > t0]


def test_resume_is_identical_to_an_uninterrupted_run(run_main):
    n = 120
    code, straight, err = run_main("qmix", "chain_test", *COMMON, f"t_max={2 * n}", f"save_model_interval={n}")
    assert code == 0, err
    first_ck = find_checkpoint(straight["models_dir"], n)
    t_first = int(os.path.basename(first_ck))
    assert n <= t_first < 2 * n
    code, resumed, err = run_main("qmix", "chain_test", *COMMON, f"t_max={2 * n}", f"save_model_interval={n}",
                                  f"checkpoint_path={straight['models_dir']}", f"load_step={n}")
    assert code == 0, err
    assert resumed["t_env"] == straight["t_env"]
    a = load_checkpoint(find_checkpoint(straight["models_dir"], 0))["learner"]
    b = load_checkpoint(find_checkpoint(resumed["models_dir"], 0))["learner"]
    for part in ("agent", "target_agent", "mixer", "target_mixer"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k} differs"
    ma, mb = _metrics(straight), _metrics(resumed)
    for key in ("return_mean", "test_return_mean", "loss", "epsilon"):
        sa, sb = _series_after(ma, key, t_first), _series_after(mb, key, t_first)
        assert sa and sa == sb, key
    assert straight["test_return_mean"] == resumed["test_return_mean"]
