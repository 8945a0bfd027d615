"""Name -> class registries for every pluggable part of Concord.

One mechanism serves envs, runners, controllers (MACs), learners, agents, mixers, action selectors
and trainers. A user extends Concord from their own module::

    from concord.registry import register_mixer

    @register_mixer("my_mixer")
    class MyMixer(Mixer): ...

and names that module in the config (``plugins=[my_pkg.my_mixer] mixer=my_mixer``).
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable, Generic, Iterable, Mapping, TypeVar

from concord.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named table of classes (or factories) of one kind."""

    def __init__(self, kind: str, package: str) -> None:
        self.kind = kind
        self.package = package  # Concord's own entries live in this package's modules
        self._table: dict[str, T] = {}
        self._configs: dict[str, dict[str, Any]] = {}

    def register(self, name: str, config: Mapping[str, Any] | None = None) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; a clash with another object is an error.

        ``config`` declares the keys a plugin reads, with their defaults (and optional ``_choices``/``_ranges``),
        as Concord's own parts do in ``config/<kind>/<name>.yaml``; they are merged when ``name`` is selected.
        """

        def deco(obj: T) -> T:
            old = self._table.get(name)
            if old is not None and old is not obj and _qualname(old) != _qualname(obj):
                raise ConfigError(f"{self.kind} '{name}' is already registered by {_qualname(old)}")
            self._table[name] = obj
            self._configs[name] = dict(config or {})
            return obj

        return deco

    def get(self, name: str) -> T:
        """The object registered as ``name``; unknown names raise a one-line error listing the known ones."""
        _load_package(self.package)
        if name not in self._table:
            raise ConfigError(
                f"unknown {self.kind} '{name}'; known {self.kind}s: {', '.join(sorted(self._table)) or '(none)'}"
            )
        return self._table[name]

    def config(self, name: str) -> dict[str, Any]:
        """The keys ``name`` was registered with (empty for Concord's own parts, whose keys live in config/)."""
        self.get(name)
        return dict(self._configs.get(name, {}))

    def names(self) -> list[str]:
        _load_package(self.package)
        return sorted(self._table)

    def __contains__(self, name: str) -> bool:
        _load_package(self.package)
        return name in self._table


def _qualname(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


ENVS: Registry = Registry("env", "concord.envs")
RUNNERS: Registry = Registry("runner", "concord.runners")
MACS: Registry = Registry("controller", "concord.controllers")
LEARNERS: Registry = Registry("learner", "concord.learners")
AGENTS: Registry = Registry("agent", "concord.modules.agents")
MIXERS: Registry = Registry("mixer", "concord.modules.mixers")
ACTION_SELECTORS: Registry = Registry("action selector", "concord.components")
TRAINERS: Registry = Registry("trainer", "concord.trainers")

register_env = ENVS.register
register_runner = RUNNERS.register
register_mac = MACS.register
register_learner = LEARNERS.register
register_agent = AGENTS.register
register_mixer = MIXERS.register
register_action_selector = ACTION_SELECTORS.register
register_trainer = TRAINERS.register

# Every module of a registry's package is imported on that registry's first look-up. Heavy optional
# dependencies (jax, smacv2, gymnasium) must be imported lazily inside those modules, so this stays cheap;
# an env worker process, which only looks up envs, then never imports torch for Concord's other parts.
_loaded_packages: set[str] = set()


def _load_package(pkg_name: str) -> None:
    if pkg_name in _loaded_packages:
        return
    _loaded_packages.add(pkg_name)
    pkg = importlib.import_module(pkg_name)
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{pkg_name}.{info.name}")


def load_plugins(modules: Iterable[str]) -> None:
    """Import user modules (dotted names) so that their ``register_*`` decorators run."""
    for mod in modules:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            raise ConfigError(f"plugin module '{mod}' could not be imported ({e}); is it on PYTHONPATH?") from e
