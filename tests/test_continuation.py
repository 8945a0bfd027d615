"""Extending a finished run is exact: ``t_max=T`` then resume to 2T equals 2T straight, with T off every
checkpoint, test and log boundary (the final test draws no training randomness and the final checkpoint is
written before the final log flush)."""
from __future__ import annotations

import pytest

from concord.utils.checkpoint import find_checkpoint, load_checkpoint
from tests.test_resume import COMMON, _metrics, _series_after, assert_same

CASES = {
    "qmix": ["batch_size=4", "epsilon_anneal_time=100", "target_update_interval=3"],
    "mappo": ["rollout_episodes=7", "ppo_epochs=2", "ppo_minibatches=2"],
}


@pytest.mark.parametrize("alg", list(CASES))
def test_extending_a_finished_run_equals_a_straight_run(run_main, alg):
    t = 100  # tests every 40 and logs every 24 steps: 100 is on neither, and on no checkpoint
    args = [*COMMON, *CASES[alg], "save_model_interval=1000"]
    code, straight, err = run_main(alg, "chain_test", *args, f"t_max={2 * t}")
    assert code == 0, err
    code, first, err = run_main(alg, "chain_test", *args, f"t_max={t}")
    assert code == 0, err
    assert first["t_env"] == t
    code, extended, err = run_main(alg, "chain_test", f"t_max={2 * t}", f"checkpoint_path={first['models_dir']}")
    assert code == 0, err
    assert_same(load_checkpoint(find_checkpoint(straight["models_dir"], 0))["learner"],
                load_checkpoint(find_checkpoint(extended["models_dir"], 0))["learner"])
    ma, mb = _metrics(straight), _metrics(extended)
    for key in ("return_mean", "test_return_mean", "loss"):
        sa, sb = _series_after(ma, key, t), _series_after(mb, key, t)
        assert sa and sa == sb, key


def test_tests_draw_no_training_randomness(run_main):
    """Test phases restore every random stream, so a resume may test more often and more (safe keys) and still
    train exactly as the uninterrupted run."""
    args = [*COMMON, *CASES["qmix"], "save_model_interval=1000"]
    code, straight, err = run_main("qmix", "chain_test", *args, "t_max=120")
    assert code == 0, err
    code, first, err = run_main("qmix", "chain_test", *args, "t_max=60")
    assert code == 0, err
    code, extended, err = run_main("qmix", "chain_test", "t_max=120", "test_interval=8", "test_nepisode=3",
                                   f"checkpoint_path={first['models_dir']}")
    assert code == 0, err
    assert_same(load_checkpoint(find_checkpoint(straight["models_dir"], 0))["learner"],
                load_checkpoint(find_checkpoint(extended["models_dir"], 0))["learner"])
