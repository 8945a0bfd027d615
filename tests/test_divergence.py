"""A non-finite loss, gradient or parameter stops the run with one line and a non-zero exit, keeping the last
good checkpoint and writing none of the broken weights; ``on_nonfinite=skip`` undoes such updates instead."""
from __future__ import annotations

import os

import torch

from concord.utils.checkpoint import checkpoint_steps, load_checkpoint
from concord.utils.divergence import nonfinite_stats

KEYS = ["env_args.limit=5", "batch_size=4", "use_tensorboard=False", "seed=1", "test_interval=1000",
        "log_interval=1000", "t_max=400", "lr=1e6"]


def _finite(state) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in state.values() if torch.is_tensor(t) and t.is_floating_point())


def test_lr_1e6_stops_nonzero_and_keeps_the_last_good_checkpoint(run_main, tmp_path):
    code, result, err = run_main("qmix", "chain_test", *KEYS, "save_model_interval=5")
    assert code == 1 and result is None
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert line.startswith("error: training diverged at t_env=") and "the last good checkpoint is" in line
    t_bad = int(line.split("t_env=")[1].split(":")[0])
    models = os.path.join(tmp_path, "models")
    (run,) = os.listdir(models)
    steps = checkpoint_steps(os.path.join(models, run))
    assert steps and max(steps) < t_bad  # nothing written at or after the diverged update
    assert line.endswith(os.path.join(models, run, str(max(steps))))
    last = load_checkpoint(os.path.join(models, run, str(max(steps))))["learner"]
    assert _finite(last["agent"]) and _finite(last["mixer"])


def test_skip_undoes_nonfinite_updates(run_main):
    code, result, err = run_main("qmix", "chain_test", *KEYS, "on_nonfinite=skip", "t_max=60")
    assert code == 0, err
    assert "undone (on_nonfinite=skip)" in err
    state = load_checkpoint(os.path.join(result["models_dir"], str(result["t_env"])))["learner"]
    assert _finite(state["agent"]) and _finite(state["mixer"])


def test_only_losses_and_gradient_norms_are_guarded():
    stats = {"loss": float("inf"), "critic_grad_norm": float("nan"), "td_error_abs": float("nan"), "q_taken": 1.0}
    assert nonfinite_stats(stats).keys() == {"loss", "critic_grad_norm"}
