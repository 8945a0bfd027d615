"""Packaging (pyproject.toml): ``concord`` imports outside the checkout and the ``concord`` console script runs.

Both run in a subprocess started in a temporary directory with ``PYTHONPATH`` removed, so that only the installed
package (``make venv`` installs it editable) can be found, not the repository's ``src/``.
"""
from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

DIST = "concord-marl"


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def _installed() -> bool:
    try:
        importlib.metadata.distribution(DIST)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def test_concord_imports_outside_the_checkout_and_finds_its_configs(tmp_path: Path) -> None:
    code = ("import os, concord, concord.cli; from concord.config import CONFIG_DIR; "
            "print(os.path.isfile(os.path.join(CONFIG_DIR, 'default.yaml')))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_clean_env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, (f"`import concord` fails outside the repository; install the package with "
                                  f"`make venv` or `pip install --no-deps -e .`:\n{proc.stderr}")
    assert proc.stdout.strip() == "True"  # an editable install keeps config/ next to src/


def test_console_script_reports_an_unknown_config_in_one_line(tmp_path: Path) -> None:
    if not _installed():
        pytest.skip(f"{DIST} is not installed in this environment (`make venv` or `pip install --no-deps -e .` "
                    f"installs it and its `concord` console script)")
    script = Path(sys.executable).parent / ("concord.exe" if os.name == "nt" else "concord")
    assert script.is_file(), f"{DIST} is installed but its console script {script} is missing"
    proc = subprocess.run([str(script), "--config=no_such_alg", "--env-config=matrix_game"], cwd=tmp_path,
                          env=_clean_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "no_such_alg" in errors[0], proc.stderr
    assert proc.stdout == ""
