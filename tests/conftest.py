"""Shared helpers: running ``main.py`` in process with results in a temporary directory."""
from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
from typing import Any

import pytest
import torch

def require(module: str) -> None:
    """Skip unless ``module`` is installed, without importing it (jaxmarl's import rebinds sys.stdout)."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
torch.set_num_threads(1)


@pytest.fixture
def run_main(tmp_path, capsys, caplog):
    """``run_main("qmix", "matrix_game", "t_max=100")`` -> (exit code, JSON result or None, stderr + log text)."""
    import main as cli

    caplog.set_level(logging.INFO)

    def _run(alg: str, env: str, *updates: str) -> tuple[int, dict[str, Any] | None, str]:
        argv = [f"--config={alg}", f"--env-config={env}", "with", f"local_results_path={tmp_path}",
                "progress_bar=False", *updates]
        code = cli.main(argv)
        out, err = capsys.readouterr()
        err += caplog.text
        caplog.clear()
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        return code, (json.loads(lines[-1]) if lines else None), err

    return _run


def build_parts(alg: str, env: str, *updates: str) -> tuple[Any, Any, Any]:
    """(args, episode runner, controller) of ``--config=alg --env-config=env with *updates``, torch and numpy
    seeded 0, for unit tests that drive the parts directly."""
    import numpy as np

    from concord.config import load_config, to_namespace
    from concord.registry import MACS, RUNNERS

    args = to_namespace(load_config(alg, env, list(updates)))
    torch.manual_seed(0)
    np.random.seed(0)
    runner = RUNNERS.get("episode")(args, args.seed)
    mac = MACS.get(args.mac)(runner.env_info, args, torch.device("cpu"))
    return args, runner, mac
