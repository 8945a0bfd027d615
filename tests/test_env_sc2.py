"""The StarCraft II adapters (sc2: SMAC, sc2v2: SMACv2) without the game.

The missing-package and missing-game errors are checked for real; everything else runs the adapter against
``FakeStarCraft2Env`` / ``FakeCapabilityEnvWrapper``: stand-ins with the constructor and method signatures of
``smac.env.starcraft2.starcraft2.StarCraft2Env`` (oxwhirl/smac@26f4c4e) and smacv2's
``StarCraftCapabilityEnvWrapper`` (oxwhirl/smacv2@9dabb98), injected by monkeypatching the adapter's lazy import
(``concord.envs.sc2._import_backend``) over a fake StarCraft II install tree in a temporary ``SC2PATH``.
"""
from __future__ import annotations

import copy
import datetime
import importlib.util
import inspect
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml

from concord.envs import sc2
from concord.envs.base import SerialVecEnv, step_single
from concord.errors import ConfigError
from concord.registry import ENVS

CONFIG = Path(__file__).resolve().parents[1] / "config" / "envs"
KNOWN_VERSIONS = {"4.6.2": 69232, "4.10.0": 75689, "4.10.1": 75800}  # pysc2's run_configs.lib.VERSIONS, in part
FAKE_MAPS = {  # SMAC's map registry entries (smacv2 adds "map_name", the file); limits shortened for the tests
    "3m": {"n_agents": 3, "n_enemies": 3, "limit": 5, "a_race": "T", "b_race": "T", "unit_type_bits": 0,
           "map_type": "marines"},
    "10gen_protoss": {"n_agents": 10, "n_enemies": 10, "limit": 5, "a_race": "P", "b_race": "P",
                      "unit_type_bits": 3, "map_type": "protoss_gen", "map_name": "32x32_flat"},
    "10gen_zerg": {"n_agents": 10, "n_enemies": 10, "limit": 5, "a_race": "Z", "b_race": "Z",
                   "unit_type_bits": 3, "map_type": "zerg_gen", "map_name": "32x32_flat"},
}


class FakeConnectionError(Exception):
    """Stands in for ``pysc2.lib.protocol.ConnectionError`` (a websocket timeout or a crashed game)."""


def _pysc2_save_replay(replay_dir: str, prefix: str) -> str:
    """pysc2's ``RunConfig.save_replay`` (run_configs/lib.py): ``<replay_dir>/<prefix>_<utc time>.SC2Replay``."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0, tzinfo=None)
    replay_dir = os.path.join(os.path.join(os.environ["SC2PATH"], "Replays"), replay_dir)  # abs_replay_path
    os.makedirs(replay_dir, exist_ok=True)
    path = os.path.join(replay_dir, f"{prefix}_{now.isoformat('-').replace(':', '-')}.SC2Replay")
    with open(path, "wb") as f:
        f.write(b"replay")
    return path


class FakeStarCraft2Env:
    """Stand-in for SMAC's ``StarCraft2Env``: its exact constructor and methods, a scripted battle instead of SC2.

    Each step the first enemy loses health; with ``win_at`` the battle is won at that step, else the episode
    times out at the map's limit (``info["episode_limit"]`` only with ``continuing_episode``, as in SMAC).
    ``crash_at`` makes a step fail: ``crash_mode="raise"`` raises like an uncaught pysc2 error,
    ``"restart"`` does what SMAC does on ``protocol.ConnectionError`` (``full_restart()``, return ``0, True, {}``).
    """

    win_at: int | None = None
    crash_at: int | None = None
    crash_mode = "raise"
    close_raises = False
    instances: list["FakeStarCraft2Env"] = []

    def __init__(self, map_name="8m", step_mul=8, move_amount=2, difficulty="7", game_version=None, seed=None,
                 continuing_episode=False, obs_all_health=True, obs_own_health=True, obs_last_action=False,
                 obs_pathing_grid=False, obs_terrain_height=False, obs_instead_of_state=False,
                 obs_timestep_number=False, state_last_action=True, state_timestep_number=False,
                 reward_sparse=False, reward_only_positive=True, reward_death_value=10, reward_win=200,
                 reward_defeat=0, reward_negative_scale=0.5, reward_scale=True, reward_scale_rate=20,
                 replay_dir="", replay_prefix="", window_size_x=1920, window_size_y=1200, heuristic_ai=False,
                 heuristic_rest=False, debug=False):
        self.kwargs = {k: v for k, v in locals().items() if k != "self"}
        params = FAKE_MAPS[map_name]
        self.map_name = map_name
        self.n_agents, self.n_enemies, self.episode_limit = params["n_agents"], params["n_enemies"], params["limit"]
        self.n_actions = 6 + self.n_enemies
        self.shield_bits_ally, self.unit_type_bits = 0, params["unit_type_bits"]  # SMAC derives both from the races
        self.continuing_episode = continuing_episode
        self.state_last_action = state_last_action
        self.replay_dir, self.replay_prefix = replay_dir, replay_prefix
        self._seed = seed
        self._episode_steps = 0
        self.battles_won = self.battles_game = self.timeouts = self.force_restarts = 0
        self.last_action = np.zeros((self.n_agents, self.n_actions))
        self.enemy_health = np.ones(self.n_enemies)
        self.positions = np.zeros((self.n_agents, 2))
        self.received_actions: list[list[int]] = []
        self.replays: list[str] = []
        self.closed = 0
        type(self).instances.append(self)

    # SMAC's methods
    def reset(self):
        self._episode_steps = 0
        self.last_action = np.zeros((self.n_agents, self.n_actions))
        self.enemy_health = np.ones(self.n_enemies)
        self.positions = np.array([[8.0 + i, 16.0 - i] for i in range(self.n_agents)])
        return self.get_obs(), self.get_state()

    def full_restart(self):
        self.force_restarts += 1

    def step(self, actions):
        actions_int = [int(a) for a in actions]
        self.received_actions.append(actions_int)
        if self.crash_at is not None and self._episode_steps + 1 == self.crash_at:
            if self.crash_mode == "raise":
                raise FakeConnectionError("Websocket timed out.")
            self.full_restart()
            return 0, True, {}
        self.last_action = np.eye(self.n_actions)[np.array(actions_int)]
        self._episode_steps += 1
        self.enemy_health[0] = max(0.0, self.enemy_health[0] - 0.25)
        self.positions[:, 0] += 1.0
        terminated, reward = False, 0.5
        info = {"battle_won": False, "dead_allies": 0, "dead_enemies": int((self.enemy_health == 0).sum())}
        if self.win_at is not None and self._episode_steps >= self.win_at:
            terminated, info["battle_won"], reward = True, True, reward + 10.0
            self.battles_game += 1
            self.battles_won += 1
        elif self._episode_steps >= self.episode_limit:
            terminated = True
            if self.continuing_episode:
                info["episode_limit"] = True
            self.battles_game += 1
            self.timeouts += 1
        return reward, terminated, info

    def get_obs_agent(self, agent_id):
        return np.full(self.get_obs_size(), self._episode_steps + agent_id / 10, dtype=np.float64)

    def get_obs(self):
        return [self.get_obs_agent(i) for i in range(self.n_agents)]

    def get_obs_size(self):
        return 4 + 5 * self.n_enemies + 5 * (self.n_agents - 1) + 1

    def get_state(self):
        allies = np.tile(self.positions[:, :1], (1, 4)) / 32  # (n_agents, 4)
        enemies = np.tile(self.enemy_health[:, None], (1, 3))  # (n_enemies, 3)
        state = np.append(allies.flatten(), enemies.flatten())
        if self.state_last_action:
            state = np.append(state, self.last_action.flatten())
        return state.astype(np.float32)

    def get_state_size(self):
        return 4 * self.n_agents + 3 * self.n_enemies + (self.n_agents * self.n_actions if self.state_last_action else 0)

    def get_avail_agent_actions(self, agent_id):
        avail = [0] * self.n_actions
        avail[1:6] = [1] * 5
        avail[6] = int(agent_id == 0)  # only agent 0 has enemy 0 in range
        return avail

    def get_avail_actions(self):
        return [self.get_avail_agent_actions(i) for i in range(self.n_agents)]

    def get_total_actions(self):
        return self.n_actions

    def get_unit_by_id(self, a_id):
        return SimpleNamespace(pos=SimpleNamespace(x=self.positions[a_id, 0], y=self.positions[a_id, 1]), health=45.0)

    def save_replay(self):
        prefix = self.replay_prefix or self.map_name
        self.replays.append(_pysc2_save_replay(self.replay_dir or "", prefix))

    def get_stats(self):
        return {"battles_won": self.battles_won, "battles_game": self.battles_game, "battles_draw": self.timeouts,
                "win_rate": self.battles_won / self.battles_game, "timeouts": self.timeouts,
                "restarts": self.force_restarts}

    def get_env_info(self):
        return {"state_shape": self.get_state_size(), "obs_shape": self.get_obs_size(),
                "n_actions": self.get_total_actions(), "n_agents": self.n_agents, "episode_limit": self.episode_limit,
                "agent_features": ["health", "energy/cooldown", "rel_x", "rel_y"],
                "enemy_features": ["health", "rel_x", "rel_y"]}

    def close(self):
        self.closed += 1
        if self.close_raises:
            raise FakeConnectionError("Connection already closed. SC2 probably crashed.")


class FakeStarCraft2EnvV2(FakeStarCraft2Env):
    """Stand-in for smacv2's ``StarCraft2Env`` (its constructor adds the capability and SMACv2 arguments)."""

    def __init__(self, map_name="8m", step_mul=8, move_amount=2, difficulty="7", game_version=None, seed=None,
                 continuing_episode=False, obs_all_health=True, obs_own_health=True, obs_last_action=False,
                 obs_pathing_grid=False, obs_terrain_height=False, obs_instead_of_state=False,
                 obs_timestep_number=False, obs_own_pos=False, obs_starcraft=True, conic_fov=False,
                 num_fov_actions=12, state_last_action=True, state_timestep_number=False, reward_sparse=False,
                 reward_only_positive=True, reward_death_value=10, reward_win=200, reward_defeat=0,
                 reward_negative_scale=0.5, reward_scale=True, reward_scale_rate=20, use_unit_ranges=False,
                 min_attack_range=2, kill_unit_step_mul=2, fully_observable=False, capability_config={},
                 replay_dir="", replay_prefix="", window_size_x=1920, window_size_y=1200, heuristic_ai=False,
                 heuristic_rest=False, debug=False, prob_obs_enemy=1.0, action_mask=True):
        super().__init__(map_name=map_name, seed=seed, continuing_episode=continuing_episode,
                         state_last_action=state_last_action, replay_dir=replay_dir, replay_prefix=replay_prefix)
        self.kwargs = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self.capability_config = capability_config
        self.n_agents = capability_config["team_gen"]["n_units"]  # as smacv2 with team_gen
        self.n_enemies = capability_config["team_gen"]["n_enemies"]
        self.n_actions = 6 + self.n_enemies
        self.prob_obs_enemy = prob_obs_enemy
        self.last_action = np.zeros((self.n_agents, self.n_actions))

    def reset(self, episode_config={}):
        self.episode_config = episode_config
        return super().reset()

    def save_replay(self):
        prefix = (self.replay_prefix or self.map_name) + "_" + str(self.prob_obs_enemy)
        self.replays.append(_pysc2_save_replay(self.replay_dir or "", prefix))


class FakeTeams:
    """Like smacv2's ``WeightedTeamsDistribution``: an unseeded ``default_rng()``."""

    def __init__(self, config):
        self.config, self.rng = config, np.random.default_rng()

    def generate(self):
        team = list(self.rng.choice(self.config["unit_types"], size=self.config["n_units"], p=self.config["weights"]))
        return {self.config["env_key"]: {"ally_team": team, "enemy_team": team, "id": 0}}


class FakePositions:
    """Like smacv2's ``SurroundedAndReflectPositionDistribution``: a generator plus nested distributions with their own."""

    def __init__(self, config):
        self.p_threshold, self.rng = config["p"], np.random.default_rng()
        self.surrounded_distribution = SimpleNamespace(rng=np.random.default_rng(), generate=lambda: None)
        reflect = SimpleNamespace(generate=lambda: None)
        reflect.pos_generator = SimpleNamespace(rng=np.random.default_rng(), generate=lambda: None)
        self.reflect_distribution = reflect

    def generate(self):
        if self.rng.random() > self.p_threshold:
            pos = self.surrounded_distribution.rng.uniform(size=2)
        else:
            pos = self.reflect_distribution.pos_generator.rng.uniform(size=2)
        return {"ally_start_positions": {"item": pos, "id": 0}}


class FakeCapabilityEnvWrapper:
    """Stand-in for smacv2's ``StarCraftCapabilityEnvWrapper(**kwargs)``: parses the capability config into
    distributions (writing ``env_key``/``n_units``/``n_enemies`` into it, as smacv2 does) and delegates."""

    def __init__(self, **kwargs):
        self.distribution_config = kwargs["capability_config"]
        self.env_key_to_distribution_map = {}
        for env_key, config in self.distribution_config.items():
            if env_key in ("n_units", "n_enemies"):
                continue
            config["env_key"] = env_key
            config["n_units"] = self.distribution_config["n_units"]
            config["n_enemies"] = self.distribution_config["n_enemies"]
            cls = FakeTeams if env_key == "team_gen" else FakePositions
            self.env_key_to_distribution_map[env_key] = cls(config)
        self.env = FakeStarCraft2EnvV2(**kwargs)

    def reset(self):
        reset_config = {}
        for distribution in self.env_key_to_distribution_map.values():
            reset_config = {**reset_config, **distribution.generate()}
        return self.env.reset(reset_config)

    def __getattr__(self, name):
        if hasattr(self.env, name):
            return getattr(self.env, name)
        raise AttributeError

    def step(self, actions):
        return self.env.step(actions)

    def get_obs(self):
        return self.env.get_obs()

    def get_state(self):
        return self.env.get_state()

    def get_avail_actions(self):
        return self.env.get_avail_actions()

    def get_env_info(self):
        return self.env.get_env_info()

    def get_stats(self):
        return self.env.get_stats()

    def save_replay(self):
        self.env.save_replay()

    def close(self):
        return self.env.close()


def make_sc2_install(root: Path, builds=(75689,), maps=("3m", "32x32_flat")) -> Path:
    """A StarCraft II tree as pysc2 looks for it: Versions/Base<build>/SC2_x64 and Maps/SMAC_Maps/<map>.SC2Map."""
    for b in builds:
        (root / "Versions" / f"Base{b}").mkdir(parents=True)
        (root / "Versions" / f"Base{b}" / "SC2_x64").write_bytes(b"")
    (root / "Maps" / "SMAC_Maps").mkdir(parents=True)
    for m in maps:
        (root / "Maps" / "SMAC_Maps" / f"{m}.SC2Map").write_bytes(b"")
    return root


@pytest.fixture
def fake_sc2(tmp_path, monkeypatch):
    """SMAC/SMACv2 replaced by the fakes (through the lazy import) over a fake install in $SC2PATH; cwd = tmp_path."""
    root = make_sc2_install(tmp_path / "StarCraftII")
    monkeypatch.setenv("SC2PATH", str(root))
    monkeypatch.chdir(tmp_path)
    classes = {"sc2": FakeStarCraft2Env, "sc2v2": FakeCapabilityEnvWrapper}
    monkeypatch.setattr(sc2, "_import_backend", lambda env: (classes[env], FAKE_MAPS, KNOWN_VERSIONS))
    monkeypatch.setattr(FakeStarCraft2Env, "instances", [])
    return SimpleNamespace(root=root, classes=classes)


def yaml_env_args(name: str) -> dict[str, Any]:
    """The env's constructor arguments as config/envs/<name>.yaml declares them (state_last_action is Concord's)."""
    args = yaml.safe_load((CONFIG / f"{name}.yaml").read_text())["env_args"]
    args.pop("state_last_action")
    return args


def one_line_config_error(fn, *args, **kwargs) -> str:
    with pytest.raises(ConfigError) as e:
        fn(*args, **kwargs)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


# --- the errors without smac / without StarCraft II --------------------------------------------------------------
@pytest.mark.parametrize("env, package", [("sc2", "smac"), ("sc2v2", "smacv2")])
def test_missing_package_is_one_line_naming_it_and_the_fix(env, package) -> None:
    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed here")
    msg = one_line_config_error(sc2.check_sc2_available, env, yaml_env_args(env))
    assert f"'{package}'" in msg and f"No module named '{package}'" in msg
    assert "docker/build.sh" in msg and "--env-config=smax" in msg
    assert one_line_config_error(ENVS.get(env), seed=0, **yaml_env_args(env)) == msg  # construction checks first


def test_main_with_env_config_sc2_stops_with_the_one_line_error(capsys) -> None:
    if importlib.util.find_spec("smac") is not None:
        pytest.skip("smac is installed here")
    import main as cli

    assert cli.main(["--config=qmix", "--env-config=sc2", "with", "env_args.map_name=3s5z_vs_3s6z"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "'smac'" in err[0] and "docker/" in err[0] and "--env-config=smax" in err[0]


def test_missing_game_names_sc2path_and_the_fix(fake_sc2, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SC2PATH", str(tmp_path / "nowhere"))
    msg = one_line_config_error(sc2.check_sc2_available, "sc2", yaml_env_args("sc2"))
    assert f"SC2PATH={tmp_path / 'nowhere'}" in msg and "SC2_x64" in msg
    assert "docker/build.sh" in msg and "--env-config=smax" in msg
    monkeypatch.delenv("SC2PATH")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the default is ~/StarCraftII
    assert f"SC2PATH={tmp_path / 'home' / 'StarCraftII'}" in one_line_config_error(sc2.check_sc2_available, "sc2", {})


def test_missing_map_file_and_unknown_map(fake_sc2) -> None:
    (fake_sc2.root / "Maps" / "SMAC_Maps" / "3m.SC2Map").unlink()
    msg = one_line_config_error(sc2.check_sc2_available, "sc2", {"map_name": "3m"})
    assert str(fake_sc2.root / "Maps" / "SMAC_Maps" / "3m.SC2Map") in msg
    msg = one_line_config_error(sc2.check_sc2_available, "sc2", {"map_name": "4m"})
    assert "unknown SMAC map '4m'" in msg and "3m" in msg
    # sc2v2 maps are files of another name (smacv2's registry: 10gen_<race> -> 32x32_flat)
    (fake_sc2.root / "Maps" / "SMAC_Maps" / "32x32_flat.SC2Map").unlink()
    assert "32x32_flat.SC2Map" in one_line_config_error(sc2.check_sc2_available, "sc2v2", yaml_env_args("sc2v2"))


def test_game_version_resolution(fake_sc2) -> None:
    check = sc2.check_sc2_available
    assert check("sc2", {"game_version": None}) == "4.10.0 (Base75689)"  # the installed one, named by pysc2's table
    assert check("sc2", {"game_version": "4.10"}) == "4.10.0 (Base75689)"  # pysc2 appends ".0"
    msg = one_line_config_error(check, "sc2", {"game_version": "4.6.2"})
    assert "Base69232" in msg and "Base75689" in msg and "docker/build.sh --sc2-version" in msg
    assert "quote it" in one_line_config_error(check, "sc2", {"game_version": 4.1})  # what `4.10` parses to
    assert "not a StarCraft II version pysc2 knows" in one_line_config_error(check, "sc2", {"game_version": "9.9"})
    (fake_sc2.root / "Versions" / "Base69232").mkdir()
    (fake_sc2.root / "Versions" / "Base69232" / "SC2_x64").write_bytes(b"")
    assert check("sc2", {"game_version": "4.6.2"}) == "4.6.2 (Base69232)"
    assert check("sc2", {}) == "4.10.0 (Base75689)"  # null: the newest installed, as pysc2's "latest"


def test_difficulty_must_be_a_smac_level(fake_sc2) -> None:
    assert "difficulty" in one_line_config_error(sc2.check_sc2_available, "sc2", {"difficulty": 7})
    sc2.check_sc2_available("sc2", {"difficulty": "A"})


# --- translation of SMAC's API --------------------------------------------------------------------------------
def test_construction_arguments_and_env_info(fake_sc2) -> None:
    env = ENVS.get("sc2")(seed=7, **yaml_env_args("sc2"))
    fake = FakeStarCraft2Env.instances[-1]
    assert fake.kwargs["state_last_action"] is False and fake.kwargs["seed"] == 7  # Concord appends last actions
    assert fake.kwargs["map_name"] == "3m" and fake.kwargs["difficulty"] == "7" and fake.kwargs["reward_win"] == 200.0
    info = env.get_env_info()
    assert (info["n_agents"], info["n_actions"], info["episode_limit"]) == (3, 9, 5)
    assert info["obs_shape"] == fake.get_obs_size() and info["state_shape"] == 4 * 3 + 3 * 3  # without the actions
    assert info["unit_dim"] == 4  # per-ally state features: health, cooldown, x, y (no shields, one unit type)
    assert info["extras"] == {"positions": (3, 2)}
    assert info["sc2_version"] == "4.10.0 (Base75689)" and info["map_name"] == "3m"


def test_obs_state_avail_dtypes_shapes_and_values(fake_sc2) -> None:
    env = ENVS.get("sc2")(seed=0, **yaml_env_args("sc2"))
    fake = FakeStarCraft2Env.instances[-1]
    env.reset()
    env.step(np.array([6, 1, 2]))
    obs, state, avail = env.get_obs(), env.get_state(), env.get_avail_actions()
    assert obs.dtype == np.float32 and obs.shape == (3, fake.get_obs_size())
    np.testing.assert_array_equal(obs, np.stack(fake.get_obs()).astype(np.float32))
    assert state.dtype == np.float32 and state.shape == (21,)
    np.testing.assert_array_equal(state, fake.get_state())
    assert avail.dtype == bool and avail.shape == (3, 9)
    assert avail[0, 6] and not avail[1, 6] and not avail[:, 0].any()
    positions = env.get_extras()["positions"]
    assert positions.dtype == np.float32 and positions.shape == (3, 2)
    np.testing.assert_array_equal(positions, fake.positions.astype(np.float32))


def test_step_passes_int_actions_and_smac_info(fake_sc2) -> None:
    FakeStarCraft2Env.win_at = 2
    try:
        env = ENVS.get("sc2")(seed=0, **yaml_env_args("sc2"))
        fake = FakeStarCraft2Env.instances[-1]
        env.reset()
        actions = np.array([6, 1, 2], dtype=np.int64)
        reward, terminated, info = env.step(actions)
        assert fake.received_actions[-1] == [6, 1, 2] and all(type(a) is int for a in fake.received_actions[-1])
        assert isinstance(reward, float) and reward == 0.5 and terminated is False
        assert info == {"battle_won": False, "dead_allies": 0, "dead_enemies": 0}
        reward, terminated, info = env.step(actions)
        assert terminated is True and info["battle_won"] is True and reward == 10.5
    finally:
        FakeStarCraft2Env.win_at = None


@pytest.mark.parametrize("continuing", [False, True])
def test_time_out_is_terminal_or_truncation_as_smac_says(fake_sc2, continuing) -> None:
    env = ENVS.get("sc2")(seed=0, **{**yaml_env_args("sc2"), "continuing_episode": continuing})
    env.reset()
    for t in range(5):
        reward, terminated, truncated, info = step_single(env, np.array([1, 1, 1]))
        assert (terminated or truncated) == (t == 4)
    assert truncated is continuing and terminated is (not continuing)
    assert info.get("episode_limit", False) is continuing


def test_stats_before_and_after_battles(fake_sc2) -> None:
    FakeStarCraft2Env.win_at = 1
    try:
        env = ENVS.get("sc2")(seed=0, **yaml_env_args("sc2"))
        assert env.get_stats() == {}  # SMAC's own get_stats divides by zero here
        for _ in range(2):
            env.reset()
            env.step(np.array([1, 1, 1]))
        stats = env.get_stats()
        assert stats["battles_won"] == 2.0 and stats["battles_game"] == 2.0 and stats["win_rate"] == 1.0
        assert all(isinstance(v, float) for v in stats.values())
    finally:
        FakeStarCraft2Env.win_at = None


def test_save_replay_returns_the_file_under_replay_dir(fake_sc2, tmp_path) -> None:
    envs = [ENVS.get("sc2")(seed=s, **yaml_env_args("sc2")) for s in (1, 10)]
    fakes = FakeStarCraft2Env.instances[-2:]
    assert fakes[0].kwargs["replay_dir"] == str(tmp_path / "results" / "replays")  # absolute: not under $SC2PATH
    assert fakes[0].kwargs["replay_prefix"] == "3m_seed1"
    paths = [env.save_replay() for env in envs]  # the same second, the same directory
    assert paths == [f.replays[-1] for f in fakes] and paths[0] != paths[1]
    assert all(os.path.dirname(p) == str(tmp_path / "results" / "replays") for p in paths)
    vec = SerialVecEnv(envs)
    assert sorted(vec.save_replay()) == sorted(f.replays[-1] for f in fakes)
    # replay_dir "" keeps pysc2's default, $SC2PATH/Replays
    env = ENVS.get("sc2")(seed=3, **{**yaml_env_args("sc2"), "replay_dir": "", "replay_prefix": "eval"})
    assert env.save_replay() == FakeStarCraft2Env.instances[-1].replays[-1]
    assert os.path.dirname(env.save_replay()) == str(fake_sc2.root / "Replays")


def test_game_failure_propagates_and_close_is_safe(fake_sc2) -> None:
    crashing = type("CrashingEnv", (FakeStarCraft2Env,), {"crash_at": 2, "close_raises": True})
    fake_sc2.classes["sc2"] = crashing
    env = ENVS.get("sc2")(seed=0, **yaml_env_args("sc2"))
    env.reset()
    env.step(np.array([1, 1, 1]))
    with pytest.raises(FakeConnectionError):
        env.step(np.array([1, 1, 1]))
    env.close()  # the fake's close raises, as pysc2's may once the game is gone
    env.close()
    assert crashing.instances[-1].closed == 1


def test_smac_relaunch_mid_episode_raises_instead_of_a_fake_terminal(fake_sc2) -> None:
    fake_sc2.classes["sc2"] = type("RelaunchingEnv", (FakeStarCraft2Env,), {"crash_at": 2, "crash_mode": "restart"})
    env = ENVS.get("sc2")(seed=0, **yaml_env_args("sc2"))
    vec = SerialVecEnv([env])
    vec.reset([0])
    vec.step([0], np.array([[1, 1, 1]]))
    with pytest.raises(sc2.SC2RestartError):  # SMAC returned (0, True, {}) after relaunching the game
        vec.step([0], np.array([[1, 1, 1]]))


# --- SMACv2 --------------------------------------------------------------------------------------------------
def test_sc2v2_capability_config_from_race_and_sizes(fake_sc2) -> None:
    args = yaml_env_args("sc2v2")
    before = copy.deepcopy(args)
    env = ENVS.get("sc2v2")(seed=0, **{**args, "race": "zerg", "n_units": 10, "n_enemies": 11})
    fake = FakeStarCraft2Env.instances[-1]
    assert fake.kwargs["map_name"] == "10gen_zerg" and fake.kwargs["state_last_action"] is False
    cap = fake.kwargs["capability_config"]
    assert (cap["n_units"], cap["n_enemies"]) == (10, 11)
    assert cap["team_gen"]["unit_types"] == ["zergling", "baneling", "hydralisk"]
    assert cap["team_gen"]["exception_unit_types"] == ["baneling"]
    assert cap["start_positions"]["dist_type"] == "surrounded_and_reflect"
    assert "race" not in fake.kwargs and "team_gen" not in fake.kwargs
    assert args == before  # smacv2 writes into its capability config, never into Concord's env_args
    assert fake.kwargs["use_unit_ranges"] is True and fake.kwargs["prob_obs_enemy"] == 0.0
    assert env.get_env_info()["n_agents"] == 10 and env.get_env_info()["map_name"] == "10gen_zerg"
    env.reset()
    assert env.get_obs().shape == (10, fake.get_obs_size())
    path = env.save_replay()
    assert os.path.basename(path).startswith("10gen_zerg_seed0_0.0_")  # smacv2 appends prob_obs_enemy
    assert "race must be one of" in one_line_config_error(ENVS.get("sc2v2"), seed=0, **{**args, "race": "human"})


def _draws(env) -> list[Any]:
    out = []
    for _ in range(3):
        env.reset()
        cfg = env._env.env.episode_config
        out.append((list(cfg["team_gen"]["ally_team"]), cfg["ally_start_positions"]["item"].tolist()))
    return out


def test_sc2v2_distributions_are_seeded_and_their_state_restores(fake_sc2) -> None:
    make = lambda seed: ENVS.get("sc2v2")(seed=seed, **yaml_env_args("sc2v2"))  # noqa: E731
    a, b, c = make(3), make(3), make(4)
    assert len(a._generators()) == 4  # team_gen's, start_positions' and its two nested distributions'
    assert _draws(a) == _draws(b)
    assert _draws(make(3)) != _draws(c)
    state = a.get_rng_state()
    first = _draws(a)
    a.set_rng_state(state)
    assert _draws(a) == first


# --- config ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sc2", "sc2v2"])
def test_yaml_declares_every_constructor_argument_with_its_default(name) -> None:
    params = dict(inspect.signature(ENVS.get(name).__init__).parameters)
    params.pop("self"), params.pop("seed")
    args = yaml_env_args(name)
    assert set(args) == set(params)
    for key, p in params.items():
        if p.default is not None:
            assert args[key] == p.default, key
    assert yaml.safe_load((CONFIG / f"{name}.yaml").read_text())["env_args"]["state_last_action"] is True


def test_newest_replay_ignores_other_seeds_files(tmp_path) -> None:
    """Seed 1's replay must be found even when seed 10's, written later into the same directory, is newer."""
    mine = tmp_path / "3m_seed1_2024-01-01-10-00-00.SC2Replay"
    other = tmp_path / "3m_seed10_2024-01-01-10-00-01.SC2Replay"
    for i, p in enumerate((mine, other)):
        p.write_bytes(b"")
        os.utime(p, (1_000_000 + i, 1_000_000 + i))
    assert sc2.newest_replay(str(tmp_path), "3m_seed1") == str(mine)
    assert sc2.newest_replay(str(tmp_path), "3m_seed2") is None
