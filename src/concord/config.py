"""Loading, merging and validating the configuration before any work starts.

Merge order: ``config/default.yaml`` < ``config/envs/ENV.yaml`` < ``config/algs/ALG.yaml`` < command line.
The default, env and algorithm files *declare* keys (a key they introduce is declared there, once, with
its default); the command line may only set declared keys. Values must have the declared type (an int
is accepted where a float is declared; a declared null accepts anything). All errors are one line.
"""
from __future__ import annotations

import ast
import copy
import os
import random
from types import SimpleNamespace
from typing import Any, Iterable, Mapping

import yaml

from concord.errors import ConfigError

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "config")

# Keys whose values come from a fixed set.
CHOICES: dict[str, tuple[str, ...]] = {
    "target_update_mode": ("hard", "soft"),
    "target_update_unit": ("episodes", "updates"),
    "optimizer": ("rmsprop", "adam"),
    "qtran_inputs": ("hidden", "values"),
    "qplex_weights": ("hypernet", "qatten"),
}
# Keys naming a registry entry: key -> registry attribute in concord.registry (None allowed where noted).
REGISTRY_KEYS: dict[str, tuple[str, bool]] = {
    "env": ("ENVS", False),
    "runner": ("RUNNERS", False),
    "mac": ("MACS", False),
    "learner": ("LEARNERS", False),
    "agent": ("AGENTS", False),
    "mixer": ("MIXERS", True),
    "action_selector": ("ACTION_SELECTORS", False),
}


def _read_yaml(path: str) -> dict[str, Any]:
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of keys to values")
    return data


def resolve_config_file(name: str, kind: str) -> str:
    """``name`` as a file in ``config/<kind>/`` or as a path to a yaml file (for users' own algorithms)."""
    if name.endswith((".yaml", ".yml")) and os.path.isfile(name):
        return name
    path = os.path.join(CONFIG_DIR, kind, f"{name}.yaml")
    if not os.path.isfile(path):
        known = sorted(f[:-5] for f in os.listdir(os.path.join(CONFIG_DIR, kind)) if f.endswith(".yaml"))
        flag = "--config" if kind == "algs" else "--env-config"
        raise ConfigError(f"unknown {flag} '{name}'; known: {', '.join(known)} (or a path to a .yaml file)")
    return path


def parse_value(text: str) -> Any:
    """A command-line value: a Python literal if it is one, else YAML (true, null, [a.b, c], strings)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError:
            return text


def parse_updates(items: Iterable[str]) -> dict[str, Any]:
    """``["a=1", "env_args.map_name=3m"]`` -> nested dict of updates."""
    updates: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"'{item}' is not of the form key=value (after 'with')")
        key, text = item.split("=", 1)
        node = updates
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"'{key}' sets a key inside '{p}', which is not a mapping")
        node[parts[-1]] = parse_value(text.strip())
    return updates


def _type_name(v: Any) -> str:
    return type(v).__name__


def _check_type(key: str, declared: Any, value: Any) -> Any:
    """Return ``value`` (ints widened to float where a float is declared) or raise on a type mismatch."""
    if declared is None:
        return value
    if isinstance(declared, bool):
        ok = isinstance(value, bool)
    elif isinstance(declared, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(declared, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            value = float(value)
    else:
        ok = isinstance(value, type(declared))
    if not ok:
        raise ConfigError(f"config key '{key}' must be {_type_name(declared)} (like its default {declared!r}), got {value!r}")
    return value


def merge(base: dict[str, Any], update: Mapping[str, Any], source: str, allow_new: bool, prefix: str = "",
          allow_new_nested: bool | None = None) -> dict[str, Any]:
    """Deep-merge ``update`` into a copy of ``base``, checking keys and types."""
    out = copy.deepcopy(base)
    nested_new = allow_new if allow_new_nested is None else allow_new_nested
    for key, value in update.items():
        full = f"{prefix}{key}"
        if key not in out:
            if not allow_new:
                raise ConfigError(f"unknown config key '{full}' (from {source}); see config/default.yaml and the env/alg yamls")
            out[key] = copy.deepcopy(value)
            continue
        declared = out[key]
        if declared == {}:  # a mapping declared empty is free-form (e.g. env_kwargs passed through to a library)
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{full}' is a mapping, got {value!r}")
            out[key] = copy.deepcopy(value)
        elif isinstance(declared, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{full}' is a mapping; set its entries as {full}.KEY=VALUE")
            out[key] = merge(declared, value, source, nested_new, prefix=f"{full}.")
        else:
            out[key] = _check_type(full, declared, value)
    return out


def load_config(alg: str, env: str, cli_updates: Iterable[str] = ()) -> dict[str, Any]:
    """The fully merged and validated config dict (registry names are checked by ``check_registry_names``)."""
    cfg = _read_yaml(os.path.join(CONFIG_DIR, "default.yaml"))
    env_path = resolve_config_file(env, "envs")
    alg_path = resolve_config_file(alg, "algs")
    # An env or algorithm yaml may declare new top-level keys; an algorithm yaml may only override env_args
    # the env (or default.yaml) declares, since env_args are the env's constructor arguments.
    cfg = merge(cfg, _read_yaml(env_path), env_path, allow_new=True)
    alg_cfg = _read_yaml(alg_path)
    alg_env_args = alg_cfg.pop("env_args", {})
    cfg = merge(cfg, alg_cfg, alg_path, allow_new=True)
    cfg = merge(cfg, {"env_args": alg_env_args}, alg_path, allow_new=False)
    cfg = merge(cfg, parse_updates(cli_updates), "the command line", allow_new=False)
    for key, options in CHOICES.items():
        if key in cfg and cfg[key] not in options:
            raise ConfigError(f"config key '{key}' must be one of {', '.join(options)}, got {cfg.get(key)!r}")
    for key in ("t_max", "batch_size", "buffer_size", "batch_size_run", "test_nepisode", "updates_per_round"):
        if cfg[key] < 1 and not (key == "updates_per_round" and cfg[key] == 0):
            raise ConfigError(f"config key '{key}' must be positive, got {cfg[key]}")
    if cfg["seed"] is None:
        cfg["seed"] = random.SystemRandom().randrange(2**31)
    return cfg


def check_registry_names(cfg: Mapping[str, Any]) -> None:
    """Load plugins, then check every registry name in the config (one-line error listing known names)."""
    from concord import registry

    registry.load_plugins(cfg["plugins"])
    for key, (attr, nullable) in REGISTRY_KEYS.items():
        if key not in cfg or (nullable and cfg[key] is None):
            continue
        getattr(registry, attr).get(cfg[key])


def to_namespace(cfg: Mapping[str, Any]) -> SimpleNamespace:
    """Attribute access for the top level (``args.lr``); nested mappings such as env_args stay dicts."""
    return SimpleNamespace(**copy.deepcopy(dict(cfg)))


def split_cli(argv: list[str]) -> tuple[str, str, list[str]]:
    """``--config=ALG --env-config=ENV with k=v ...`` -> (ALG, ENV, ["k=v", ...])."""
    alg = env = None
    updates: list[str] = []
    in_with = False
    for arg in argv:
        if in_with:
            updates.append(arg)
        elif arg == "with":
            in_with = True
        elif arg.startswith("--config="):
            alg = arg.split("=", 1)[1]
        elif arg.startswith("--env-config="):
            env = arg.split("=", 1)[1]
        else:
            raise ConfigError(f"unexpected argument '{arg}'; usage: main.py --config=ALG --env-config=ENV [with key=value ...]")
    if not alg or not env:
        raise ConfigError("usage: main.py --config=ALG --env-config=ENV [with key=value ...] (both --config and --env-config are required)")
    return alg, env, updates
