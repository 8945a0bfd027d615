"""StarCraft II through SMAC (``sc2``) and SMACv2 (``sc2v2``) behind Concord's ``MultiAgentEnv``.

``sc2`` wraps ``smac.env.starcraft2.starcraft2.StarCraft2Env`` (oxwhirl/smac, SMAC maps such as 3m,
5m_vs_6m, 3s5z_vs_3s6z; Samvelyan et al. 2019). ``sc2v2`` wraps smacv2's
``StarCraftCapabilityEnvWrapper`` (oxwhirl/smacv2; Ellis et al. 2023, Sec. 4): the ``10gen_<race>``
scenarios on ``32x32_flat.SC2Map`` whose unit types and start positions are drawn per episode from the
capability config. SMAC maps run on SMAC's own env, not smacv2's ``StarCraft2Env``: smacv2's maintainers
state that SMACv1 maps are not compatible with it (oxwhirl/smacv2 issue #30), and its reset loops forever
on them from the second episode on (issue #55: ``_kill_all_units`` waits for the map to be empty, which
a SMAC map's respawn trigger never allows). Both packages have SMAC's API and are imported lazily here.

Translation (both envs): observations ``float32 (n_agents, obs_dim)``, state ``float32 (state_dim,)``,
available actions ``bool (n_agents, n_actions)``; ``step`` returns SMAC's reward, terminated and info
(``battle_won``, ``dead_allies``, ``dead_enemies``, and ``episode_limit`` on a time-out when
``continuing_episode`` is true) unchanged. Sizes come from SMAC's ``get_env_info()`` without starting the
game. ``get_env_info()`` adds ``sc2_version`` (the game version that runs, also logged at start) and
``map_name``; ``get_extras()`` gives ``positions``: the ally units' map coordinates ``(n_agents, 2)``
read with SMAC's ``get_unit_by_id`` (a dead unit keeps its last position).

State and last actions: SMAC's state is ``[ally features, enemy features, last actions, timestep]``
where the last-action block is the one-hot of the previous joint action, ``(n_agents, n_actions)``
flattened agent-major, all zeros after a reset, and the timestep is present only with
``state_timestep_number``. Concord appends exactly that block itself (``env_args.state_last_action``,
handled by the framework), so the adapter builds SMAC with ``state_last_action=False``: the state the
learner sees is identical to SMAC's with ``state_last_action=True``; with ``state_timestep_number`` the
timestep column comes before the action block instead of after it (a fixed column permutation).

SC2 process failures: when the game crashes or its websocket times out, pysc2 raises
``pysc2.lib.protocol.ConnectionError`` (or ``ProtocolError``); SMAC catches it inside ``step``/``reset``,
relaunches the game and returns a fake terminal step ``(0, True, {})``. The adapter sees SMAC's
``force_restarts`` counter move and raises ``SC2RestartError`` instead, so the runner restarts the
worker and discards the partial episode rather than learning from the fake terminal. Failures SMAC does
not catch propagate unchanged: ``protocol.ConnectionError``/``ProtocolError`` from a relaunch or
``save_replay``, ``pysc2.lib.sc_process.SC2LaunchError`` (the binary did not start),
``pysc2.lib.remote_controller.RequestError``. ``close()`` is idempotent and never raises.

Randomness: the game is seeded with ``seed`` at launch (``RequestCreateGame.random_seed``); its engine
state lives in the SC2 process and cannot be captured, so SC2 runs do not resume bit-identically. The
numpy generators of smacv2's capability distributions (unseeded ``default_rng()`` in smacv2) are reseeded
from ``seed`` and captured by ``get_rng_state``; smacv2 also draws from Python's global ``random``
(team order, ``get_obs``'s agent order), which the framework's checkpoint captures.
"""
from __future__ import annotations

import copy
import dataclasses
import glob
import importlib
import inspect
import logging
import os
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from concord.envs.base import MultiAgentEnv
from concord.errors import ConfigError
from concord.registry import register_env

log = logging.getLogger(__name__)

# The packages docker/Dockerfile installs (pinned commits of their GitHub repositories).
SMAC_COMMIT = "26f4c4e4d1ebeaf42ecc2d0af32fac0774ccc678"
SMACV2_COMMIT = "9dabb9805a8e322e479d1876b59b5cbf528a87c5"
# SMAC's built-in AI levels (the keys of ``difficulties`` in smac's and smacv2's starcraft2.py).
DIFFICULTIES = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "A")
# Executable names pysc2's run configs start inside ``$SC2PATH/Versions/Base<build>/`` (Linux, Windows, macOS).
SC2_EXECUTABLES = ("SC2_x64", "SC2_x64.exe", "SC2.app")
FIX = ("run it in the StarCraft II image (docker/build.sh, then docker/run.sh with the same arguments; "
       "see docker/README.md), or use --env-config=smax for SMAC scenarios without StarCraft II")


class SC2RestartError(RuntimeError):
    """StarCraft II crashed or timed out during an episode; SMAC relaunched it and the episode is void."""


@dataclasses.dataclass(frozen=True)
class Backend:
    """Where one Concord env finds its SMAC implementation."""

    package: str  # import name
    source: str  # what to install
    env_module: str
    env_class: str
    maps_module: str  # has get_smac_map_registry()


BACKENDS: dict[str, Backend] = {
    "sc2": Backend("smac", f"SMAC, git+https://github.com/oxwhirl/smac.git@{SMAC_COMMIT}",
                   "smac.env.starcraft2.starcraft2", "StarCraft2Env", "smac.env.starcraft2.maps.smac_maps"),
    "sc2v2": Backend("smacv2", f"SMACv2, git+https://github.com/oxwhirl/smacv2.git@{SMACV2_COMMIT}",
                     "smacv2.env.starcraft2.wrapper", "StarCraftCapabilityEnvWrapper",
                     "smacv2.env.starcraft2.maps.smac_maps"),
}


def sc2_path() -> str:
    """StarCraft II's install directory as pysc2 finds it on Linux: ``$SC2PATH``, default ``~/StarCraftII``."""
    return os.path.expanduser(os.environ.get("SC2PATH", "~/StarCraftII"))


def _import_backend(env: str) -> tuple[type, dict[str, dict[str, Any]], dict[str, int]]:
    """The lazy import: (env class, SMAC's map registry, pysc2's known versions game_version -> build)."""
    backend = BACKENDS[env]
    try:
        env_cls = getattr(importlib.import_module(backend.env_module), backend.env_class)
        registry = importlib.import_module(backend.maps_module).get_smac_map_registry()
        from pysc2.run_configs import lib as run_config_lib
    except ImportError as e:
        raise ConfigError(f"env '{env}' needs the Python package '{backend.package}' ({backend.source}) and pysc2, "
                          f"but importing them failed ({str(e).splitlines()[0]}): {FIX}") from e
    except TypeError as e:  # generated protobuf code of s2clientprotocol under protobuf >= 3.21
        raise ConfigError(f"env '{env}': importing '{backend.package}' failed ({str(e).splitlines()[0]}); "
                          f"StarCraft II's protocol needs protobuf<3.21: {FIX}") from e
    from absl import flags  # pysc2 reads absl flags (--sc2_run_config, ...), which only absl.app would parse

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()
    known = {v.game_version: int(v.build_version) for v in run_config_lib.VERSIONS.values()}
    return env_cls, registry, known


def _installed_builds(path: str) -> list[int]:
    """Build numbers of the game binaries under ``path/Versions/Base<build>/``, ascending."""
    versions = os.path.join(path, "Versions")
    if not os.path.isdir(versions):
        return []
    return sorted(int(d[4:]) for d in os.listdir(versions) if d.startswith("Base") and d[4:].isdigit()
                  and any(os.path.exists(os.path.join(versions, d, x)) for x in SC2_EXECUTABLES))


def _resolve_version(game_version: Any, builds: list[int], known: Mapping[str, int], path: str) -> str:
    """The game version that will run, as ``"<version> (Base<build>)"``, checked the way pysc2 resolves it."""
    def name(build: int) -> str:
        return "/".join(sorted(v for v, b in known.items() if b == build)) or "unknown version"

    installed = ", ".join(f"Base{b} ({name(b)})" for b in builds)
    if game_version is None or game_version == "latest":
        return f"{name(builds[-1])} (Base{builds[-1]})"
    if not isinstance(game_version, str):
        raise ConfigError(f"env_args.game_version must be a string such as \"4.10\" (quote it on the command line: "
                          f"env_args.game_version='\"4.10\"'), got {game_version!r}")
    full = game_version + ".0" if game_version.count(".") == 1 else game_version
    if full not in known:
        raise ConfigError(f"env_args.game_version '{game_version}' is not a StarCraft II version pysc2 knows; "
                          f"installed at SC2PATH={path}: {installed}")
    if known[full] not in builds:
        raise ConfigError(f"env_args.game_version '{game_version}' needs {path}/Versions/Base{known[full]}, but only "
                          f"{installed} is installed: build the image with that version (docker/build.sh --sc2-version, "
                          f"see docker/README.md) or set env_args.game_version=null")
    return f"{full} (Base{known[full]})"


def _map_name(env: str, env_args: Mapping[str, Any]) -> str:
    """SMAC's map name: ``env_args.map_name`` (sc2) or ``10gen_<race>`` (sc2v2)."""
    if env == "sc2v2":
        race = env_args.get("race", "protoss")
        team_gen = env_args.get("team_gen")
        if team_gen is not None and race not in team_gen:
            raise ConfigError(f"env_args.race must be one of {', '.join(sorted(team_gen))}, got {race!r}")
        return f"10gen_{race}"
    return str(env_args.get("map_name", "3m"))


def _preflight(env: str, env_args: Mapping[str, Any]) -> tuple[type, str]:
    """Everything that can be checked before StarCraft II starts; returns (SMAC env class, version description)."""
    if env not in BACKENDS:
        raise ConfigError(f"unknown StarCraft II env '{env}'; known: {', '.join(sorted(BACKENDS))}")
    env_cls, registry, known = _import_backend(env)
    map_name = _map_name(env, env_args)
    if map_name not in registry:
        raise ConfigError(f"unknown SMAC map '{map_name}' for env '{env}'; known: {', '.join(sorted(registry))}")
    difficulty = env_args.get("difficulty", "7")
    if difficulty not in DIFFICULTIES:
        raise ConfigError(f"env_args.difficulty must be one of {', '.join(DIFFICULTIES)} (a string), got {difficulty!r}")
    path = sc2_path()
    builds = _installed_builds(path)
    if not builds:
        raise ConfigError(f"env '{env}' needs StarCraft II at SC2PATH={path} (default ~/StarCraftII), but there is "
                          f"no game binary {path}/Versions/Base<build>/SC2_x64: {FIX}")
    version = _resolve_version(env_args.get("game_version"), builds, known, path)
    map_file = os.path.join(path, "Maps", "SMAC_Maps", f"{registry[map_name].get('map_name', map_name)}.SC2Map")
    if not os.path.isfile(map_file):
        raise ConfigError(f"map '{map_name}' needs {map_file}, which does not exist (the SMAC/SMACv2 maps go to "
                          f"$SC2PATH/Maps/SMAC_Maps): {FIX}")
    return env_cls, version


def check_sc2_available(env: str = "sc2", env_args: Mapping[str, Any] | None = None) -> str:
    """Check, before any work starts, that ``env`` can run: package, game binary, game version, difficulty, map.

    Raises ``ConfigError`` with one line naming what is missing and the fix; returns the game version that
    will run, e.g. ``"4.10.0 (Base75689)"``.
    """
    return _preflight(env, env_args or {})[1]


def newest_replay(replay_dir: str, prefix: str) -> str | None:
    """The newest ``<prefix>_*.SC2Replay`` in ``replay_dir`` (pysc2 names replays ``<prefix>_<utc time>``; the ``_``
    keeps ``3m_seed1`` from matching ``3m_seed10``'s files)."""
    paths = glob.glob(os.path.join(glob.escape(replay_dir), f"{glob.escape(prefix)}_*.SC2Replay"))
    return max(paths, key=os.path.getmtime) if paths else None


def distribution_generators(distributions: Iterable[Any]) -> list[np.random.Generator]:
    """Every numpy ``Generator`` held by smacv2's capability distributions, nested ones included, in a fixed order."""
    found: list[np.random.Generator] = []
    seen: set[int] = set()

    def visit(obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        for value in vars(obj).values():
            if isinstance(value, np.random.Generator) and id(value) not in seen:
                seen.add(id(value))
                found.append(value)
            elif callable(getattr(value, "generate", None)) and hasattr(value, "__dict__"):
                visit(value)  # a distribution made of distributions (surrounded_and_reflect, reflect_position)

    for dist in distributions:
        visit(dist)
    return found


class StarCraft2Adapter(MultiAgentEnv):
    """SMAC's API (``reset``, ``step -> (reward, terminated, info)``, ``get_obs`` ...) as Concord's interface."""

    env_name: str = ""

    @classmethod
    def check_available(cls, env_args: dict[str, Any]) -> None:
        """Config validation's hook: ``check_sc2_available`` for this env (one-line ``ConfigError``)."""
        check_sc2_available(cls.env_name, env_args)

    def __init__(self, seed: int | None, env_args: Mapping[str, Any], smac_args: dict[str, Any]) -> None:
        """``env_args``: Concord's (checked by the preflight); ``smac_args``: the keyword arguments for SMAC."""
        super().__init__(seed)
        env_cls, self.sc2_version = _preflight(self.env_name, env_args)
        self.map_name = map_name = smac_args["map_name"]
        path = sc2_path()
        replay_dir = smac_args.pop("replay_dir")
        # absolute, so pysc2 does not put it under $SC2PATH/Replays; "" keeps pysc2's default there
        smac_args["replay_dir"] = os.path.abspath(replay_dir) if replay_dir else ""
        self.replay_dir = smac_args["replay_dir"] or os.path.join(path, "Replays")
        prefix = smac_args.pop("replay_prefix") or map_name
        # parallel envs save at the same second; the seed (distinct per env) keeps their file names apart
        smac_args["replay_prefix"] = self.replay_prefix = prefix if seed is None else f"{prefix}_seed{seed}"
        self._env = env_cls(seed=seed, state_last_action=False, **smac_args)
        self._closed = False
        info = self._env.get_env_info()
        self.n_agents = int(info["n_agents"])
        self.n_actions = int(info["n_actions"])
        self.episode_limit = int(info["episode_limit"])
        self.obs_shape = int(info["obs_shape"])
        self.state_shape = int(info["state_shape"])
        # SMAC's state starts with one block per ally: health, cooldown, x, y, shield bits, unit-type bits
        self.unit_dim = 4 + int(self._env.shield_bits_ally) + int(self._env.unit_type_bits)
        log.info("StarCraft II %s at SC2PATH=%s, map %s (%d agents, %d actions), seed %s", self.sc2_version, path,
                 map_name, self.n_agents, self.n_actions, seed)

    # --- episode ---
    def reset(self) -> None:
        restarts = self._env.force_restarts
        self._env.reset()
        self._check_restarts(restarts, "reset")

    def step(self, actions: np.ndarray) -> tuple[float, bool, dict[str, Any]]:
        acts = [int(a) for a in np.asarray(actions).reshape(-1)]  # (n_agents,) a list: SMAC may write into it
        restarts = self._env.force_restarts
        reward, terminated, info = self._env.step(acts)
        self._check_restarts(restarts, "step")
        return float(reward), bool(terminated), dict(info)

    def _check_restarts(self, before: int, where: str) -> None:
        if self._env.force_restarts != before:
            raise SC2RestartError(f"StarCraft II failed during {where} (websocket timeout or crash); SMAC relaunched "
                                  f"the game, so this episode is void ({self._env.force_restarts} relaunches so far)")

    # --- views ---
    def get_obs(self) -> np.ndarray:
        return np.asarray(self._env.get_obs(), dtype=np.float32).reshape(self.n_agents, self.obs_shape)

    def get_state(self) -> np.ndarray:
        return np.asarray(self._env.get_state(), dtype=np.float32).reshape(self.state_shape)

    def get_avail_actions(self) -> np.ndarray:
        return np.asarray(self._env.get_avail_actions(), dtype=bool).reshape(self.n_agents, self.n_actions)

    def get_extras(self) -> dict[str, np.ndarray]:
        units = [self._env.get_unit_by_id(i) for i in range(self.n_agents)]
        return {"positions": np.array([[u.pos.x, u.pos.y] for u in units], dtype=np.float32)}  # (n_agents, 2)

    def get_env_info(self) -> dict[str, Any]:
        return {
            "n_agents": self.n_agents,
            "n_actions": self.n_actions,
            "obs_shape": self.obs_shape,
            "state_shape": self.state_shape,
            "episode_limit": self.episode_limit,
            "extras": {"positions": (self.n_agents, 2)},
            "unit_dim": self.unit_dim,  # per-agent state features, for QPLEX's Qatten weights
            "sc2_version": self.sc2_version,
            "map_name": self.map_name,
        }

    def get_stats(self) -> dict[str, float]:
        """SMAC's counters since launch (won, played, draws, win rate, timeouts, relaunches); empty before a battle."""
        if self._env.battles_game == 0:  # SMAC's win_rate divides by it
            return {}
        return {k: float(v) for k, v in self._env.get_stats().items()}

    # --- replays, randomness, shutdown ---
    def save_replay(self) -> str | None:
        """Write a replay of every episode since the game started; return its path (under ``replay_dir``)."""
        self._env.save_replay()
        path = newest_replay(self.replay_dir, self.replay_prefix)
        log.info("StarCraft II replay: %s", path or f"none found for {self.replay_prefix} in {self.replay_dir}")
        return path

    def _generators(self) -> list[np.random.Generator]:
        return []

    def get_rng_state(self) -> Any:
        return {"rng": self.rng.bit_generator.state, "distributions": [g.bit_generator.state for g in self._generators()]}

    def set_rng_state(self, state: Any) -> None:
        self.rng.bit_generator.state = state["rng"]
        for g, s in zip(self._generators(), state["distributions"], strict=True):
            g.bit_generator.state = s

    def close(self) -> None:
        """Stop the SC2 process; safe to call twice and after a crash (a failure to close is only logged)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._env.close()
        except Exception:  # the game may already be gone; closing must not mask the original failure
            log.warning("closing StarCraft II failed (ignored)", exc_info=True)


@dataclasses.dataclass(frozen=True)
class SMACArgs:
    """SMAC's keyword arguments that both envs hand on to SMAC unchanged, with their defaults (config/envs/sc2*.yaml)."""

    difficulty: str = "7"
    game_version: str | None = None
    step_mul: int = 8
    move_amount: int = 2
    continuing_episode: bool = False
    obs_all_health: bool = True
    obs_own_health: bool = True
    obs_last_action: bool = False
    obs_pathing_grid: bool = False
    obs_terrain_height: bool = False
    obs_instead_of_state: bool = False
    obs_timestep_number: bool = False
    state_timestep_number: bool = False
    reward_sparse: bool = False
    reward_only_positive: bool = True
    reward_death_value: float = 10.0
    reward_win: float = 200.0
    reward_defeat: float = 0.0
    reward_negative_scale: float = 0.5
    reward_scale: bool = True
    reward_scale_rate: float = 20.0
    replay_dir: str = "results/replays"
    replay_prefix: str = ""
    debug: bool = False


@dataclasses.dataclass(frozen=True)
class SC2Args(SMACArgs):
    """``sc2``'s constructor arguments: SMAC's, on a SMAC map (config/envs/sc2.yaml)."""

    map_name: str = "3m"


@dataclasses.dataclass(frozen=True)
class SC2v2Args(SMACArgs):
    """``sc2v2``'s constructor arguments: the scenario (``SC2V2_SCENARIO``) and SMACv2's own options (config/envs/sc2v2.yaml)."""

    race: str = "protoss"
    n_units: int = 5
    n_enemies: int = 5
    team_gen: dict[str, Any] | None = None
    start_positions: dict[str, Any] | None = None
    obs_own_pos: bool = True
    conic_fov: bool = False
    num_fov_actions: int = 12
    use_unit_ranges: bool = True
    min_attack_range: int = 2
    prob_obs_enemy: float = 0.0
    action_mask: bool = True


SC2V2_SCENARIO = ("race", "n_units", "n_enemies", "team_gen", "start_positions")  # become smacv2's capability config


def _takes(args_type: type) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Declare that ``__init__(self, seed=None, **env_args)`` takes the fields of the dataclass ``args_type``: its
    signature (what ``help()`` and the yaml tests read) then lists them with their defaults."""
    def declare(init: Callable[..., None]) -> Callable[..., None]:
        own = list(inspect.signature(init).parameters.values())[:2]  # self, seed
        fields = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
                  for f in dataclasses.fields(args_type)]
        init.__signature__ = inspect.Signature([*own, *fields])  # type: ignore[attr-defined]
        return init
    return declare


@register_env("sc2")
class SC2Env(StarCraft2Adapter):
    """SMAC (oxwhirl/smac ``StarCraft2Env``) on a SMAC map; arguments ``SC2Args``, as in SMAC (config/envs/sc2.yaml)."""

    env_name = "sc2"

    @_takes(SC2Args)
    def __init__(self, seed: int | None = None, **env_args: Any) -> None:
        args = dataclasses.asdict(SC2Args(**env_args))
        super().__init__(seed, args, dict(args))


@register_env("sc2v2")
class SC2v2Env(StarCraft2Adapter):
    """SMACv2 (``StarCraftCapabilityEnvWrapper``): ``<race>_<n_units>_vs_<n_enemies>`` on ``10gen_<race>``.

    The capability config handed to smacv2 is ``{n_units, n_enemies, team_gen: team_gen[race],
    start_positions}`` (smacv2's ``examples/configs/sc2_gen_<race>.yaml``); ``map_name`` is ``10gen_<race>``;
    every other argument of ``SC2v2Args`` goes to smacv2 unchanged.
    """

    env_name = "sc2v2"

    @_takes(SC2v2Args)
    def __init__(self, seed: int | None = None, **env_args: Any) -> None:
        args = dataclasses.asdict(SC2v2Args(**env_args))
        race, n_units, n_enemies, team_gen, start_positions = (args[k] for k in SC2V2_SCENARIO)
        if not team_gen or not start_positions:
            raise ConfigError("env_args.team_gen and env_args.start_positions are required (see config/envs/sc2v2.yaml)")
        for key, n in (("n_units", n_units), ("n_enemies", n_enemies)):
            if n < 1:
                raise ConfigError(f"env_args.{key} must be positive, got {n}")
        map_name = _map_name(self.env_name, args)
        smac_args = {k: v for k, v in args.items() if k not in SC2V2_SCENARIO}
        # smacv2 writes into the capability config (n_units, env_key per distribution): hand it a copy
        smac_args["capability_config"] = {"n_units": n_units, "n_enemies": n_enemies,
                                          "team_gen": copy.deepcopy(team_gen[race]),
                                          "start_positions": copy.deepcopy(start_positions)}
        smac_args["map_name"] = map_name
        super().__init__(seed, args, smac_args)
        self._dist_generators = distribution_generators(self._env.env_key_to_distribution_map.values())
        for g, child in zip(self._dist_generators, self.rng.spawn(len(self._dist_generators))):
            g.bit_generator.state = child.bit_generator.state

    def _generators(self) -> list[np.random.Generator]:
        return self._dist_generators
