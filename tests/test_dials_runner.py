"""runner=dials / trainer=dials end to end: both domains, the gs and untrained_dials options, AIP weights reaching
the simulators, exact resume, and identical results on every backend (processes, Ray, in process)."""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys

import pytest
import torch

from concord.config import load_config
from concord.run import Experiment
from concord.utils.checkpoint import find_checkpoint, load_checkpoint
from tests.conftest import ROOT
from tests.test_interrupts import _wait_for
from tests.test_resume import assert_same

SMALL = ["env_args.episode_limit=20", "t_max=120", "test_interval=60", "test_nepisode=2", "log_interval=60",
         "aip_dataset_size=40", "aip_epochs=2", "aip_batch_size=16", "dials_aip_period=60", "use_tensorboard=False",
         "seed=3", "hidden_dim=32", "critic_hidden_dim=32"]


@pytest.mark.parametrize("env,mode", [("dials_traffic", "dials"), ("dials_warehouse", "dials"),
                                      ("dials_traffic", "gs"), ("dials_warehouse", "untrained_dials")])
def test_dials_trains_end_to_end(run_main, env, mode):
    code, result, err = run_main("dials", env, *SMALL, "dials_backend=inline", f"dials_mode={mode}",
                                 "save_model=False")
    assert code == 0, err
    assert result["t_env"] >= 120 and "test_return_mean" in result
    assert "policy_loss" in err and "dials_seconds_agents" in err and "dials_peak_rss_mb_total" in err
    assert ("aip_ce_fresh" in err) == (mode == "dials")
    if env == "dials_traffic":
        assert result["test_surrogate_traffic_model_mean"] == 1.0  # every traffic result is labelled surrogate


def _experiment(tmp_path, *updates):
    cfg = load_config("dials", "dials_traffic", [*SMALL, f"local_results_path={tmp_path}", "progress_bar=False",
                                                 "save_model=False", *updates])
    return Experiment(cfg)


@pytest.mark.slow  # spawns 2 worker processes (~10-25 s on a loaded 2-core machine)
def test_the_simulators_sample_from_the_weights_of_each_retraining(tmp_path):
    """The reference code's bug: its workers never returned the trained AIPs to the simulators."""
    exp = _experiment(tmp_path, "dials_backend=processes", "dials_workers=2")
    try:
        ag = exp.learner
        seen = [ag.simulator_aip_weights()]
        for t in (0, 60):
            ag.retrain_aips(t)
            seen.append(ag.simulator_aip_weights())
            for i in range(4):  # what the main process got back is what the simulator uses
                assert_same(ag.aip_states[i]["aip"], seen[-1][i])
        for before, after in zip(seen, seen[1:]):
            for i in range(4):
                assert any(not torch.equal(before[i][k], after[i][k]) for k in before[i]), f"agent {i} unchanged"
    finally:
        exp.close()


def _final_learner(result):
    return load_checkpoint(find_checkpoint(result["models_dir"], 0))["learner"]


@pytest.mark.parametrize("backend", ["inline", pytest.param("processes", marks=pytest.mark.slow)])  # 2 x 2 spawns
def test_resume_is_exact(run_main, backend):
    """Bit for bit: every agent's learner and AIP with its optimiser, their random states and the schedule; with
    the processes backend, two agents per worker (each swaps in its own random state, whatever the grouping)."""
    args = [*SMALL, f"dials_backend={backend}", "dials_workers=2", "t_max=160", "save_model_interval=80"]
    code, straight, err = run_main("dials", "dials_warehouse", *args)
    assert code == 0, err
    code, resumed, err = run_main("dials", "dials_warehouse", *args, f"checkpoint_path={straight['models_dir']}",
                                  "load_step=80")
    assert code == 0, err
    assert "resumed from" in err and resumed["t_env"] == straight["t_env"]
    a, b = _final_learner(straight), _final_learner(resumed)
    assert set(a["agents"]) == {0, 1, 2, 3} and a["last_aip_t"] == 120 and a["aip_fits"] == 3
    a.pop("seconds"), b.pop("seconds")  # wall-clock totals
    assert_same(a, b)
    assert straight["test_return_mean"] == resumed["test_return_mean"]


@pytest.mark.slow
def test_processes_and_ray_backends_give_identical_results(run_main):
    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed (pip install 'ray'): the ray backend is an optional extra")
    args = [*SMALL, "t_max=80", "save_model_interval=1000", "dials_workers=2"]
    runs = []
    for backend in ("processes", "ray"):
        code, result, err = run_main("dials", "dials_traffic", *args, f"dials_backend={backend}")
        assert code == 0, err
        runs.append((result, _final_learner(result)))
    (ra, a), (rb, b) = runs
    a.pop("seconds"), b.pop("seconds")
    assert_same(a, b)
    assert ra["test_return_mean"] == rb["test_return_mean"]


@pytest.mark.slow  # three short runs, one with 2 spawned workers (~30-60 s on a loaded 2-core machine)
def test_ctrl_c_during_a_processes_run_leaves_a_checkpoint_that_resumes_exactly(run_main, tmp_path):
    """Ctrl-C reaches the whole foreground process group, workers included: they must ignore it, so that the main
    process can finish the round, fetch every agent's state from the workers and checkpoint."""
    keys = [*SMALL, "dials_workers=2", "log_interval=20", "save_model_interval=100000000"]
    err_path = str(tmp_path / "stderr.txt")
    with open(err_path, "w") as err_file:
        proc = subprocess.Popen([sys.executable, "main.py", "--config=dials", "--env-config=dials_traffic", "with",
                                 f"local_results_path={tmp_path / 'signalled'}", "progress_bar=False", *keys,
                                 "dials_backend=processes", "t_max=100000000"],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=err_file, start_new_session=True)
        try:
            _wait_for(err_path, "t_env: ", proc, timeout=120)  # training is under way (two console blocks)
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the main process and its workers
            out, _ = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    with open(err_path) as f:
        err = f.read()
    assert proc.returncode == 130, err[-3000:]
    assert out == b"" and "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1].startswith("interrupted: SIGINT: stopped at t_env=")
    models = tmp_path / "signalled" / "models"
    (run,) = os.listdir(models)
    ck = find_checkpoint(str(models / run), 0)
    t_end = int(os.path.basename(ck)) + 40
    code, resumed, e = run_main("dials", "dials_traffic", *keys, "dials_backend=processes", f"t_max={t_end}",
                                f"checkpoint_path={ck}")
    assert code == 0, e
    code, straight, e = run_main("dials", "dials_traffic", *keys, "dials_backend=inline", f"t_max={t_end}")
    assert code == 0, e
    a, b = _final_learner(straight), _final_learner(resumed)
    a.pop("seconds"), b.pop("seconds")
    assert_same(a, b)
    assert resumed["test_return_mean"] == straight["test_return_mean"]
