"""Experiment grids: a yaml file declaring algorithms × envs × settings × seeds, expanded into runs.

```yaml
name: matrix_smoke                # the sweep's name; its report is docs/results/matrix_smoke.md
env: matrix_game                  # or envs: [smax, ...] (an entry may be a mapping {env: smax, with: {...}, label: ...};
                                  #   an env entry's label names its task in the report)
algs: [vdn, qmix]                 # --config names or paths (an entry may be {alg: qmix, with: {...}, label: ...})
seeds: [1, 2, 3]
with: {t_max: 300}                # settings for every run
grid: {lr: [0.0005, 0.001]}       # optional: the product over these keys
metric: test_return_mean          # optional: the report's metric (default test_return_mean)
style: median_iqr                 # optional: the report's curves (median_iqr | mean_ci95)
parallel: 2                       # optional: runs at a time locally (the command line's --parallel wins)
max_retries: 1                    # optional: retries of a failed run
notes: docs/results/x_notes.md    # optional: a markdown file the report includes (what the results say)
```

Every run has a stable id from its alg, env, settings and seed, so a second invocation finds the runs it already
did. Each run carries the sweep's name as its ``label`` (``<sweep>.<group label>``), so reports find it.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from concord.errors import ConfigError

GRID_KEYS = {"name", "env", "envs", "algs", "seeds", "with", "grid", "metric", "style", "parallel", "max_retries",
             "description", "resources", "notes"}


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: ``python main.py --config=alg --env-config=env with updates...``."""

    sweep: str
    alg: str
    env: str
    seed: int
    settings: tuple[tuple[str, Any], ...]  # ordered key=value settings (sweep-wide, entry, grid point)
    label: str  # group label within the sweep (alg/env entry labels, grid point)
    task_label: str = ""  # the env entry's label: names the run's task in the report (not part of the run id)

    @property
    def run_id(self) -> str:
        """A readable, stable id: ``<alg>_<env>[_<label>]_seed<seed>_<hash of the settings>``."""
        blob = json.dumps([self.alg, self.env, self.seed, self.settings], sort_keys=True, default=str)
        digest = hashlib.sha1(blob.encode()).hexdigest()[:8]
        alg = os.path.splitext(os.path.basename(self.alg))[0]
        tag = f"_{self.label}" if self.label else ""
        return _safe(f"{alg}_{self.env}{tag}_seed{self.seed}_{digest}")

    def updates(self) -> list[str]:
        """The ``with`` arguments of this run (its seed and label last)."""
        out = [f"{k}={_cli_value(v)}" for k, v in self.settings]
        label = f"{self.sweep}.{self.label}" if self.label else self.sweep
        return out + [f"seed={self.seed}", f"label={_cli_value(label)}"]


@dataclass
class Grid:
    name: str
    runs: list[RunSpec]
    metric: str = "test_return_mean"
    style: str = "median_iqr"
    parallel: int = 2
    max_retries: int = 1
    resources: dict[str, float] = field(default_factory=lambda: {"num_cpus": 1})
    path: str = ""
    notes: str = ""  # a markdown file the report includes


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _cli_value(v: Any) -> str:
    """A value as the command line parses it back (``concord.config.parse_value``)."""
    if isinstance(v, str):
        return v
    return json.dumps(v) if isinstance(v, (list, dict)) else repr(v) if not isinstance(v, bool) else str(v)


def _entries(value: Any, key: str, source: str) -> list[dict[str, Any]]:
    """``[qmix, {alg: vdn, with: {...}, label: x}]`` -> [{key: 'qmix', 'with': {}, 'label': ''}, ...]."""
    if isinstance(value, (str, dict)):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{source}: '{key}s' must be a non-empty list")
    out = []
    for item in value:
        if isinstance(item, str):
            out.append({key: item, "with": {}, "label": ""})
        elif isinstance(item, dict) and key in item and set(item) <= {key, "with", "label"}:
            out.append({key: str(item[key]), "with": dict(item.get("with") or {}), "label": str(item.get("label", ""))})
        else:
            raise ConfigError(f"{source}: each entry of '{key}s' is a name or {{{key}: NAME, with: {{...}}, label: ...}}")
    return out


def _flatten(prefix: str, d: dict[str, Any]) -> list[tuple[str, Any]]:
    """{env_args: {map_name: 3m}} -> [("env_args.map_name", "3m")] (a dotted key may also be given directly)."""
    out = []
    for k, v in d.items():
        full = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out += _flatten(f"{full}.", v)
        else:
            out.append((full, v))
    return out


def load_grid(path: str) -> Grid:
    """Parse and expand a grid file; every mistake is a one-line ``ConfigError``."""
    if not os.path.isfile(path):
        raise ConfigError(f"sweep file '{path}' does not exist")
    with open(path) as f:
        try:
            spec = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from e
    if not isinstance(spec, dict):
        raise ConfigError(f"{path} must hold a mapping")
    unknown = sorted(set(spec) - GRID_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key '{unknown[0]}'; known: {', '.join(sorted(GRID_KEYS))}")
    for key in ("name", "algs", "seeds"):
        if key not in spec:
            raise ConfigError(f"{path}: '{key}' is required")
    if ("env" in spec) == ("envs" in spec):
        raise ConfigError(f"{path}: give exactly one of 'env' and 'envs'")
    name = _safe(str(spec["name"]))
    seeds = spec["seeds"]
    if isinstance(seeds, int):
        seeds = list(range(1, seeds + 1))
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ConfigError(f"{path}: 'seeds' must be a list of ints (or a count)")
    common = _flatten("", dict(spec.get("with") or {}))
    grid = dict(spec.get("grid") or {})
    for k, v in grid.items():
        if not isinstance(v, list) or not v:
            raise ConfigError(f"{path}: grid key '{k}' must map to a non-empty list of values")
    points = [tuple(zip(grid, combo)) for combo in itertools.product(*grid.values())] if grid else [()]
    envs = _entries(spec.get("env", spec.get("envs")), "env", path)
    algs = _entries(spec["algs"], "alg", path)
    runs = []
    for env, alg, point, seed in itertools.product(envs, algs, points, seeds):
        merged: dict[str, Any] = {}  # a later level (env entry, alg entry, grid point) overrides an earlier one
        for k, v in common + _flatten("", env["with"]) + _flatten("", alg["with"]) + list(point):
            merged[k] = v
        settings = tuple(merged.items())
        labels = [x for x in (env["label"], alg["label"]) if x]
        labels += [f"{k}={_cli_value(v)}" for k, v in point]
        runs.append(RunSpec(name, alg["alg"], env["env"], seed, settings, _safe("_".join(labels)),
                            _safe(env["label"])))
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: two runs of the grid are identical (same alg, env, settings and seed)")
    style = spec.get("style", "median_iqr")
    if style not in ("median_iqr", "mean_ci95"):
        raise ConfigError(f"{path}: style must be median_iqr or mean_ci95, got {style!r}")
    notes = str(spec.get("notes", ""))
    if notes and not os.path.isfile(notes):
        raise ConfigError(f"{path}: notes file '{notes}' does not exist")
    return Grid(name, runs, str(spec.get("metric", "test_return_mean")), style, int(spec.get("parallel", 2)),
                int(spec.get("max_retries", 1)), dict(spec.get("resources") or {"num_cpus": 1}), path, notes)
