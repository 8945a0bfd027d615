"""Bad input stops with one line before any work (no sacred run); plugin lists of env yaml, algorithm yaml and
command line combine; the console shows the latest values, counters as integers."""
from __future__ import annotations

import logging
import os

import pytest

from concord.config import load_config
from concord.utils.logger import Logger


@pytest.mark.parametrize("update, message", [
    ("seed=abc", "error: config key 'seed' must be an integer or null"),
    ("gamma=2", "error: config key 'gamma' must be in [0, 1]"),
    ("evaluate=True", "error: evaluate=True needs checkpoint_path"),
    ("on_nonfinite=ignore", "error: config key 'on_nonfinite' must be one of stop, skip"),
])
def test_bad_input_is_one_line_before_any_work(run_main, tmp_path, update, message):
    code, result, err = run_main("qmix", "chain_test", update)
    assert code == 2 and result is None
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(message), err
    assert not os.path.exists(os.path.join(tmp_path, "sacred"))


def test_plugins_from_env_and_algorithm_yamls_and_command_line_combine(tmp_path):
    alg = tmp_path / "weighted_vdn.yaml"
    alg.write_text("name: weighted_vdn\nplugins: [examples.weighted_mixer]\nmixer: weighted\n")
    cfg = load_config(str(alg), "chain_test", ["plugins=[tests.chain_env]"])
    assert cfg["plugins"] == ["tests.chain_env", "examples.weighted_mixer"]
    assert cfg["env"] == "test_chain" and cfg["mixer"] == "weighted" and cfg["weighted_temperature"] == 1.0


def test_console_shows_latest_values_and_integer_counters(caplog):
    caplog.set_level(logging.INFO)
    lg = Logger()
    for t, (ret, failures) in enumerate([(44.0, 1), (20.0, 1), (20.0, 2), (44.0, 2), (20.0, 1)]):
        lg.log_stats({"test_return_mean": ret, "env_failures": failures, "loss": 0.125 * (t + 1)}, t)
    lg.summarise(4, 10)
    lines = {ln.split()[0]: ln.split()[1] for ln in caplog.text.splitlines() if ln.startswith("  ")}
    assert lines == {"env_failures": "1", "loss": "0.6250", "test_return_mean": "20"}
