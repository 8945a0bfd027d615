"""Learning-curve aggregation over seeds."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from concord.plot import aggregate, load_runs, plot


def _fake_run(root, idx, name, values, steps=(0, 10, 20)):
    d = os.path.join(root, str(idx))
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"name": name, "env": "smax", "env_args": {"map_name": "3m"}, "label": ""}, f)
    with open(os.path.join(d, "metrics.json"), "w") as f:
        json.dump({"test_return_mean": {"steps": list(steps), "values": list(values)}}, f)


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
    out = plot([str(tmp_path)], "test_return_mean", "mean_ci95", str(tmp_path / "c.png"))
    assert os.path.getsize(out) > 1000


def test_no_runs_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match="no runs"):
        plot([str(tmp_path)], "test_return_mean", "median_iqr", str(tmp_path / "c.png"))
