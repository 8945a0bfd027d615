"""Sweeps and reports: grid expansion, execution (skipping finished runs, resuming killed ones), Ray, statistics."""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from concord.errors import ConfigError
from concord.experiments.grid import load_grid
from concord.experiments.report import iqm_ci, write_report
from concord.experiments.sweep import Sweep, command, read_status, run_dir, write_status
from tests.conftest import ROOT

TINY = {"t_max": 20, "test_interval": 10, "test_nepisode": 1, "log_interval": 10, "use_tensorboard": False,
        "save_model": False}


def _grid(tmp_path, **spec) -> str:
    path = tmp_path / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def test_grid_expands_algs_envs_settings_and_seeds(tmp_path):
    g = load_grid(_grid(tmp_path, name="g", env="matrix_game",
                        algs=["vdn", {"alg": "qmix", "with": {"mixing_embed_dim": 8}, "label": "small"}],
                        seeds=[1, 2], **{"with": {"t_max": 30}}, grid={"lr": [0.1, 0.2], "gamma": [0.9]}))
    assert len(g.runs) == 2 * 2 * 2  # algs x lr points x seeds
    qmix = [r for r in g.runs if r.alg == "qmix"]
    assert all(("mixing_embed_dim", 8) in r.settings and ("t_max", 30) in r.settings for r in qmix)
    assert not any(("mixing_embed_dim", 8) in r.settings for r in g.runs if r.alg == "vdn")
    r = qmix[0]
    assert r.updates()[-2:] == [f"seed={r.seed}", f"label=g.{r.label}"] and r.label.startswith("small_")
    assert len({r.run_id for r in g.runs}) == 8
    assert load_grid(g.path).runs[3].run_id == g.runs[3].run_id  # stable across invocations
    assert len(load_grid(_grid(tmp_path, name="h", envs=["matrix_game", "coordination_game"], algs=["vdn"],
                               seeds=3)).runs) == 6


def test_an_env_entrys_label_names_its_task_and_curves_keep_the_other_labels(tmp_path):
    from concord.experiments.report import group_name, task_of

    g = load_grid(_grid(tmp_path, name="t", envs=[{"env": "matrix_game", "label": "climb",
                                                   "with": {"env_args": {"payoff": [[1, 0], [0, 2]]}}}],
                        algs=["vdn", {"alg": "qmix", "label": "big"}], seeds=[1]))
    vdn, qmix = g.runs
    assert ("env_args.payoff", [[1, 0], [0, 2]]) in vdn.settings
    assert task_of({"env_args": {"n_agents": 2}}, vdn) == "matrix_game climb" == task_of({}, qmix)
    assert (group_name(vdn), group_name(qmix)) == ("vdn", "qmix (big)")
    assert vdn.label == "climb" and vdn.run_id.startswith("vdn_matrix_game_climb_seed1_")
    over = load_grid(_grid(tmp_path, name="o", env="matrix_game", algs=[{"alg": "vdn", "with": {"lr": 0.1}}],
                           seeds=[1], **{"with": {"lr": 0.5, "t_max": 9}}))
    assert over.runs[0].settings == (("lr", 0.1), ("t_max", 9))  # the alg entry's value replaces the sweep's


@pytest.mark.parametrize("spec,needle", [
    ({"name": "x", "env": "matrix_game", "algs": ["vdn"], "seeds": [1], "sedes": 2}, "unknown key 'sedes'"),
    ({"name": "x", "algs": ["vdn"], "seeds": [1]}, "exactly one of 'env' and 'envs'"),
    ({"name": "x", "env": "matrix_game", "algs": ["vdn"], "seeds": ["a"]}, "'seeds' must be a list of ints"),
    ({"name": "x", "env": "matrix_game", "algs": ["vdn"], "seeds": [1], "grid": {"lr": 0.1}}, "non-empty list"),
    ({"name": "x", "env": "matrix_game", "algs": ["vdn"], "seeds": [1], "notes": "nope.md"}, "notes file 'nope.md'"),
])
def test_bad_grids_are_one_line_errors(tmp_path, spec, needle):
    with pytest.raises(ConfigError, match=needle):
        load_grid(_grid(tmp_path, **spec))


def test_a_sweep_runs_skips_finished_runs_and_reports_byte_identically(tmp_path):
    path = _grid(tmp_path, name="smoke", env="matrix_game", algs=["vdn", "qmix"], seeds=[1, 2], parallel=2,
                 **{"with": TINY})
    grid = load_grid(path)
    root = str(tmp_path / "sweeps")
    summary = Sweep(grid, root).run()
    assert summary["done"] == 4 and not summary["failed"]
    for spec in grid.runs:
        st = read_status(run_dir(root, spec))
        assert st["status"] == "done" and st["attempts"] == 1 and st["result"]["t_env"] >= 20
        assert "label=smoke" in " ".join(st["command"])
    Sweep(grid, root).run()  # a second invocation finds every run done
    assert all(read_status(run_dir(root, s))["attempts"] == 1 for s in grid.runs)
    out = str(tmp_path / "docs")
    md = write_report(grid, root, out)
    text = open(md).read()
    assert "| vdn | 2 |" in text and "| qmix | 2 |" in text and os.path.isfile(os.path.join(out, "smoke_matrix_game.png"))
    first = {f: open(os.path.join(out, f), "rb").read() for f in os.listdir(out)}
    write_report(grid, root, out)
    assert first == {f: open(os.path.join(out, f), "rb").read() for f in os.listdir(out)}


def test_a_failed_run_is_reported_with_its_error_and_retried(tmp_path):
    path = _grid(tmp_path, name="bad", env="matrix_game", algs=["vdn"], seeds=[1], max_retries=1,
                 **{"with": {**TINY, "lr": -1.0}})
    grid = load_grid(path)
    summary = Sweep(grid, str(tmp_path / "s")).run()
    (run_id, error), = summary["failed"].items()
    assert "config key 'lr' must be in (0, inf)" in error
    assert read_status(run_dir(str(tmp_path / "s"), grid.runs[0]))["attempts"] == 2  # one retry


def test_a_killed_run_resumes_from_its_checkpoint(tmp_path):
    path = _grid(tmp_path, name="kill", env="matrix_game", algs=["vdn"], seeds=[1],
                 **{"with": {**TINY, "t_max": 4000, "save_model": True, "save_model_interval": 50, "test_interval": 4000}})
    grid = load_grid(path)
    root = str(tmp_path / "s")
    spec = grid.runs[0]
    directory = run_dir(root, spec)
    write_status(directory, {"status": "running", "attempts": 1})
    proc = subprocess.Popen(command(spec, directory), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not _has_checkpoint(directory):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _has_checkpoint(directory), "no checkpoint before the kill"
    Sweep(grid, root).run()
    st = read_status(directory)
    assert st["status"] == "done" and st["attempts"] == 2
    assert any(c.startswith("checkpoint_path=") for c in st["command"])
    assert "resumed from" in open(os.path.join(directory, "log.txt")).read()


def test_sigterm_to_the_sweep_stops_its_runs_with_checkpoints(tmp_path):
    """A scheduler's SIGTERM reaches only the sweep's pid: the sweep passes it on, each run saves a checkpoint
    and exits, its status is ``interrupted`` (no retry spent) and the sweep starts nothing new."""
    import psutil

    path = _grid(tmp_path, name="term", env="matrix_game", algs=["vdn"], seeds=[1, 2, 3],
                 **{"with": {**TINY, "t_max": 10 ** 6, "save_model": True, "save_model_interval": 50,
                             "test_interval": 10 ** 6}})
    grid = load_grid(path)
    root = str(tmp_path / "s")
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "main.py"), "sweep", path, "--root", root,
                             "--parallel", "1"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    first = run_dir(root, grid.runs[0])
    deadline = time.time() + 120
    while time.time() < deadline and not _has_checkpoint(first):
        time.sleep(0.2)
    assert _has_checkpoint(first), "no checkpoint in time"
    children = psutil.Process(proc.pid).children(recursive=True)
    assert children, "the run's process is gone"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)
    st = read_status(first)
    assert st["status"] == "interrupted" and st["attempts"] == 1 and "failures" not in st
    assert "checkpoint" in open(os.path.join(first, "log.txt")).read().lower()
    assert read_status(run_dir(root, grid.runs[1]))["status"] == "pending"  # nothing new was started
    assert [r.run_id for r in Sweep(grid, root).pending()] == [r.run_id for r in grid.runs]


def _has_checkpoint(directory: str) -> bool:
    from concord.experiments.sweep import latest_checkpoint

    return latest_checkpoint(directory) is not None


def test_iqm_and_its_interval_match_hand_numbers():
    scores = np.array([1.0, 2, 3, 4, 5, 6, 7, 100])
    iqm, lo, hi = iqm_ci(scores)
    assert iqm == pytest.approx(4.5)  # mean of the middle half: 3, 4, 5, 6
    assert lo <= iqm <= hi and hi < 100
    assert iqm_ci(scores) == (iqm, lo, hi)  # a fixed bootstrap seed


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (pip install 'ray[default]')")
def test_the_ray_path_runs_on_a_local_instance(tmp_path):
    import ray

    path = _grid(tmp_path, name="rays", env="matrix_game", algs=["vdn"], seeds=[1, 2], **{"with": TINY})
    grid = load_grid(path)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = Sweep(grid, str(tmp_path / "s")).run(use_ray=True)
    finally:
        ray.shutdown()
    assert summary["done"] == 2 and not summary["failed"]


def test_sweep_and_report_commands_through_main(tmp_path, capsys):
    import json

    import main as cli

    path = _grid(tmp_path, name="cli", env="matrix_game", algs=["vdn"], seeds=[1], **{"with": TINY})
    root, out = str(tmp_path / "s"), str(tmp_path / "d")
    assert cli.main(["sweep", path, "--root", root, "--parallel", "1"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["done"] == 1 and summary["runs"] == 1
    assert cli.main(["report", path, "--root", root, "--out", out]) == 0
    assert os.path.isfile(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["report"])
    assert cli.main(["sweep", str(tmp_path / "missing.yaml")]) == 2
