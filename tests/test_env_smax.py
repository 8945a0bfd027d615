"""SMAX VecEnv (concord.envs.smax): shapes, seeding, rng round-trip, subset stepping, episode ends.

Three compiled configurations are shared by all tests (3m with 3 envs, 3m with 1 env, 2s3z with 2 envs):
compilations are cached per configuration and batch size, which keeps this file fast.
"""
from __future__ import annotations

import importlib.util
import inspect
import os

import numpy as np
import pytest
import yaml

if importlib.util.find_spec("jaxmarl") is None:  # find, not import: jaxmarl prints and resets sys.stdout on import
    pytest.skip("jaxmarl is not installed", allow_module_level=True)

from concord.envs.base import EnvObs  # noqa: E402
from concord.envs.factory import make_vec_env  # noqa: E402
from concord.envs.seeding import Seed, env_seeds  # noqa: E402
from concord.envs.smax import SMAXVecEnv  # noqa: E402
from concord.errors import ConfigError  # noqa: E402
from concord.registry import ENVS  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS_3M = 60  # episode limit of the 3m tests (random allies lose 3m well before it)
STOP = 4  # SMAX's stop action, the only one a dead agent has


def make_3m(num_envs: int = 3, seed: Seed = 7) -> SMAXVecEnv:
    return SMAXVecEnv(num_envs=num_envs, seed=seed, map_name="3m", max_steps=STEPS_3M)


def random_actions(rng: np.random.Generator, avail: np.ndarray) -> np.ndarray:
    """Uniform over each agent's available actions: (k, n_agents, n_actions) bool -> (k, n_agents)."""
    scores = rng.random(avail.shape)
    scores[~avail] = -1.0
    return scores.argmax(-1)


def run_round(env: SMAXVecEnv, rng: np.random.Generator) -> list[dict[str, list]]:
    """Reset every env and step the unfinished ones (as the runner does) until all episodes end."""
    n = env.num_envs
    ids = np.arange(n)
    o = env.reset(ids)
    rec = [{"obs": [o.obs[i]], "state": [o.state[i]], "avail": [o.avail_actions[i]], "pos": [o.extras["positions"][i]],
            "reward": [], "terminated": [], "truncated": [], "infos": []} for i in range(n)]
    cur = EnvObs(o.obs.copy(), o.state.copy(), o.avail_actions.copy(), {"positions": o.extras["positions"].copy()})
    running = np.ones(n, dtype=bool)
    while running.any():
        ids = np.flatnonzero(running)
        res = env.step(ids, random_actions(rng, cur.avail_actions[ids]))
        cur.avail_actions[ids] = res.obs.avail_actions
        for j, i in enumerate(ids):
            r = rec[i]
            r["obs"].append(res.obs.obs[j])
            r["state"].append(res.obs.state[j])
            r["avail"].append(res.obs.avail_actions[j])
            r["pos"].append(res.obs.extras["positions"][j])
            r["reward"].append(res.reward[j])
            r["terminated"].append(res.terminated[j])
            r["truncated"].append(res.truncated[j])
            r["infos"].append(res.infos[j])
            if res.terminated[j] or res.truncated[j]:
                running[i] = False
    return rec


def assert_same_records(a: list[dict[str, list]], b: list[dict[str, list]]) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert ra["infos"] == rb["infos"]
        for k in ("obs", "state", "avail", "pos", "reward", "terminated", "truncated"):
            np.testing.assert_array_equal(np.asarray(ra[k]), np.asarray(rb[k]), err_msg=k)


@pytest.mark.parametrize(
    "map_name,num_envs,max_steps,n_allies,n_enemies,own_types",
    [("3m", 3, STEPS_3M, 3, 3, [0, 0, 0]), ("2s3z", 2, 5, 5, 5, [2, 2, 3, 3, 3])],
)
def test_reset_and_step_shapes(map_name, num_envs, max_steps, n_allies, n_enemies, own_types):
    env = SMAXVecEnv(num_envs=num_envs, seed=0, map_name=map_name, max_steps=max_steps)
    obs_dim = 13 * (n_allies - 1 + n_enemies) + 10  # SMAX unit_list: 13 features per other unit, 10 own
    state_dim = 12 * (n_allies + n_enemies)
    n_actions = n_enemies + 5
    info = env.get_env_info()
    assert info == {"n_agents": n_allies, "n_actions": n_actions, "obs_shape": obs_dim, "state_shape": state_dim,
                    "episode_limit": max_steps, "extras": {"positions": (n_allies, 2)},
                    "unit_dim": 4 + 6}  # health, x, y, cooldown + 6 unit-type bits

    o = env.reset(np.arange(num_envs))
    assert o.obs.shape == (num_envs, n_allies, obs_dim) and o.obs.dtype == np.float32
    assert o.state.shape == (num_envs, state_dim) and o.state.dtype == np.float32
    assert o.avail_actions.shape == (num_envs, n_allies, n_actions) and o.avail_actions.dtype == bool
    pos = o.extras["positions"]
    assert pos.shape == (num_envs, n_allies, 2) and pos.dtype == np.float32
    assert ((pos > 0) & (pos < 32)).all()  # map units on SMAX's 32 x 32 map
    # The own-feature block ends with the unit-type one-hot: the map's unit types must come out.
    np.testing.assert_array_equal(o.obs[:, :, -6:].argmax(-1), np.tile(own_types, (num_envs, 1)))
    assert o.obs.flags.writeable and o.avail_actions.flags.writeable  # the runner writes into them

    ids = np.array([num_envs - 1])  # a subset
    res = env.step(ids, np.full((1, n_allies), STOP))
    assert res.obs.obs.shape == (1, n_allies, obs_dim) and res.obs.obs.dtype == np.float32
    assert res.obs.state.shape == (1, state_dim) and res.obs.avail_actions.shape == (1, n_allies, n_actions)
    assert res.obs.extras["positions"].shape == (1, n_allies, 2)
    assert res.reward.shape == (1,) and res.reward.dtype == np.float32
    assert res.terminated.dtype == bool and res.truncated.dtype == bool and len(res.infos) == 1


def test_time_limit_truncates_with_battle_info():
    env = SMAXVecEnv(num_envs=2, seed=3, map_name="2s3z", max_steps=5)
    env.reset([0, 1])
    for t in range(1, 6):
        res = env.step([0, 1], np.full((2, 5), STOP))
        assert not res.terminated.any()  # nobody can be wiped out in 5 steps
        assert res.truncated.all() == (t == 5) and res.truncated.any() == (t == 5)
    for info in res.infos:
        assert info["battle_won"] == 0 and set(info) == {"battle_won", "dead_allies", "dead_enemies"}
    with pytest.raises(RuntimeError, match="reset"):
        env.step([0], np.full((1, 5), STOP))


def test_episodes_end_with_battle_won_and_avail_actions_valid():
    env = make_3m()
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(2):
        for r in run_round(env, rng):
            assert len(r["reward"]) <= STEPS_3M
            assert all(info == {} for info in r["infos"][:-1])  # battle info only on the last step
            info, term, trunc = r["infos"][-1], r["terminated"][-1], r["truncated"][-1]
            assert term != trunc
            wiped = info["dead_allies"] == 3 or info["dead_enemies"] == 3
            assert term == wiped
            assert info["battle_won"] == int(info["dead_enemies"] == 3 and info["dead_allies"] < 3)
            ends += term
            avail = np.asarray(r["avail"])  # (T+1, n_agents, n_actions)
            assert avail.any(-1).all()  # never empty
            dead = ~np.asarray(r["obs"])[:, :, -10:].any(-1)  # a dead unit's own features are all zero
            only_stop = np.zeros(avail.shape[-1], dtype=bool)
            only_stop[STOP] = True
            assert (avail[dead] == only_stop).all()
            assert dead[-1].sum() == info["dead_allies"]
    assert ends > 0  # random allies lose 3m before the time limit


def test_same_seed_same_trajectories_and_no_recompile():
    a, b, c = make_3m(seed=7), make_3m(seed=7), make_3m(seed=8)
    rec_a = run_round(a, np.random.default_rng(1))
    traces = dict(a._fns.traces)
    rec_a += run_round(a, np.random.default_rng(2))
    assert a._fns.traces == traces  # a second round reuses the compiled functions
    rec_b = run_round(b, np.random.default_rng(1)) + run_round(b, np.random.default_rng(2))
    assert_same_records(rec_a, rec_b)
    rec_c = run_round(c, np.random.default_rng(1))
    assert not np.array_equal(rec_a[0]["obs"][0], rec_c[0]["obs"][0])  # the seed matters


def test_rng_state_round_trip_reproduces_next_episodes():
    env = make_3m(seed=11)
    run_round(env, np.random.default_rng(0))
    snap = env.get_rng_state()
    first = run_round(env, np.random.default_rng(5))
    assert not np.array_equal(env.get_rng_state()["keys"], snap["keys"])  # the keys moved on; snap is a copy
    env.set_rng_state(snap)
    again = run_round(env, np.random.default_rng(5))
    assert_same_records(first, again)


def test_batched_env_equals_single_env_given_its_seed():
    batch, single = make_3m(num_envs=3, seed=20), make_3m(num_envs=1, seed=[env_seeds(20, 3)[2]])
    rng = np.random.default_rng(3)
    for _ in range(2):
        ob, os_ = batch.reset([0, 1, 2]), single.reset([0])
        np.testing.assert_array_equal(ob.obs[2], os_.obs[0])
        avail, running = ob.avail_actions.copy(), np.ones(3, dtype=bool)
        while running.any():
            ids = np.flatnonzero(running)
            acts = random_actions(rng, avail[ids])
            rb = batch.step(ids, acts)
            avail[ids] = rb.obs.avail_actions
            if running[2]:
                rs = single.step([0], acts[ids == 2])
                for x, y in [(rb.obs.obs, rs.obs.obs), (rb.obs.state, rs.obs.state), (rb.reward, rs.reward),
                             (rb.obs.avail_actions, rs.obs.avail_actions), (rb.terminated, rs.terminated),
                             (rb.obs.extras["positions"], rs.obs.extras["positions"]), (rb.truncated, rs.truncated)]:
                    np.testing.assert_array_equal(x[ids == 2], y)
                assert rb.infos[int(np.flatnonzero(ids == 2)[0])] == rs.infos[0]
            running[ids[rb.terminated | rb.truncated]] = False


def test_stepping_a_subset_leaves_other_envs_untouched():
    a, b = make_3m(seed=30), make_3m(seed=30)
    rng = np.random.default_rng(4)
    oa, ob = a.reset([0, 1, 2]), b.reset([0, 1, 2])
    keys_before = a.get_rng_state()["keys"]
    for _ in range(4):  # only env 0 moves in `a`
        oa0 = a.step([0], random_actions(rng, oa.avail_actions[:1])).obs
        oa.avail_actions[:1] = oa0.avail_actions
    keys_after = a.get_rng_state()["keys"]
    np.testing.assert_array_equal(keys_after[1:], keys_before[1:])
    assert not np.array_equal(keys_after[0], keys_before[0])
    acts = random_actions(rng, ob.avail_actions[1:])
    ra, rb = a.step([1, 2], acts), b.step([1, 2], acts)  # envs 1, 2 continue as if env 0 had not moved
    np.testing.assert_array_equal(ra.obs.obs, rb.obs.obs)
    np.testing.assert_array_equal(ra.obs.state, rb.obs.state)
    np.testing.assert_array_equal(ra.reward, rb.reward)


def test_unknown_map_and_bad_settings_are_one_line_config_errors():
    with pytest.raises(ConfigError) as e:
        SMAXVecEnv(num_envs=1, seed=0, map_name="4m_vs_nothing")
    msg = str(e.value)
    assert "\n" not in msg and "4m_vs_nothing" in msg
    for name in ("3m", "2s3z", "5m_vs_6m", "27m_vs_30m", "3s5z_vs_3s6z", "6h_vs_8z"):
        assert name in msg
    with pytest.raises(ConfigError, match="attack_mode"):
        SMAXVecEnv(num_envs=1, seed=0, attack_mode="weakest")
    with pytest.raises(ConfigError, match="observation_type"):
        SMAXVecEnv(num_envs=1, seed=0, observation_type="pixels")


def test_yaml_declares_every_constructor_argument_and_builds():
    with open(os.path.join(ROOT, "config", "envs", "smax.yaml")) as f:
        cfg = yaml.safe_load(f)
    assert cfg["env"] == "smax" and ENVS.get("smax") is SMAXVecEnv
    params = inspect.signature(SMAXVecEnv.__init__).parameters
    declared = set(cfg["env_args"]) - {"state_last_action"}
    assert declared == set(params) - {"self", "num_envs", "seed"}
    for k in declared:
        assert cfg["env_args"][k] == params[k].default, k  # the yaml states the constructor's defaults
    env = make_vec_env("smax", cfg["env_args"], num_envs=2, seed=0, subprocess=False)
    assert isinstance(env, SMAXVecEnv) and env.get_env_info()["episode_limit"] == 100


def test_state_is_normalised_to_unit_range_and_raw_state_is_not():
    """Positions, type indices and cooldowns are scaled (and cooldowns clipped) so the state lies in [0, 1]."""
    rng = np.random.default_rng(0)
    scaled = run_round(SMAXVecEnv(num_envs=2, seed=3, map_name="2s3z", max_steps=40), rng)
    states = np.concatenate([np.asarray(r["state"]) for r in scaled])  # (steps, state_dim)
    assert states.min() >= 0.0 and states.max() <= 1.0
    raw = run_round(SMAXVecEnv(num_envs=2, seed=3, map_name="2s3z", max_steps=40, normalise_state=False),
                    np.random.default_rng(0))
    raw_states = np.concatenate([np.asarray(r["state"]) for r in raw])
    assert np.abs(raw_states).max() > 2.0  # positions in map units
    n_units, n_feat = 10, (raw_states.shape[1] // 10) - 2
    pos_raw = raw_states[:, : n_units * n_feat].reshape(-1, n_units, n_feat)[:, :, 1:3]
    pos_scaled = states[:, : n_units * n_feat].reshape(-1, n_units, n_feat)[:, :, 1:3]
    np.testing.assert_allclose(pos_scaled, pos_raw / 32.0, rtol=1e-6)
