"""Loading, merging and validating the configuration before any work starts.

Keys are *declared* (once, with their defaults) by ``config/default.yaml`` and by the yaml of each component a
run selects: ``config/<kind>/<name>.yaml`` for Concord's own parts (``config/mixers/qmix.yaml``,
``config/learners/ppo.yaml``), or the ``config=`` mapping given to ``register_*`` for a plugin's. A key that
names a component (``learner``, ``mixer``, ``vast_mixer``, ...) is listed under ``_components`` of the file that
declares it, so selecting ``mixer=qmix`` pulls in qmix's keys, wherever it is selected from.

Merge order: declared defaults < ``config/envs/ENV.yaml`` < ``config/algs/ALG.yaml`` < command line. Env and
algorithm yamls only choose components and override values; a key they set for a component the run does not
select (``qtran_lambda_opt`` when ``vast_mixer=qmix`` is given on the command line) is dropped, a key nobody
declares is an error. The command line may set only keys of selected components. Values must have the declared
type (an int is accepted where a float is declared; a declared null accepts anything). Allowed values are
declared once, as ``_choices`` (a list) or ``_ranges`` (an interval such as ``"[1, inf)"`` or ``"(0, 1]"``) in
the declaring file; a component may also restrict another component's key (ppo allows only stochastic action
selectors). ``plugins`` is the exception to "later wins": the env yaml's, algorithm yaml's and command line's
lists are combined. ``seed`` must be an integer or null. Files may ``_include`` other component files (``learners/lan`` includes ``learners/q_learner``).
A key declared by two selected files is an error. Every error is one line.
"""
from __future__ import annotations

import ast
import copy
import functools
import os
import random
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Iterable, Mapping

import yaml

from concord.errors import ConfigError

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "config")

# Component kinds: config sub-directory -> (registry attribute in concord.registry, singular name for messages).
KINDS: dict[str, tuple[str, str]] = {
    "controllers": ("MACS", "controller"),
    "learners": ("LEARNERS", "learner"),
    "mixers": ("MIXERS", "mixer"),
    "agents": ("AGENTS", "agent"),
    "selectors": ("ACTION_SELECTORS", "action selector"),
    "runners": ("RUNNERS", "runner"),
    "trainers": ("TRAINERS", "trainer"),
}
META_KEYS = ("_components", "_choices", "_ranges", "_include")


@dataclass
class Declaration:
    """The keys one file (or plugin mapping) declares, and its meta entries."""

    source: str  # a path, or "plugin <kind> '<name>'"
    keys: dict[str, Any]
    components: dict[str, str] = field(default_factory=dict)  # key -> kind
    choices: dict[str, list[Any]] = field(default_factory=dict)
    ranges: dict[str, str] = field(default_factory=dict)
    include: list[str] = field(default_factory=list)


def _read_yaml(path: str) -> dict[str, Any]:
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of keys to values")
    return data


def _declaration(source: str, data: Mapping[str, Any]) -> Declaration:
    data = dict(data)
    meta = {k: data.pop(k, None) or ({} if k != "_include" else []) for k in META_KEYS}
    for kind in meta["_components"].values():
        if kind not in KINDS:
            raise ConfigError(f"{source}: _components names unknown kind '{kind}'; known: {', '.join(KINDS)}")
    return Declaration(source, data, dict(meta["_components"]), dict(meta["_choices"]), dict(meta["_ranges"]),
                       list(meta["_include"]))


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


def component_declaration(kind: str, name: str) -> Declaration:
    """The keys component ``name`` of ``kind`` declares: its yaml in ``config/<kind>/``, else the ``config``
    mapping it was registered with (plugins); an unregistered name is a one-line error listing the known ones."""
    path = os.path.join(CONFIG_DIR, kind, f"{name}.yaml")
    if os.path.isfile(path):
        return _declaration(path, _read_yaml(path))
    from concord import registry

    reg = getattr(registry, KINDS[kind][0])
    reg.get(name)  # raises "unknown <kind> '<name>'; known <kind>s: ..."
    return _declaration(f"plugin {KINDS[kind][1]} '{name}'", reg.config(name))


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
          allow_new_nested: bool | None = None, unknown: Any = None) -> dict[str, Any]:
    """Deep-merge ``update`` into a copy of ``base``, checking keys and types; ``unknown(key)`` explains an
    undeclared top-level key (or returns None to drop it silently)."""
    out = copy.deepcopy(base)
    nested_new = allow_new if allow_new_nested is None else allow_new_nested
    for key, value in update.items():
        full = f"{prefix}{key}"
        if key not in out:
            if allow_new:
                out[key] = copy.deepcopy(value)
                continue
            reason = unknown(full) if unknown is not None else ""
            if reason is None:
                continue
            raise ConfigError(f"unknown config key '{full}' (from {source}){reason or '; see config/default.yaml and the component yamls in config/'}")
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


def parse_interval(text: str) -> tuple[float, float, bool, bool]:
    """``"[1, inf)"`` -> (1.0, inf, closed_low=True, closed_high=False)."""
    t = text.strip()
    if len(t) < 3 or t[0] not in "[(" or t[-1] not in "])" or "," not in t:
        raise ConfigError(f"range {text!r} must look like '[low, high]', '(0, 1]' or '[1, inf)'")
    lo, hi = (float(x) for x in t[1:-1].split(","))
    return lo, hi, t[0] == "[", t[-1] == "]"


def _in_interval(value: float, text: str) -> bool:
    lo, hi, closed_lo, closed_hi = parse_interval(text)
    return (lo < value or (closed_lo and lo == value)) and (value < hi or (closed_hi and value == hi))


class _Selection:
    """The files a run's components declare, gathered by following ``_components`` keys to a fixed point."""

    def __init__(self, layers: list[Mapping[str, Any]]) -> None:
        self.layers = layers  # env, alg, cli: later wins
        self.decls: list[Declaration] = []
        self.sources: set[str] = set()
        self.owner: dict[str, Declaration] = {}

    def effective(self, key: str) -> Any:
        value = self.owner[key].keys[key]
        for layer in self.layers:
            if key in layer:
                value = layer[key]
        return value

    def add(self, decl: Declaration) -> None:
        if decl.source in self.sources:
            return
        self.sources.add(decl.source)
        self.decls.append(decl)
        for key in decl.keys:
            if key in self.owner:
                raise ConfigError(f"config key '{key}' is declared by both {self.owner[key].source} and {decl.source}")
            self.owner[key] = decl
        for inc in decl.include:
            path = os.path.join(CONFIG_DIR, inc if inc.endswith(".yaml") else f"{inc}.yaml")
            if not os.path.isfile(path):
                raise ConfigError(f"{decl.source}: _include '{inc}' does not exist under config/")
            self.add(_declaration(path, _read_yaml(path)))

    def resolve(self) -> dict[str, str]:
        """Add every selected component's declaration; return {component key: kind}."""
        done: dict[str, str] = {}
        while True:
            pending = [(k, kind) for d in self.decls for k, kind in d.components.items() if k not in done]
            if not pending:
                return done
            for key, kind in pending:
                done[key] = kind
                name = self.effective(key)
                if name is None:
                    continue
                if not isinstance(name, str):
                    raise ConfigError(f"config key '{key}' names a {KINDS[kind][1]}, got {name!r}")
                self.add(component_declaration(kind, name))


@functools.lru_cache(maxsize=1)
def _declarers() -> dict[str, tuple[str, ...]]:
    """key -> ("mixer 'qmix'", ...): who in config/<kind>/ declares it; read once per process."""
    out: dict[str, list[str]] = {}
    for kind in KINDS:
        folder = os.path.join(CONFIG_DIR, kind)
        if not os.path.isdir(folder):
            continue
        for fname in sorted(os.listdir(folder)):
            if fname.endswith(".yaml"):
                for key in _read_yaml(os.path.join(folder, fname)):
                    out.setdefault(key, []).append(f"{KINDS[kind][1]} '{fname[:-5]}'")
    return {k: tuple(v) for k, v in out.items()}


def _who_declares(key: str) -> list[str]:
    """["mixer 'qmix'", ...]: every component yaml in config/ declaring ``key`` (for messages and dropped keys)."""
    return list(_declarers().get(key, ()))


def load_config(alg: str, env: str, cli_updates: Iterable[str] = ()) -> dict[str, Any]:
    """The fully merged and validated config dict: keys, types, allowed values and component names checked."""
    from concord import registry

    default_path = os.path.join(CONFIG_DIR, "default.yaml")
    env_path = resolve_config_file(env, "envs")
    alg_path = resolve_config_file(alg, "algs")
    env_cfg, alg_cfg = _read_yaml(env_path), _read_yaml(alg_path)
    cli = parse_updates(cli_updates)
    for source, layer in ((env_path, env_cfg), (alg_path, alg_cfg)):
        bad = [k for k in layer if k in META_KEYS]
        if bad:
            raise ConfigError(f"{source} sets '{bad[0]}': env and algorithm yamls only set values; declare keys "
                              "in a component yaml under config/<kind>/")
    layers = [env_cfg, alg_cfg, cli]

    sel = _Selection(layers)
    sel.add(_declaration(default_path, _read_yaml(default_path)))
    plugins = combined_plugins(sel.owner["plugins"].keys["plugins"], [env_path, alg_path, "the command line"], layers)
    registry.load_plugins(plugins)
    components = sel.resolve()

    cfg: dict[str, Any] = {}
    for decl in sel.decls:
        cfg.update(copy.deepcopy(decl.keys))

    def unselected(key: str) -> str | None:
        return None if _who_declares(key) else ""  # a known component's key, for one the run does not select

    def unselected_cli(key: str) -> str:
        who = _who_declares(key.split(".")[0])
        if not who:
            return "; see config/default.yaml and the component yamls in config/"
        picked = ", ".join(f"{k}={sel.effective(k)}" for k in components)
        return f"; it belongs to {', '.join(who)}, which this run does not select ({picked})"

    # env yamls add the env's constructor arguments under env_args; an algorithm yaml may only override them
    cfg = merge(cfg, env_cfg, env_path, allow_new=False, allow_new_nested=True, unknown=unselected)
    alg_env_args = alg_cfg.get("env_args", {})
    cfg = merge(cfg, {k: v for k, v in alg_cfg.items() if k != "env_args"}, alg_path, allow_new=False,
                unknown=unselected)
    cfg = merge(cfg, {"env_args": alg_env_args}, alg_path, allow_new=False)
    cfg = merge(cfg, cli, "the command line", allow_new=False, unknown=unselected_cli)

    for decl in sel.decls:
        for key, options in decl.choices.items():
            if key in cfg and cfg[key] not in options:
                shown = ", ".join("null" if o is None else str(o).lower() if isinstance(o, bool) else str(o)
                                  for o in options)
                raise ConfigError(f"config key '{key}' must be one of {shown} ({decl.source}), got {cfg[key]!r}")
        for key, interval in decl.ranges.items():
            v = cfg.get(key)
            if v is not None and not _in_interval(v, interval):
                raise ConfigError(f"config key '{key}' must be in {interval} ({decl.source}), got {v!r}")
    for key, kind in components.items():
        if cfg.get(key) is not None:
            getattr(registry, KINDS[kind][0]).get(cfg[key])
    cfg["plugins"] = plugins
    if cfg["seed"] is not None and (not isinstance(cfg["seed"], int) or isinstance(cfg["seed"], bool)):
        raise ConfigError(f"config key 'seed' must be an integer or null (null: drawn at random), got {cfg['seed']!r}")
    if cfg["seed"] is None:
        cfg["seed"] = random.SystemRandom().randrange(2**31)
    return cfg


def combined_plugins(default: list[str], sources: list[str], layers: list[Mapping[str, Any]]) -> list[str]:
    """``plugins`` from the env yaml, the algorithm yaml and the command line, in that order, each once: every
    layer adds the modules it needs (an algorithm's plugin mixer and an env's plugin env both load)."""
    out = list(default)
    for source, layer in zip(sources, layers):
        if "plugins" in layer:
            for name in _check_type("plugins", [], layer["plugins"]):
                if not isinstance(name, str):
                    raise ConfigError(f"config key 'plugins' (from {source}) must list module names, got {name!r}")
                if name not in out:
                    out.append(name)
    return out


def dotted_get(cfg: Mapping[str, Any], dotted: str, missing: Any = None) -> Any:
    """``cfg["env_args"]["map_name"]`` for ``"env_args.map_name"``; ``missing`` where a part is absent."""
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return missing
        node = node[part]
    return node


def check_registry_names(cfg: Mapping[str, Any]) -> None:
    """Check the env name (components were checked by ``load_config``); one-line error listing known names."""
    from concord import registry

    registry.load_plugins(cfg["plugins"])
    registry.ENVS.get(cfg["env"])


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

