"""Learning-curve aggregation over seeds."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from concord.plot import aggregate, load_runs, plot


def _fake_run(root, idx, name, values, steps=(0, 10, 20), map_name="3m", seed=0, resumed_from=None):
    d = os.path.join(root, str(idx))
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"name": name, "env": "smax", "env_args": {"map_name": map_name}, "label": "", "seed": seed}, f)
    with open(os.path.join(d, "metrics.json"), "w") as f:
        json.dump({"test_return_mean": {"steps": list(steps), "values": list(values)}}, f)
    if resumed_from is not None:
        with open(os.path.join(d, "info.json"), "w") as f:
            json.dump({"resumed_from": {"sacred_dir": os.path.join(root, str(resumed_from[0])),
                                        "t_env": resumed_from[1]}}, f)


def test_median_quartiles_and_mean_ci(tmp_path):
    for i, v in enumerate([[0, 1, 2], [0, 2, 4], [0, 3, 6], [0, 4, 8]]):
        _fake_run(tmp_path, i, "qmix", v)
    _fake_run(tmp_path, 9, "lan", [1, 1, 1])
    groups = load_runs([str(tmp_path)], "test_return_mean")
    assert sorted(groups) == ["lan / smax / 3m", "qmix / smax / 3m"] and len(groups["qmix / smax / 3m"]) == 4
    grid, mid, lo, hi = aggregate(groups["qmix / smax / 3m"], "median_iqr", n_points=3)
    assert np.allclose(grid, [0, 10, 20]) and np.allclose(mid, [0, 2.5, 5]) and np.allclose(lo, [0, 1.75, 3.5])
    grid, mean, lo, hi = aggregate(groups["qmix / smax / 3m"], "mean_ci95", n_points=3)
    half = 3.182446 * np.std([2, 4, 6, 8], ddof=1) / 2  # t(0.975, 3) · s / √n
    assert np.allclose(mean[-1], 5) and np.allclose(hi[-1] - mean[-1], half, atol=1e-4)
    (out,) = plot([str(tmp_path)], "test_return_mean", "mean_ci95", str(tmp_path / "c.png"))
    assert os.path.getsize(out) > 1000


def test_no_runs_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match="no runs"):
        plot([str(tmp_path)], "test_return_mean", "median_iqr", str(tmp_path / "c.png"))


def test_a_resumed_run_is_one_curve_and_filters_select_runs(tmp_path):
    _fake_run(tmp_path, 1, "qmix", [0, 1, 2], seed=1)
    _fake_run(tmp_path, 2, "qmix", [9, 3, 4], steps=(20, 30, 40), seed=1, resumed_from=(1, 20))  # resumed at 20
    _fake_run(tmp_path, 3, "qmix", [0, 2, 4], seed=2)
    groups = load_runs([str(tmp_path)], "test_return_mean")
    (runs,) = groups.values()
    assert len(runs) == 2  # two seeds, not three runs
    steps, values = max(runs, key=lambda r: r[0][-1])
    assert steps.tolist() == [0, 10, 20, 30, 40] and values.tolist() == [0, 1, 2, 3, 4]
    assert len(load_runs([str(tmp_path)], "test_return_mean", ["seed=2"])["qmix / smax / 3m"]) == 1


def test_one_figure_per_experiment(tmp_path):
    _fake_run(tmp_path, 1, "qmix", [0, 1, 2])
    _fake_run(tmp_path, 2, "qmix", [0, 1, 2], map_name="8m")
    paths = plot([str(tmp_path)], "test_return_mean", "median_iqr", str(tmp_path / "c.png"))
    assert [os.path.basename(p) for p in paths] == ["c_smax_3m.png", "c_smax_8m.png"]
    (only,) = plot([str(tmp_path)], "test_return_mean", "median_iqr", str(tmp_path / "d.png"),
                   ["env_args.map_name=8m"])
    assert only == str(tmp_path / "d.png")
